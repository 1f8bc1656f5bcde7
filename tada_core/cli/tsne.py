"""``tada tsne``: t-SNE of source vs target bottleneck features and the proxy A-distance.

Writes the figure ``F.png`` (by domain: source red, target blue; by class) and the embedding
``F.csv`` beside it (columns ``checkpoint,x,y,domain,class,prediction``). Two or more
``--checkpoint`` flags put the checkpoints side by side, as in the paper's Figure 2.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from tada_core.checkpoint import load_checkpoint
from tada_core.data import check_same_classes, load_domain
from tada_core.errors import ConfigError
from tada_core.explain.domain_stats import STATISTICS, resolve
from tada_core.explain.features import a_distance, collect_features, tsne_embed
from tada_core.explain.viz import TsnePanel, figure_to_png, tsne_panels_figure
from tada_core.model.inputs import image_size_for, norm_for

CSV_COLUMNS = ("checkpoint", "x", "y", "domain", "class", "prediction")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tsne", help="t-SNE plot of source vs target features, with A-distance")
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
    parser.add_argument("--batch-size", type=int, default=256)
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
        statistics = resolve(args.bn_stats, info.config)
        options = {
            "max_points": args.max_points,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "domain_statistics": statistics == "domain",
        }
        src, tgt = collect_features(model, source, **options), collect_features(model, target, **options)
        dist = a_distance(src.features, tgt.features, seed=args.seed)
        xy = tsne_embed(
            np.concatenate([src.features, tgt.features]), seed=args.seed, perplexity=args.perplexity, n_jobs=args.jobs
        )
        codes = np.r_[np.zeros(len(src), int), np.ones(len(tgt), int)]
        labels = np.r_[src.labels, tgt.labels]
        preds = np.r_[src.predictions, tgt.predictions]
        label = f"{info.variant} ({ckpt.name})"
        panels.append(TsnePanel(xy, codes, labels, source.class_names, label, dist))
        rows += [
            (str(ckpt), f"{x:.5f}", f"{y:.5f}", ("source", "target")[d], source.class_names[c], info.class_names[p])
            for (x, y), d, c, p in zip(xy, codes, labels, preds, strict=True)
        ]
        summaries.append(
            {
                "checkpoint": str(ckpt),
                "variant": info.variant,
                "a_distance": dist,
                "bn_statistics": statistics,
                "n_source": len(src),
                "n_target": len(tgt),
                "source_accuracy": src.accuracy,
                "target_accuracy": tgt.accuracy,
            }
        )
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
            print(
                f"{s['variant']} ({s['checkpoint']}): A-distance {s['a_distance']:.3f}; accuracy source "
                f"{s['source_accuracy']:.1%}, target {s['target_accuracy']:.1%} on {s['n_source']}+{s['n_target']} images "
                f"(BatchNorm statistics: {s['bn_statistics']})"
            )
        print(f"wrote {args.out} and {csv_path}")
    return 0
