"""``tada estimate``: a checkpoint's accuracy on a domain, estimated without its labels.

Works on any domain spec, labelled or not; a labelled domain's measured accuracy is printed beside
the estimate, marked as such (the estimate never reads the labels), and a labelled domain may have
fewer classes than the checkpoint. ``--json`` has ``class_mix`` ({class: fraction}, estimated
without labels) and ``uncertain_reasons``. See
:mod:`tada_core.explain.estimate` for the method and what it assumes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tada_core.checkpoint import load_checkpoint
from tada_core.errors import ConfigError
from tada_core.explain.estimate import estimate_accuracy


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("estimate", help="estimate a checkpoint's accuracy on a domain without labels")
    parser.add_argument("--checkpoint", type=Path, required=True, help=".safetensors checkpoint")
    parser.add_argument(
        "--domain", required=True, help="built-in name, folder (flat or of class folders), .zip or image list"
    )
    parser.add_argument("--unlabelled", action="store_true", help="read the domain without its labels")
    parser.add_argument(
        "--source",
        default=None,
        help="the checkpoint's source domain, to calibrate a checkpoint that stores no calibration (older files)",
    )
    parser.add_argument(
        "--max-images",
        type=int,
        default=2000,
        help="estimate a larger domain on a seeded random sample of this many images (default 2000; 0: all)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.max_images < 0 or 0 < args.max_images < 10:
        raise ConfigError(f"--max-images must be 0 (all images) or at least 10, got {args.max_images}")
    model, info = load_checkpoint(args.checkpoint, device=args.device)
    result = estimate_accuracy(
        model,
        info,
        args.domain,
        labels="ignore" if args.unlabelled else "auto",
        source=args.source,
        device=args.device,
        max_images=None if args.max_images == 0 else args.max_images,
    )
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint), "domain": args.domain, **result.to_dict()}))
        return 0
    low, high = result.interval
    flag = "  UNCERTAIN" if result.uncertain else ""
    print(
        f"{info.variant} on {args.domain} ({result.n_images} images): estimated accuracy "
        f"{result.estimated_accuracy:.1f}% (interval {low:.1f}–{high:.1f}), without labels{flag}"
    )
    for reason in result.uncertain_reasons:
        print(f"  uncertain — {reason}")
    mix = ", ".join(f"{name}: {share:.1%}" for name, share in result.class_mix.items())
    print(f"  estimated class mix: {mix} ({result.mix_shift:.2f} from the source's, total variation)")
    print(f"  method: {result.method}")
    print(f"  assumes: {result.assumption}")
    if result.measured_accuracy is not None:
        print(
            f"  measured accuracy (the domain has labels; the estimate did not use them): {result.measured_accuracy:.1f}%"
        )
    for note in result.notes:
        print(f"  note: {note}")
    return 0
