"""``tada attention``: per-region views of images, or the attention over a domain.

With ``--image``: for each image one figure ``<stem>_attention.png`` (image | overlay of the chosen
view | grid with values), the overlay alone drawn on the image at its own aspect ratio
``<stem>_overlay.png``, and ``<stem>_attention.json``: ``grid`` = the chosen view (by default the
one the image opens on: shift when the checkpoint has or can fit its localiser, else gap, else
attention), ``grid_reads`` = ``high`` or ``low`` (the end that marks where the image differs from
the source), ``views`` = every view's grid, ``view_notes`` = why a view is missing; ``grid_box`` =
``[x0, y0, x1, y1]``, the part of the image, in its pixels, that the grid covers (a photo model sees
the centre crop), ``view_boxes`` = each view's box and shape, ``localiser`` = the images the shift
localiser was fitted on (``source_images``, ``target_images``; null when not recorded); prediction,
top-k, m, P(source), the pair's domain-gap map. All figures of a call share one colour scale
fitted to their values unless ``--scale`` says otherwise. With ``--domain``:
``<domain>_domain_attention.png`` / ``.json``, the mean local attention map and the histogram of
the global attention m over the domain.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from tada_core.checkpoint import load_checkpoint
from tada_core.data import load_domain, load_image
from tada_core.errors import ConfigError
from tada_core.explain.features import domain_attention_stats
from tada_core.explain.gap import GapError, checkpoint_gap
from tada_core.explain.inference import predict_attention
from tada_core.explain.result import view_grid
from tada_core.explain.shift import ShiftError, checkpoint_localiser
from tada_core.explain.views import DEFAULT_ORDER, SCALES, VIEWS, check_view, value_ranges
from tada_core.explain.viz import (
    MODES,
    attention_figure,
    domain_attention_figure,
    figure_to_png,
    overlay_view,
    png_bytes,
)
from tada_core.model.inputs import image_size_for, norm_for


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("attention", help="render per-region attention overlays (PNG + JSON)")
    parser.add_argument("--checkpoint", type=Path, required=True, help=".safetensors checkpoint")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--image", nargs="+", type=Path, metavar="IMG", help="image file(s), any size and mode")
    what.add_argument("--domain", help="instead: mean attention map and histogram of m over a whole domain")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    parser.add_argument("--cmap", default="jet", help="matplotlib colormap (default jet: red = transferable)")
    parser.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity in [0, 1] (default 0.5)")
    parser.add_argument(
        "--mode", choices=MODES, default="smooth", help="smooth (bicubic) or blocky (one block per region)"
    )
    parser.add_argument(
        "--view",
        choices=list(VIEWS),
        default=None,
        help="shift: where the target differs (a shared scorer fitted after training; stored by tada train, "
        "else fitted once from the checkpoint's domains); gap: probes' P(target) per region (needs the "
        "checkpoint's domains); attention w = 1 - H2(d^k); transferability H2(d^k) = 1 - w. Default: shift when "
        "available, else gap, else attention",
    )
    parser.add_argument(
        "--scale",
        choices=SCALES,
        default="shared",
        help="shared: one scale fitted to all images (default); fixed: the view's range; image: each map's min-max",
    )
    parser.add_argument("--top-k", type=int, default=5, help="how many classes to list (default 5)")
    parser.add_argument("--max-points", type=int, default=None, help="with --domain: at most this many images")
    parser.add_argument("--data-root", default=None, help="folder with extra datasets for --domain")
    parser.add_argument(
        "--batch-size", type=int, default=32, help="images a forward pass (default 32: bounds the peak memory)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.set_defaults(func=run)


def _check_style(args: argparse.Namespace) -> None:
    import matplotlib

    if args.cmap not in matplotlib.colormaps:
        raise ConfigError(f"unknown colormap {args.cmap!r}; try jet, viridis, inferno or magma")
    if not 0.0 <= args.alpha <= 1.0:
        raise ConfigError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.top_k < 1 or args.batch_size < 1:
        raise ConfigError("--top-k and --batch-size must be at least 1")


def _output_stems(paths: list[Path]) -> list[str]:
    """File stems for the outputs; repeated names get their position as a prefix."""
    stems = [p.stem for p in paths]
    return [f"{i:03d}_{s}" if stems.count(s) > 1 else s for i, s in enumerate(stems)]


def _write(path: Path, data: bytes | str) -> None:
    path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)


def run(args: argparse.Namespace) -> int:
    _check_style(args)
    style = {"view": args.view, "scale": args.scale, "cmap": args.cmap, "alpha": args.alpha, "mode": args.mode}
    model, info = load_checkpoint(args.checkpoint, device=args.device)
    if args.domain is not None:
        return _run_domain(args, model, info)
    images = [load_image(path) for path in args.image]  # a bad path fails here, before any output
    probes, gap_note = _probes(args)
    localiser, shift_note = _localiser(args)
    args.out.mkdir(parents=True, exist_ok=True)
    results = predict_attention(
        model, info, images, top_k=args.top_k, batch_size=args.batch_size, probes=probes, localiser=localiser
    )
    if args.view is None:  # the first view every image of the call has
        args.view = next((v for v in DEFAULT_ORDER if all(view_grid(r, v) is not None for r in results)), "attention")
        style["view"] = args.view
    spec = check_view(args.view, args.scale)
    ranges = value_ranges([view_grid(r, args.view) for r in results], args.scale, spec.fixed_range)
    records = []
    for path, stem, result, value_range in zip(args.image, _output_stems(args.image), results, ranges, strict=True):
        png, js = args.out / f"{stem}_attention.png", args.out / f"{stem}_attention.json"
        title = f"{path.name} — {info.variant} ({args.checkpoint.name}): {spec.label}"
        fig = attention_figure(result, value_range=value_range, title=title, **style)
        _write(png, figure_to_png(fig))
        overlay = args.out / f"{stem}_overlay.png"
        view_style = {k: style[k] for k in ("cmap", "alpha", "mode")}
        _write(overlay, png_bytes(overlay_view(result, view=args.view, value_range=value_range, **view_style)))
        record = {
            "image": str(path),
            "checkpoint": str(args.checkpoint),
            "variant": info.variant,
            **result.to_dict(grid_view=args.view),
            "pair_gap": {"source": info.source, "target": info.target, **probes.to_dict()} if probes else None,
            "gap_note": gap_note,
            "view_notes": {"gap": gap_note, "shift": shift_note},
            "style": style,
            "value_range": list(value_range) if value_range else None,
            "png": str(png),
            "overlay_png": str(overlay),
        }
        _write(js, json.dumps(record, indent=1))
        records.append({**record, "json": str(js)})
    if args.json:
        print(json.dumps(records))
    else:
        for r in records:
            extras = []
            grid = r["views"][args.view]
            if grid is not None:
                extras.append(f"{args.view} {np.min(grid):.4f}–{np.max(grid):.4f}")
            if r["global_attention"] is not None:
                extras.append(f"m {r['global_attention']:.2f}, P(source) {r['domain_prob']:.2f}")
            top = r["top_k"][0]
            print(
                f"{r['image']}: {top['class']} ({top['prob']:.0%}); {'; '.join(extras) or 'no attention'} → {r['png']}"
            )
    return 0


def _probes(args: argparse.Namespace):
    """The checkpoint's region probes and None, or None and why not (an error when the view needs them)."""
    try:
        return checkpoint_gap(args.checkpoint, data_root=args.data_root), None
    except GapError as err:
        if args.view == "gap":
            raise
        return None, str(err)


def _localiser(args: argparse.Namespace):
    """The checkpoint's shift localiser and None, or None and why not (an error when the view needs it)."""
    try:
        return checkpoint_localiser(args.checkpoint, data_root=args.data_root), None
    except ShiftError as err:
        if args.view == "shift":
            raise
        return None, str(err)


def _run_domain(args: argparse.Namespace, model, info) -> int:
    domain = load_domain(
        args.domain,
        image_size=image_size_for(info.config),
        norm=norm_for(info.config),
        train=False,
        data_root=args.data_root,
    )
    stats = domain_attention_stats(model, domain, max_points=args.max_points, batch_size=args.batch_size)
    args.out.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(args.domain).name or "domain")
    png, js = args.out / f"{name}_domain_attention.png", args.out / f"{name}_domain_attention.json"
    title = f"{args.domain}: attention of {info.variant} ({args.checkpoint.name}) over {stats.count} images"
    _write(png, figure_to_png(domain_attention_figure(stats.mean_grid, stats.m_values, cmap=args.cmap, title=title)))
    m = stats.m_values
    record = {
        "domain": args.domain,
        "checkpoint": str(args.checkpoint),
        "variant": info.variant,
        "count": stats.count,
        "mean_grid": np.round(stats.mean_grid, 6).tolist() if stats.mean_grid is not None else None,
        "m": None
        if m is None
        else {
            "mean": float(m.mean()),
            "std": float(m.std()),
            "histogram": np.histogram(m, bins=10, range=(1.0, 2.0))[0].tolist(),
            "bin_edges": np.linspace(1.0, 2.0, 11).round(2).tolist(),
        },
        "png": str(png),
    }
    _write(js, json.dumps(record, indent=1))
    if args.json:
        print(json.dumps({**record, "json": str(js)}))
    else:
        mean_w = f"mean w {float(stats.mean_grid.mean()):.3f}" if stats.mean_grid is not None else "no local attention"
        mean_m = f"mean m {record['m']['mean']:.3f}" if m is not None else "no global attention"
        print(f"{args.domain}: {stats.count} images; {mean_w}; {mean_m} → {png}")
    return 0
