"""``tada eval``: accuracy and per-class accuracy of a checkpoint on a labelled domain.

A domain with fewer classes than the checkpoint (partial domain adaptation) is evaluated over the
classes it has; the others are listed (``absent_classes`` in the JSON). A class the checkpoint does
not have is an error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tada_core.checkpoint import load_checkpoint
from tada_core.data import load_domain
from tada_core.errors import DataError
from tada_core.explain.partial import match_classes
from tada_core.model.inputs import image_size_for, norm_for
from tada_core.training.evaluate import evaluate


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a checkpoint on a labelled domain")
    parser.add_argument("--checkpoint", type=Path, required=True, help=".safetensors checkpoint")
    parser.add_argument("--domain", required=True, help="built-in name, ImageFolder folder or image-list file")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model, info = load_checkpoint(args.checkpoint, device=args.device)
    domain = load_domain(args.domain, image_size=image_size_for(info.config), norm=norm_for(info.config), train=False)
    if not domain.labelled:
        raise DataError(
            f"{args.domain} has no labels, so its accuracy cannot be measured; 'tada estimate --checkpoint "
            f"{args.checkpoint} --domain {args.domain}' estimates it without labels"
        )
    domain, absent = match_classes(domain, info.class_names)
    result = evaluate(model, domain.dataset, info.class_names, batch_size=args.batch_size, device=args.device)
    result = {
        "checkpoint": str(args.checkpoint),
        "domain": args.domain,
        "variant": info.variant,
        **result,
        "absent_classes": absent,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    over = f", over {len(info.class_names) - len(absent)} of {len(info.class_names)} classes" if absent else ""
    print(f"{info.variant} on {args.domain}: accuracy {result['accuracy']:.2f}% ({result['n']} images{over})")
    for name, acc in result["per_class"].items():
        print(f"  {name:>12}: {acc:6.2f}%")
    if absent:
        print(f"  absent from the domain (no image): {', '.join(absent)}")
    return 0
