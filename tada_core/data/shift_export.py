"""Localised-shift pairs written as ImageFolder folders, with their ground truth beside them.

Layout of one pair (``tada data localisation --out DIR``)::

    DIR/<pair>/source/<class>/0000.png …        the training part (a domain for --source)
    DIR/<pair>/target/<class>/0000.png …        the training part (a domain for --target)
    DIR/<pair>/source_test/…, target_test/…     held-out parts, never trained on: score on these
    DIR/<pair>/masks/<part>/<class>/0000.png    the ground truth: 255 where an artefact changed the pixel
    DIR/<pair>/boxes.json                       {"<part>/<class>/0000.png": [x0, y0, x1, y1] or null}
    DIR/<pair>/pair.json                        kind, mode, photo set, seed, classes, sizes

Boxes are in pixel-edge coordinates of the 256×256 image (x1, y1 exclusive). :func:`find_mask`
finds the mask of an image in such a tree (or in ``<folder>/masks/<name>`` next to it).

Example:
    >>> write_pair(shift_pair("text"), Path("data/loc"))["folder"]
    'data/loc/shift-text'
    >>> find_mask("data/loc/shift-text/target_test/cat/0000.png").shape
    (256, 256)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from tada_core.data.shift_pairs import WINDOW, ShiftPair, ShiftPart

PARTS = ("source", "target", "source_test", "target_test")


def mask_box(mask: np.ndarray) -> list[int] | None:
    """The bounding box ``[x0, y0, x1, y1]`` (x1, y1 exclusive) of a bool (H, W) mask; None when empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]


def _write_part(part: ShiftPart, classes: list[str], root: Path, name: str, boxes: dict) -> None:
    for i, (image, label, mask) in enumerate(zip(part.images, part.labels, part.masks, strict=True)):
        relative = Path(name) / classes[int(label)] / f"{i:04d}.png"
        for base, array in ((root, image), (root / "masks", mask.astype(np.uint8) * 255)):
            (base / relative).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(base / relative)
        boxes[relative.as_posix()] = mask_box(mask)


def write_pair(pair: ShiftPair, out: Path) -> dict:
    """Write ``pair`` under ``out/<pair name>/`` (layout in the module docstring); a summary dict."""
    root = Path(out) / pair.name
    boxes: dict[str, list[int] | None] = {}
    parts = dict(zip(PARTS, (pair.source, pair.target, pair.source_test, pair.target_test), strict=True))
    for name, part in parts.items():
        _write_part(part, pair.classes, root, name, boxes)
    meta = {
        "pair": pair.name,
        "kind": pair.kind,
        "mode": pair.mode,
        "photos": pair.photos,
        "seed": pair.seed,
        "classes": pair.classes,
        "sizes": {name: len(part) for name, part in parts.items()},
        "artefact_window": {"x0": WINDOW[0], "y0": WINDOW[1], "side": WINDOW[2]},
        "with_artefact": {name: int(part.masks.any(axis=(1, 2)).sum()) for name, part in parts.items()},
    }
    (root / "boxes.json").write_text(json.dumps(boxes, indent=0))
    (root / "pair.json").write_text(json.dumps(meta, indent=1))
    return {"folder": str(root), **meta}


def find_mask(image: str | Path) -> np.ndarray | None:
    """The ground-truth mask of an image written by :func:`write_pair` (or of an example image with a
    ``masks/`` folder beside it): bool (H, W), True where an artefact changed the pixel; None when
    there is none."""
    image = Path(image)
    for depth, ancestor in enumerate(image.parents):
        if depth > 3:
            break
        candidate = ancestor / "masks" / image.relative_to(ancestor)
        if candidate.is_file():
            with Image.open(candidate) as mask:
                return np.asarray(mask.convert("L")) > 127
    return None
