"""``tada tsne``: t-SNE of source vs target bottleneck features, how well they are aligned.

Per checkpoint (``--json``): ``alignment`` = {measure, value, interval, reads}, the headline that
tells an adapted model from a source-only one (class-conditional MMD,
:mod:`tada_core.explain.alignment`), ``measures`` (all of them), and the global proxy A-distance in
both BatchNorm views (``a_distance_views``; ``a_distance`` is the view the measures use).
Writes the figure ``F.png`` (by domain: source red, target blue; by class) and the embedding
``F.csv`` beside it (columns ``checkpoint,x,y,domain,class,prediction``). Two or more
``--checkpoint`` flags put the checkpoints side by side, as in the paper's Figure 2.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from tada_core.checkpoint import load_checkpoint
from tada_core.data import check_same_classes, load_domain
from tada_core.errors import ConfigError
from tada_core.explain.alignment import measure_line
from tada_core.explain.alignment_report import checkpoint_alignment
from tada_core.explain.domain_stats import STATISTICS
from tada_core.explain.features import tsne_embed
from tada_core.explain.viz import TsnePanel, figure_to_png, tsne_panels_figure
from tada_core.model.inputs import image_size_for, norm_for

CSV_COLUMNS = ("checkpoint", "x", "y", "domain", "class", "prediction")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tsne", help="t-SNE of source vs target features, with alignment measures")
    parser.add_argument(
        "--checkpoint", type=Path, action="append", required=True, help="checkpoint; repeat to compare side by side"
    )
    parser.add_argument("--source", required=True, help="source domain (built-in name, folder or image list)")
    parser.add_argument("--target", required=True, help="target domain")
    parser.add_argument("--max-points", type=int, default=1000, help="images per domain (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset, t-SNE and A-distance split")
    parser.add_argument("--perplexity", type=float, default=30.0)
    parser.add_argument("--jobs", type=int, default=1, help="t-SNE threads (default 1; more only on an idle machine)")
    parser.add_argument("--out", type=Path, required=True, help="output PNG; the CSV is written beside it")
    parser.add_argument("--data-root", default=None, help="folder with extra datasets")
    parser.add_argument(
        "--bn-stats",
        choices=STATISTICS,
        default="auto",
        help="BatchNorm statistics of the features: each domain's own (domain; what the model saw in training "
        "with separate forwards), the running ones (running), or what the checkpoint was trained with (auto, default)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="images a forward pass (default 32: bounds the peak memory)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.max_points < 4 or args.jobs < 1:
        raise ConfigError(f"--max-points must be at least 4 and --jobs at least 1, got {args.max_points}, {args.jobs}")
    domains: dict[tuple, tuple] = {}  # (image size, norm) -> (source, target): loaded once
    panels, summaries, rows = [], [], []
    for ckpt in args.checkpoint:
        model, info = load_checkpoint(ckpt, device=args.device)
        key = (image_size_for(info.config), norm_for(info.config))
        if key not in domains:
            kwargs = {"image_size": key[0], "norm": key[1], "train": False, "data_root": args.data_root}
            pair = (load_domain(args.source, **kwargs), load_domain(args.target, **kwargs))
            check_same_classes(*pair)
            domains[key] = pair
        source, target = domains[key]
        report = checkpoint_alignment(
            model,
            info,
            source,
            target,
            max_points=args.max_points,
            statistics=args.bn_stats,
            seed=args.seed,
            batch_size=args.batch_size,
        )
        features, codes, classes, preds = report.points()
        xy = tsne_embed(features, seed=args.seed, perplexity=args.perplexity, n_jobs=args.jobs)
        summary = {"checkpoint": str(ckpt), "variant": info.variant, **report.summary}
        label = f"{info.variant} ({ckpt.name})"
        panels.append(
            TsnePanel(
                xy, codes, classes, source.class_names, label, summary["a_distance"], measure_line(summary["alignment"])
            )
        )
        rows += [
            (str(ckpt), f"{x:.5f}", f"{y:.5f}", ("source", "target")[d], source.class_names[c], info.class_names[p])
            for (x, y), d, c, p in zip(xy, codes, classes, preds, strict=True)
        ]
        summaries.append(summary)
    fig = tsne_panels_figure(panels, args.source, args.target)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(figure_to_png(fig))
    csv_path = args.out.with_suffix(".csv")
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    if args.json:
        print(json.dumps({"png": str(args.out), "csv": str(csv_path), "checkpoints": summaries}))
    else:
        for s in summaries:
            target_acc = "unlabelled" if s["target_accuracy"] is None else f"{s['target_accuracy']:.1%}"
            views = ", ".join(
                f"{v['value']:.3f} ({name} BatchNorm statistics)" for name, v in s["a_distance_views"].items()
            )
            print(
                f"{s['variant']} ({s['checkpoint']}): {measure_line(s['alignment'])}; proxy A-distance {views}; "
                f"accuracy source {s['source_accuracy']:.1%}, target {target_acc} on {s['n_source']}+{s['n_target']} images"
            )
        print(f"wrote {args.out} and {csv_path}")
    return 0
