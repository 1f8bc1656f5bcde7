"""Write the app's example images: a few source (mnist) and target (mnistm) digits as PNG, one
photo per class of the photo pair (``photos`` / ``photos-sketch``, crops never used in training:
generation seed 1) as JPEG under ``app/examples/photos/``, and one held-out source and target image
per class of the text-stamp pair (``shift-text``: never trained on) as PNG under
``app/examples/shift/`` with their ground-truth masks under ``app/examples/shift/masks/`` (255 =
the stamp; read them with ``tada_core.data.shift_export.find_mask``).

Run once from the repository root; the files are committed under ``app/examples/``::

    python scripts/make_examples.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from tada_core.data.digits import mnist_arrays, mnistm_arrays
from tada_core.data.photos import PHOTO_CLASSES, photo_arrays
from tada_core.data.shift_pairs import shift_pair

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "app" / "examples"
PHOTO_EXAMPLES_DIR = EXAMPLES_DIR / "photos"
SHIFT_EXAMPLES_DIR = EXAMPLES_DIR / "shift"
CLASSES = (2, 3, 5, 7)


def first_of_each(labels: np.ndarray, classes: tuple[int, ...]) -> list[int]:
    """Index of the first image of each class, in ``classes`` order."""
    return [int(np.flatnonzero(labels == c)[0]) for c in classes]


def write_examples(out: Path = EXAMPLES_DIR, classes: tuple[int, ...] = CLASSES) -> list[Path]:
    """Save ``source_mnist_<c>.png`` and ``target_mnistm_<c>.png`` (28×28, lossless) per class."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for role, name, (images, labels) in (("source", "mnist", mnist_arrays()), ("target", "mnistm", mnistm_arrays(0))):
        for c, index in zip(classes, first_of_each(np.asarray(labels), classes), strict=True):
            path = out / f"{role}_{name}_{c}.png"
            Image.fromarray(np.asarray(images[index], dtype=np.uint8)).save(path, optimize=True)
            written.append(path)
    return written


def write_photo_examples(out: Path = PHOTO_EXAMPLES_DIR) -> list[Path]:
    """Save ``source_<class>.jpg`` (photos) and ``target_<class>.jpg`` (photos-sketch), 256×256."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for role, name in (("source", "photos"), ("target", "photos-sketch")):
        images, _ = photo_arrays(name, per_class=1, seed=1)
        for cls, image in zip(PHOTO_CLASSES, images, strict=True):
            path = out / f"{role}_{cls}.jpg"
            Image.fromarray(image).save(path, quality=90)
            written.append(path)
    return written


def write_shift_examples(out: Path = SHIFT_EXAMPLES_DIR, kind: str = "text") -> list[Path]:
    """Save ``source_<class>.png`` and ``target_<class>.png`` (256×256) from the held-out parts of the
    ``shift-<kind>`` pair, and each one's mask as ``masks/<same name>`` (255 where the artefact is)."""
    (out / "masks").mkdir(parents=True, exist_ok=True)
    pair = shift_pair(kind)
    written = []
    for role, part in (("source", pair.source_test), ("target", pair.target_test)):
        for label, cls in enumerate(pair.classes):
            index = int(np.flatnonzero(part.labels == label)[0])
            path = out / f"{role}_{cls}.png"
            Image.fromarray(part.images[index]).save(path, optimize=True)
            Image.fromarray(part.masks[index].astype(np.uint8) * 255).save(out / "masks" / path.name, optimize=True)
            written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR)
    out = parser.parse_args().out
    for path in [*write_examples(out), *write_photo_examples(out / "photos"), *write_shift_examples(out / "shift")]:
        print(path)


if __name__ == "__main__":
    main()
