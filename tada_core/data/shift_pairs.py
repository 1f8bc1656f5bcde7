"""Localised-shift photo pairs with ground truth, made offline: where the target differs is known.

A pair has a source and a target domain of square photo crops (256×256 RGB, like ``photos``;
random position, 45–100 % of the shorter side, random flip), each split into a part to train on
and a held-out part to score on, with a bool (256, 256) mask per image of the pixels an artefact
changed (:mod:`tada_core.data.artefacts`). Artefacts are drawn inside the centre 224×224 window,
the part a 224-px model sees after its resize-256 / centre-crop step, so no mark is cropped away.

    mode     source                                   target
    shift    clean                                    every image carries one artefact
    control  the artefact in half of the images       the artefact in half of the images, and
                                                      every image changed globally first

A *control* pair's only local marks are as frequent in both domains: a view that singles them
out is finding artefacts, not the domain difference (it should not, AUC ≤ 0.70).

Photo sets: ``tune`` = the ``photos`` classes (cat, coffee, motorcycle, person); ``heldout`` =
rocket, china, flower and micro (immunohistochemistry + Hubble deep field), photos no choice of
this project was ever tuned on. Sizes: source 160 + 40 held out, target 160 + 60 held out.

The built-in domains (``tada data list``) are the training parts of the ``tune`` pairs:
``shift-<kind>-source`` / ``shift-<kind>-target`` and ``shift-<kind>-control-source`` /
``shift-<kind>-control-target``, for every kind. Deterministic by seed.

Example:
    >>> pair = shift_pair("text")                     # shift mode, tune photos, seed 0
    >>> pair.target_test.images.shape, pair.target_test.masks.shape
    ((60, 256, 256, 3), (60, 256, 256))
    >>> images, labels, masks = builtin_shift_arrays("shift-text-target")
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from tada_core.data.artefacts import KINDS, STAMPS, global_change
from tada_core.data.photos import PHOTO_CLASSES, class_photos

SIZE = 256
WINDOW = (16, 16, 224)  # (x0, y0, side): the centre crop a 224-px model sees
MODES = ("shift", "control")
PHOTO_SETS = ("tune", "heldout")
HELDOUT_CLASSES = ("rocket", "china", "flower", "micro")
SOURCE_TRAIN, SOURCE_TEST, TARGET_TRAIN, TARGET_TEST = 160, 40, 160, 60
CONTROL_RATE = 0.5


@dataclass
class ShiftPart:
    """Images of one part of a domain: uint8 (N, 256, 256, 3) RGB, int64 (N,) labels, bool (N, 256, 256) masks."""

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class ShiftPair:
    """A localised-shift or control pair: source and target, each in a train and a held-out part."""

    kind: str
    mode: str
    photos: str
    seed: int
    classes: list[str]
    source: ShiftPart
    source_test: ShiftPart
    target: ShiftPart
    target_test: ShiftPart

    @property
    def name(self) -> str:
        return pair_name(self.kind, self.mode, self.photos)


def pair_name(kind: str, mode: str = "shift", photos: str = "tune") -> str:
    """``shift-text``, ``shift-text-control``, ``shift-text-heldout``, ``shift-text-control-heldout`` …"""
    return "-".join(
        ["shift", kind] + (["control"] if mode == "control" else []) + (["heldout"] if photos == "heldout" else [])
    )


@functools.lru_cache(maxsize=1)
def heldout_photos() -> dict[str, list[np.ndarray]]:
    """The held-out photo classes: uint8 (H, W, 3) RGB arrays from scikit-image and scikit-learn."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    return {
        "rocket": [data.rocket()],
        "china": [china],
        "flower": [flower],
        "micro": [data.immunohistochemistry(), data.hubble_deep_field()],
    }


def photo_set(photos: str) -> dict[str, list[np.ndarray]]:
    """The photos of ``tune`` (the ``photos`` classes) or ``heldout`` by class."""
    if photos == "tune":
        found = class_photos()
        return {name: found[name] for name in PHOTO_CLASSES}
    if photos == "heldout":
        return heldout_photos()
    raise ValueError(f"photos must be one of {', '.join(PHOTO_SETS)}, not {photos!r}")


def _crop(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    height, width = photo.shape[:2]
    side = int(min(height, width) * rng.uniform(0.45, 1.0))
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    crop = photo[top : top + side, left : left + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return cv2.resize(np.ascontiguousarray(crop), (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def _domain(
    pool: dict[str, list[np.ndarray]],
    n: int,
    rng: np.random.Generator,
    kind: str | None = None,
    rate: float = 1.0,
    change: str | None = None,
) -> ShiftPart:
    """``n`` crops cycling through the classes; globally changed first (``change``), then stamped with
    artefact ``kind`` at ``rate``."""
    names = list(pool)
    images, labels, masks = [], [], []
    for i in range(n):
        label = i % len(names)
        photos = pool[names[label]]
        image = _crop(photos[int(rng.integers(0, len(photos)))], rng)
        if change is not None:
            image = global_change(image, change, rng)
        mask = np.zeros((SIZE, SIZE), bool)
        if kind is not None and rng.random() < rate:
            image, mask = STAMPS[kind](image, WINDOW, rng)
        images.append(image)
        labels.append(label)
        masks.append(mask)
    return ShiftPart(np.stack(images), np.array(labels, np.int64), np.stack(masks))


def _split(part: ShiftPart, n: int) -> tuple[ShiftPart, ShiftPart]:
    return (
        ShiftPart(part.images[:n], part.labels[:n], part.masks[:n]),
        ShiftPart(part.images[n:], part.labels[n:], part.masks[n:]),
    )


@functools.lru_cache(maxsize=4)
def shift_pair(kind: str, mode: str = "shift", photos: str = "tune", seed: int = 0) -> ShiftPair:
    """Generate one pair (cached in-process: do not modify its arrays).

    Raises:
        ValueError: an unknown kind, mode or photo set.
    """
    if kind not in KINDS or mode not in MODES:
        raise ValueError(f"kind must be one of {', '.join(KINDS)} and mode one of {', '.join(MODES)}")
    pool = photo_set(photos)
    rng = np.random.default_rng([seed, KINDS.index(kind), MODES.index(mode), PHOTO_SETS.index(photos)])
    if mode == "shift":
        source = _domain(pool, SOURCE_TRAIN + SOURCE_TEST, rng)
        target = _domain(pool, TARGET_TRAIN + TARGET_TEST, rng, kind)
    else:
        source = _domain(pool, SOURCE_TRAIN + SOURCE_TEST, rng, kind, CONTROL_RATE)
        target = _domain(pool, TARGET_TRAIN + TARGET_TEST, rng, kind, CONTROL_RATE, change=kind)
    source_train, source_test = _split(source, SOURCE_TRAIN)
    target_train, target_test = _split(target, TARGET_TRAIN)
    return ShiftPair(kind, mode, photos, seed, list(pool), source_train, source_test, target_train, target_test)


def builtin_shift_names() -> dict[str, str]:
    """The built-in shift domains: name → description."""
    names = {}
    for kind in KINDS:
        for mode in MODES:
            stem = pair_name(kind, mode)
            what = "with a random " if mode == "shift" else "global change, half with a "
            names[f"{stem}-source"] = (
                f"photo crops ({'clean' if mode == 'shift' else f'half with a {kind}'}); source of the {stem} pair"
            )
            names[f"{stem}-target"] = f"photo crops, {what}{kind} mark; target of the {stem} pair (masks in Python)"
    return names


def builtin_shift_arrays(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images, labels and masks of a built-in shift domain (its training part).

    Returns:
        uint8 (N, 256, 256, 3) RGB, int64 (N,), bool (N, 256, 256): True where an artefact changed the pixel.
    """
    if name not in builtin_shift_names():
        raise ValueError(f"unknown shift domain {name!r}; one of {', '.join(builtin_shift_names())}")
    stem, role = name.rsplit("-", 1)
    kind = stem.split("-")[1]
    mode = "control" if stem.endswith("-control") else "shift"
    pair = shift_pair(kind, mode, "tune", seed)
    part = pair.source if role == "source" else pair.target
    return part.images, part.labels, part.masks
