"""``tada bench``: speed, accuracy, visualisation and localisation benchmarks (numbers for the README,
never test thresholds)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from tada_core.config import VARIANTS, TrainConfig
from tada_core.errors import ConfigError

LOC_PAIRS = (
    "digits",
    "shift-text",
    "shift-watermark",
    "shift-dust",
    "shift-defect",
    "shift-defect-heldout",
    "shift-text-heldout",
    "shift-text-control",
    "shift-watermark-control",
    "shift-dust-control",
    "shift-defect-control-heldout",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="speed and accuracy benchmarks")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", parser_class=type(parser))
    kinds.required = True

    speed = kinds.add_parser("speed", help="train-step time of each variant (ratios tada/dann, tada/source_only)")
    speed.add_argument(
        "--setting",
        action="append",
        metavar="BACKBONE:SIZE:BATCH",
        help="repeatable; default resnet50:224:8 and lenet:28:64",
    )
    speed.add_argument("--repeats", type=int, default=5)
    speed.add_argument("--warmup", type=int, default=2)
    speed.add_argument("--device", default="cpu")
    speed.add_argument("--json", action="store_true")
    speed.set_defaults(func=run_speed)

    acc = kinds.add_parser("accuracy", help="all variants × pairs × seeds, target accuracy mean ± std")
    acc.add_argument("--suite", default="digits", help="digits (3 pairs) or tiny (1 pair)")
    acc.add_argument("--seeds", type=int, default=3)
    acc.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    acc.add_argument("--iters", type=int, default=None, help="training steps per run (default: tada train's)")
    acc.add_argument("--batch-size", type=int, default=None, help="images per domain per step (default: tada train's)")
    acc.add_argument("--eval-every", type=int, default=None, help="steps between points of the learning curves")
    acc.add_argument("--plot", type=Path, default=None, help="write the learning curves to this PNG")
    acc.add_argument("--keep", type=Path, default=None, help="keep each run's folder (checkpoints) under this folder")
    acc.add_argument("--jobs", type=int, default=2, help="parallel runs (default 2)")
    acc.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable")
    acc.add_argument("--json", action="store_true")
    acc.set_defaults(func=run_accuracy)

    styles = kinds.add_parser(
        "styles",
        help="designer-styles benchmark: the 6 emoji style pairs × variants × seeds and a target oracle",
        description="Needs 'tada data download emoji'. Each run is tada train --backbone efficientnet_lite0 "
        "--pretrained (the photo defaults); reports the last checkpoint's accuracy on all target images.",
    )
    styles.add_argument("--pairs", default=None, help="comma-separated SOURCE>TARGET (default: all 6 ordered pairs)")
    styles.add_argument(
        "--variants", default="source_only,dann,tada", help="comma-separated (default source_only,dann,tada)"
    )
    styles.add_argument("--seeds", type=int, default=3)
    styles.add_argument("--no-oracle", action="store_true", help="skip the target oracle (trained on target labels)")
    styles.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable")
    styles.add_argument("--save", type=Path, default=None, help="write the JSON here after every run")
    styles.add_argument("--quiet", action="store_true", help="no progress bars")
    styles.add_argument("--json", action="store_true")
    styles.set_defaults(func=run_styles)

    scale = kinds.add_parser(
        "scale",
        help="the photo-default pipeline on 1,000 to 20,000 images a domain: time per phase, peak memory",
        description="Grows two image sets (default: the emoji styles, 'tada data download emoji') to N images a "
        "domain by crops and flips, then runs tada train (photo defaults), tada attention (16 images, shift "
        "view), tada tsne and tada estimate, each in its own process.",
    )
    scale.add_argument("--sizes", default="1000,5000,20000", help="images a domain, comma-separated")
    scale.add_argument("--source", default="emoji-twitter", help="labelled domain read from files")
    scale.add_argument("--target", default="emoji-google", help="labelled domain read from files (same classes)")
    scale.add_argument("--work", type=Path, default=None, help="folder for the grown images and runs (default: tmp)")
    scale.add_argument("--keep", action="store_true", help="keep each size's images and run folder")
    scale.add_argument("--train-arg", action="append", default=[], metavar="ARG", help="extra tada train argument")
    scale.add_argument("--plot", type=Path, default=None, help="write the log-log plot to this PNG")
    scale.add_argument("--save", type=Path, default=None, help="write the JSON here after every size")
    scale.add_argument("--data-root", default=None)
    scale.add_argument("--json", action="store_true")
    scale.set_defaults(func=run_scale)

    shift = kinds.add_parser(
        "label-shift", help="the accuracy estimate on subsets of labelled targets mixed unlike the source"
    )
    shift.add_argument(
        "--case", action="append", help="CHECKPOINT:TARGET, repeatable (default: the shipped checkpoints)"
    )
    shift.add_argument("--save", type=Path, default=None, help="write the JSON here")
    shift.add_argument("--json", action="store_true")
    shift.set_defaults(func=run_label_shift)

    tsne = kinds.add_parser("tsne", help="openTSNE vs scikit-learn TSNE on the same features")
    tsne.add_argument("--points", type=int, default=2000)
    tsne.add_argument("--jobs", type=int, default=2, help="threads for both implementations (default 2)")
    tsne.add_argument("--json", action="store_true")
    tsne.set_defaults(func=run_tsne)

    photos = kinds.add_parser(
        "photos", help="efficientnet_lite0 --pretrained with the photo defaults: minutes per run, target accuracy"
    )
    photos.add_argument("--source", default="photos", help="source domain (default photos)")
    photos.add_argument("--target", default="photos-sketch", help="target domain (default photos-sketch)")
    photos.add_argument("--variants", default="source_only,tada", help="comma-separated (default source_only,tada)")
    photos.add_argument("--seeds", type=int, default=1)
    photos.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable")
    photos.add_argument("--quiet", action="store_true", help="no progress bars")
    photos.add_argument("--json", action="store_true")
    photos.set_defaults(func=run_photos)

    attention = kinds.add_parser("attention", help="attention map cost vs plain forward and Grad-CAM (resnet50)")
    attention.add_argument("--repeats", type=int, default=5)
    attention.add_argument("--json", action="store_true")
    attention.set_defaults(func=run_attention)

    loc = kinds.add_parser(
        "localisation",
        help="every view and the baselines against known artefacts: digits checkerboard and photo pairs",
        description="Trains TADA on each pair (photos: frozen photo defaults and/or a short fine-tune; digits: "
        "LeNet from scratch) and scores every view of the held-out target images against the artefact masks "
        "(cell ROC-AUC, AUC without clean neighbours, pointing game), next to Grad-CAM, Grad-CAM++ and occlusion "
        "of a domain classifier and two trivial maps. About 6 min per photo pair and mode on 2 CPU cores.",
    )
    loc.add_argument(
        "--pairs", default=",".join(LOC_PAIRS), help=f"comma-separated (default all: {','.join(LOC_PAIRS)})"
    )
    loc.add_argument("--modes", default="frozen,finetune", help="photo modes: frozen and/or finetune (default both)")
    loc.add_argument("--baselines", default="gradcam,gradcampp,occlusion,centre,sobel", help="comma-separated")
    loc.add_argument("--finetune-iters", type=int, default=100, help="fine-tune steps (default 100)")
    loc.add_argument("--finetune-batch", type=int, default=16, help="fine-tune images per domain per step (16)")
    loc.add_argument("--seed", type=int, default=0)
    loc.add_argument("--digits", type=int, default=None, help="use the first N MNIST digits (default all 5,000)")
    loc.add_argument("--digits-iters", type=int, default=600, help="digits training steps of 64 + 64 (default 600)")
    loc.add_argument("--keep", type=Path, default=None, help="keep each run's checkpoint under this folder")
    loc.add_argument("--save", type=Path, default=None, help="also write the JSON here after every pair")
    loc.add_argument("--json", action="store_true")
    loc.set_defaults(func=run_localisation)


def _parse_setting(text: str) -> tuple[str, int, int]:
    try:
        backbone, size, batch = text.split(":")
        return backbone, int(size), int(batch)
    except ValueError:
        raise ConfigError(f"--setting {text!r} must look like resnet50:224:8 (backbone:image size:batch)") from None


def _parse_overrides(items: list[str]) -> dict:
    overrides = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} must look like key=value, e.g. --set detach_attention=true")
        key, value = item.split("=", 1)
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def _emit(result: dict, as_json: bool, lines: list[str]) -> int:
    print(json.dumps(result) if as_json else "\n".join(lines))
    return 0


def run_speed(args: argparse.Namespace) -> int:
    from tada_core.bench.speed import DEFAULT_SETTINGS, bench_speed

    settings = tuple(_parse_setting(s) for s in args.setting) if args.setting else DEFAULT_SETTINGS
    result = bench_speed(settings, repeats=args.repeats, warmup=args.warmup, device=args.device)
    lines = []
    for r in result["results"]:
        lines.append(
            f"{r['backbone']} @ {r['image_size']}px, {r['batch_per_domain']}+{r['batch_per_domain']} images, {r['device']}:"
        )
        for variant, seconds in r["seconds_per_step"].items():
            lines.append(f"  {variant:12s} {seconds * 1000:8.1f} ms/step  {r['images_per_second'][variant]:8.1f} img/s")
        lines.append(f"  tada/dann = {r.get('tada_over_dann')}  tada/source_only = {r.get('tada_over_source_only')}")
        if "params" in r:
            p = r["params"]
            lines.append(f"  params: backbone {p['backbone']:,}  local discriminators {p['local_discriminators']:,}")
    return _emit(result, args.json, lines)


def run_accuracy(args: argparse.Namespace) -> int:
    from tada_core.bench.accuracy import SUITES, bench_accuracy

    if args.suite not in SUITES:
        raise ConfigError(f"unknown suite {args.suite!r}; choose one of {', '.join(SUITES)}")
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if args.plot is not None:  # a folder that cannot be written fails now, not after the runs
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        if args.plot.is_dir():
            raise ConfigError(f"--plot {args.plot} is a folder; give a file name such as curves.png")
    settings = {"train.eval_every": args.eval_every or max(1, (args.iters or TrainConfig.iters) // 10)}
    if args.iters is not None:
        settings["train.iters"] = args.iters
    if args.batch_size is not None:
        settings["train.batch_size"] = args.batch_size
    settings.update(_parse_overrides(args.set))

    def report(run: dict) -> None:
        print(
            f"  {run['variant']:12s} {run['source']}→{run['target']} seed {run['seed']}: "
            f"{run['target_accuracy']:.2f}% ({run['seconds']:.0f}s)",
            file=sys.stderr,
        )

    result = bench_accuracy(
        args.suite,
        seeds=args.seeds,
        variants=variants,
        settings=settings,
        jobs=args.jobs,
        on_result=report,
        keep=str(args.keep) if args.keep else None,
    )
    pairs = list(next(iter(result["table"].values())).keys()) if result["table"] else []
    lines = [f"{'variant':12s} " + " ".join(f"{p:>18s}" for p in pairs) + f" {'average':>8s}"]
    for variant, row in result["table"].items():
        cells = " ".join(f"{row[p]['mean']:>10.2f} ± {row[p]['std']:<5.2f}" for p in pairs)
        lines.append(f"{variant:12s} {cells} {result['average'][variant]:>8.2f}")
    lines.append(f"checks: {result['checks']}  ({result['minutes']} min)")
    if args.plot is not None:
        from tada_core.bench.curves import curves_figure
        from tada_core.explain.viz import figure_to_png

        args.plot.write_bytes(figure_to_png(curves_figure(result)))
        lines.append(f"learning curves: {args.plot}")
    return _emit(result, args.json, lines)


def run_photos(args: argparse.Namespace) -> int:
    from tada_core.bench.photos import bench_photos
    from tada_core.cli.train import ProgressCallback

    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")

    def report(run: dict) -> None:
        print(
            f"  {run['variant']:12s} seed {run['seed']}: target {run['target_accuracy']:.2f}% "
            f"({run['seconds']:.0f} s with encoding, {run['steps']} steps)",
            file=sys.stderr,
        )

    result = bench_photos(
        source=args.source,
        target=args.target,
        variants=variants,
        seeds=args.seeds,
        settings=_parse_overrides(args.set),
        callbacks=lambda: [ProgressCallback(enabled=not args.quiet)],
        on_result=report,
    )
    lines = [f"{args.source} → {args.target}, efficientnet_lite0 pretrained, frozen cached backbone:"]
    lines += [f"  {v:12s} {row['mean']:6.2f} ± {row['std']:.2f}  {row['runs']}" for v, row in result["table"].items()]
    lines.append(f"encoding {result['images']} images once: {result['encode_seconds']} s")
    lines.append(f"slowest run: {result['max_minutes']} min (encoding included)")
    return _emit(result, args.json, lines)


def run_scale(args: argparse.Namespace) -> int:
    from tada_core.bench.scale import bench_scale, plot

    try:
        sizes = [int(n) for n in _split(args.sizes)]
    except ValueError:
        raise ConfigError(f"--sizes takes whole numbers of images, e.g. 1000,5000; got {args.sizes!r}") from None
    if not sizes or min(sizes) < 10:
        raise ConfigError("--sizes: every size must be at least 10 images a domain")
    result = bench_scale(
        sizes,
        source=args.source,
        target=args.target,
        work=args.work,
        data_root=args.data_root,
        train_args=args.train_arg,
        keep=args.keep,
        save=args.save,
        log=lambda line: print(line, file=sys.stderr),
    )
    if args.plot is not None:
        plot(result, args.plot)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for size in result["sizes"]:
            times = ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in size["commands"].items())
            print(f"{size['images_per_domain']:>6} a domain: {times}; peak {size['peak_rss_mb']:.0f} MB")
    return 0 if all("failed" not in s for s in result["sizes"]) else 1


def run_styles(args: argparse.Namespace) -> int:
    from tada_core.bench.styles import PAIRS, bench_styles, summarise, table_lines
    from tada_core.cli.train import ProgressCallback
    from tada_core.data.emoji import DOMAIN_PREFIX, domain_names

    variants = _split(args.variants)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ConfigError(f"unknown variant(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(VARIANTS)}")
    pairs = _split(args.pairs) if args.pairs else PAIRS
    wrong = [p for p in pairs if any(d not in domain_names() for d in p.split(">"))]
    if wrong:
        raise ConfigError(f"pairs must be {DOMAIN_PREFIX}STYLE>{DOMAIN_PREFIX}STYLE, got {', '.join(wrong)}")
    if args.seeds < 1:
        raise ConfigError("--seeds must be at least 1")
    done: list[dict] = []

    def report(run: dict) -> None:
        done.append(run)
        print(
            f"  {run['pair']:30s} {run['variant']:12s} seed {run['seed']}: {run['target_accuracy']:.2f}%",
            file=sys.stderr,
        )
        if args.save is not None:
            args.save.parent.mkdir(parents=True, exist_ok=True)
            partial = {"variants": list(variants), **summarise(done, [*variants, "oracle"]), "runs": done}
            args.save.write_text(json.dumps(partial, indent=1))

    result = bench_styles(
        pairs=pairs,
        variants=variants,
        seeds=args.seeds,
        oracle=not args.no_oracle,
        settings=_parse_overrides(args.set),
        callbacks=lambda: [ProgressCallback(enabled=not args.quiet)],
        on_result=report,
    )
    if args.save is not None:
        args.save.write_text(json.dumps(result, indent=1))
    lines = table_lines(result)
    lines += [
        f"gain of {v} over source_only: {g['average']:+.2f} (per seed {g['per_seed']}, worst pair {g['worst_pair']:+.2f})"
        for v, g in result["gain"].items()
    ]
    lines.append(f"{result['minutes']} min on {result['threads']} thread(s)")
    return _emit(result, args.json, lines)


def run_label_shift(args: argparse.Namespace) -> int:
    from tada_core.bench.label_shift import SHIPPED, bench_label_shift, table

    cases = [tuple(case.rsplit(":", 1)) for case in args.case] if args.case else SHIPPED
    if any(len(case) != 2 for case in cases):
        raise ConfigError("--case takes CHECKPOINT:TARGET, e.g. checkpoints/tada_mnist_mnistm.safetensors:mnistm")
    result = bench_label_shift(cases)
    if args.save is not None:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(result, indent=1))
    return _emit(result, args.json, table(result))


def run_tsne(args: argparse.Namespace) -> int:
    from tada_core.bench.viz import bench_tsne

    result = bench_tsne(n_points=args.points, n_jobs=args.jobs)
    return _emit(result, args.json, [f"{k}: {v}" for k, v in result.items()])


def run_attention(args: argparse.Namespace) -> int:
    from tada_core.bench.viz import bench_attention

    result = bench_attention(repeats=args.repeats)
    return _emit(result, args.json, [f"{k}: {v}" for k, v in result.items()])


def _split(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def run_localisation(args: argparse.Namespace) -> int:
    from tada_core.bench.localisation import bench_localisation, goal_checks, summary_lines

    if args.finetune_iters < 1 or args.finetune_batch < 2 or (args.digits is not None and args.digits < 40):
        raise ConfigError("--finetune-iters must be at least 1, --finetune-batch at least 2, --digits at least 40")
    done: list[dict] = []

    def report(record: dict) -> None:
        done.append(record)
        print("\n".join(summary_lines([record])), file=sys.stderr)
        if args.save is not None:
            args.save.parent.mkdir(parents=True, exist_ok=True)
            args.save.write_text(json.dumps({"pairs": done, "checks": goal_checks(done)}, indent=1))

    result = bench_localisation(
        pairs=_split(args.pairs),
        modes=_split(args.modes),
        baselines=_split(args.baselines),
        seed=args.seed,
        finetune_iters=args.finetune_iters,
        finetune_batch=args.finetune_batch,
        digits=args.digits,
        digits_iters=args.digits_iters,
        keep=str(args.keep) if args.keep else None,
        on_result=report,
    )
    if args.save is not None:
        args.save.write_text(json.dumps(result, indent=1))
    lines = summary_lines(result["pairs"])
    failed = [k for k, v in result["checks"].items() if not v["met"]]
    lines.append(f"goal not met: {', '.join(failed) or 'none'}  ({result['minutes']} min, {result['machine']})")
    return _emit(result, args.json, lines)
