"""``tada data list [--json]``, ``tada data download NAME [--root DIR]`` and ``tada data localisation
--out DIR``: the built-in domains, and the localised-shift pairs written out with their ground truth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tada_core.data import emoji, list_builtin_domains
from tada_core.data.torchvision_sets import TORCHVISION_SETS, data_root, download
from tada_core.errors import ConfigError


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

    getter = actions.add_parser(
        "download",
        help="download an optional built-in (needs the network)",
        description="emoji: the designer-style domains emoji-apple, emoji-google, emoji-twitter, fetched with "
        "'npm pack' and checked against their published integrity; the torchvision digit sets through torchvision.",
    )
    getter.add_argument("name", metavar="NAME", help=f"one of: emoji, {', '.join(TORCHVISION_SETS)}")
    getter.add_argument("--root", metavar="DIR", help="where to put it (default $TADA_DATA_ROOT or ~/.cache/tada/data)")
    getter.add_argument(
        "--styles",
        default=",".join(emoji.BENCH_STYLES),
        help=f"emoji only: comma-separated styles (default {','.join(emoji.BENCH_STYLES)}; also: facebook)",
    )
    getter.add_argument("--npm", default="npm", help="emoji only: the npm client to run (default: npm on PATH)")
    getter.set_defaults(func=_download)
    _add_localisation(actions)


def _add_localisation(actions: argparse._SubParsersAction) -> None:
    from tada_core.data.artefacts import KINDS
    from tada_core.data.shift_pairs import MODES, PHOTO_SETS

    writer = actions.add_parser(
        "localisation",
        help="write the localised-shift photo pairs with their artefact masks (ImageFolder folders)",
        description="Writes each pair as DIR/<pair>/{source,target,source_test,target_test}/<class>/NNNN.png, "
        "the ground truth as DIR/<pair>/masks/<part>/<class>/NNNN.png (255 = artefact) and boxes.json. "
        "Train on source/target (tada train --source DIR/<pair>/source --target DIR/<pair>/target) and "
        "score on target_test, which training never sees.",
    )
    writer.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    writer.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated (default all: {','.join(KINDS)})")
    writer.add_argument("--modes", default=",".join(MODES), help="shift and/or control (default both)")
    writer.add_argument("--photos", choices=PHOTO_SETS, default="tune", help="tune (default) or heldout photos")
    writer.add_argument("--seed", type=int, default=0, help="generation seed (default 0, the built-ins')")
    writer.add_argument("--json", action="store_true", help="print a JSON list of the pairs written")
    writer.set_defaults(func=_localisation)


def _localisation(args: argparse.Namespace) -> int:
    from tada_core.data.artefacts import KINDS
    from tada_core.data.shift_export import write_pair
    from tada_core.data.shift_pairs import MODES, shift_pair

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    wrong = [k for k in kinds if k not in KINDS] + [m for m in modes if m not in MODES]
    if wrong or not kinds or not modes:
        raise ConfigError(f"unknown kind or mode {', '.join(wrong) or '(none given)'}; kinds {KINDS}, modes {MODES}")
    written = [write_pair(shift_pair(k, m, args.photos, args.seed), args.out) for k in kinds for m in modes]
    if args.json:
        print(json.dumps(written, indent=1))
    else:
        for w in written:
            sizes = ", ".join(f"{part} {n}" for part, n in w["sizes"].items())
            print(f"{w['folder']}: {sizes}; masks and boxes.json beside them")
    return 0


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
    if args.name == "emoji":
        return _download_emoji(args)
    root = download(args.name, args.root)
    print(f"downloaded '{args.name}' into {root}; use it as a domain: --source {args.name} or --target {args.name}")
    if root != data_root():
        print(f"note: {root} is not the default data root; set TADA_DATA_ROOT={root} so that other commands find it")
    return 0


def _download_emoji(args: argparse.Namespace) -> int:
    styles = tuple(s.strip() for s in args.styles.split(",") if s.strip())
    root = data_root(args.root)
    built = emoji.download_emoji(root, styles, npm=args.npm)
    counts = ", ".join(f"{emoji.DOMAIN_PREFIX}{s} {built['styles'][s]}" for s in styles)
    print(
        f"built {counts} images in {len(built['classes'])} classes under {emoji.emoji_root(root)}; "
        f"use them as domains, e.g. --source {emoji.DOMAIN_PREFIX}{styles[0]} --target {emoji.DOMAIN_PREFIX}{styles[-1]}"
    )
    if root != data_root():
        print(f"note: {root} is not the default data root; set TADA_DATA_ROOT={root} so that other commands find it")
    return 0
