"""``tada data list [--json]`` and ``tada data download NAME [--root DIR]``: the built-in domains."""

from __future__ import annotations

import argparse
import json

from tada_core.data import list_builtin_domains
from tada_core.data.torchvision_sets import TORCHVISION_SETS, data_root, download


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="list the built-in domains, download the optional ones",
        description="Built-in domains: mnist, optdigits, mnistm and the photo pair photos / photos-sketch are "
        "made from what Python packages ship and work offline; tv-mnist, usps and svhn are read through "
        "torchvision once downloaded.",
    )
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", parser_class=type(parser))
    actions.required = True

    lister = actions.add_parser("list", help="show the built-in domains and whether they are available")
    lister.add_argument("--json", action="store_true", help="print a JSON list on stdout")
    lister.add_argument(
        "--root",
        metavar="DIR",
        help="data root of the torchvision sets (default $TADA_DATA_ROOT or ~/.cache/tada/data)",
    )
    lister.set_defaults(func=_list)

    getter = actions.add_parser("download", help="download a torchvision built-in (needs the network)")
    getter.add_argument("name", metavar="NAME", help=f"one of: {', '.join(TORCHVISION_SETS)}")
    getter.add_argument("--root", metavar="DIR", help="where to put it (default $TADA_DATA_ROOT or ~/.cache/tada/data)")
    getter.set_defaults(func=_download)


def format_table(rows: list[dict]) -> str:
    """The built-ins as an aligned text table: name, images, classes, available, description."""
    header = ("name", "images", "classes", "available", "description")
    cells = [header] + [
        (r["name"], f"{r['size']:,}", str(r["num_classes"]), "yes" if r["available"] else "no", r["description"])
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip()
        for row in cells
    )


def _list(args: argparse.Namespace) -> int:
    rows = list_builtin_domains(data_root=args.root)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


def _download(args: argparse.Namespace) -> int:
    root = download(args.name, args.root)
    print(f"downloaded '{args.name}' into {root}; use it as a domain: --source {args.name} or --target {args.name}")
    if root != data_root():
        print(f"note: {root} is not the default data root; set TADA_DATA_ROOT={root} so that other commands find it")
    return 0
