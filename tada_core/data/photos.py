"""Natural-photo domains made offline: ``photos`` (source), ``photos-sketch`` and ``photos-grain`` (targets).

Both domains are square crops (random position, 45–100 % of the shorter side, random flip) of
the few colour photos that ship inside scikit-image, scikit-learn and matplotlib, resized to
256×256 RGB:

    cat         scikit-image ``chelsea``
    coffee      scikit-image ``coffee``
    motorcycle  scikit-image ``stereo_motorcycle`` (left and right views)
    person      scikit-image ``astronaut``, matplotlib ``grace_hopper.jpg``

``photos`` keeps the crops as they are; ``photos-sketch`` draws other crops (another seed) and
renders them with OpenCV: a colour pencil sketch (``cv2.pencilSketch``), a warm colour cast,
sensor noise and a heavy JPEG compression. ``photos-grain`` draws other crops again and renders
them as a poor grayscale camera: 64-px resolution, blur σ 1.5, contrast × 0.7, sensor noise σ 32
(source-only accuracy about 60–66 %). All are deterministic by seed and cached in-process.

Be honest about what this is: with one or two photos per class, a class is "which photo is this
crop from", and the target shows the same scenes as the source in another rendering. It is a
small, hard-enough test of adaptation on photos (see docs/RESULTS.md), not a benchmark.

Example:
    >>> images, labels = photo_arrays("photos-sketch", per_class=40, seed=0)
    >>> images.shape, images.dtype
    ((160, 256, 256, 3), dtype('uint8'))
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

PHOTO_CLASSES = ("cat", "coffee", "motorcycle", "person")
PHOTO_DOMAINS = ("photos", "photos-sketch", "photos-grain")
PHOTO_SIZE = 256
PER_CLASS = 40


def _grace_hopper() -> np.ndarray:
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@functools.lru_cache(maxsize=1)
def class_photos() -> dict[str, list[np.ndarray]]:
    """The shipped colour photos of each class: uint8 (H, W, 3) RGB arrays."""
    from skimage import data

    left, right, _ = data.stereo_motorcycle()
    return {
        "cat": [data.chelsea()],
        "coffee": [data.coffee()],
        "motorcycle": [left, right],
        "person": [data.astronaut(), _grace_hopper()],
    }


def _crop(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random square crop (45–100 % of the shorter side), maybe flipped, resized to 256×256."""
    import cv2

    height, width = photo.shape[:2]
    side = int(min(height, width) * rng.uniform(0.45, 1.0))
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    crop = photo[top : top + side, left : left + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return cv2.resize(np.ascontiguousarray(crop), (PHOTO_SIZE, PHOTO_SIZE), interpolation=cv2.INTER_AREA)


def render_sketch(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The target rendering: OpenCV colour pencil sketch, warm cast, noise, JPEG quality 15.

    Args:
        image: uint8 (H, W, 3) RGB.

    Returns:
        uint8 (H, W, 3) RGB.
    """
    import cv2

    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    _, sketch = cv2.pencilSketch(bgr, sigma_s=40, sigma_r=0.08, shade_factor=0.04)
    out = sketch.astype(np.float32) * np.array([0.8, 0.95, 1.1], np.float32)  # BGR: warmer
    out += rng.normal(0.0, 12.0, out.shape).astype(np.float32)
    _, encoded = cv2.imencode(".jpg", np.clip(out, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 15])
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def render_grain(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A grainy grayscale camera: 64-px resolution, blur σ 1.5, contrast × 0.7 (and 10 % darker), noise σ 32.

    Args:
        image: uint8 (H, W, 3) RGB.

    Returns:
        uint8 (H, W, 3) RGB (three equal channels).
    """
    import cv2

    height, width = image.shape[:2]
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey = cv2.resize(
        cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA), (width, height), interpolation=cv2.INTER_LINEAR
    )
    grey = cv2.GaussianBlur(grey, (0, 0), 1.5)
    grey = (grey - grey.mean()) * 0.7 + grey.mean() * 0.9
    grey = grey + rng.normal(0, 32, grey.shape)
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


RENDERINGS = {"photos": (None, 0), "photos-sketch": (render_sketch, 1), "photos-grain": (render_grain, 4)}
"""name → (rendering of a crop, the tag that seeds its crops with the domain seed)."""


@functools.lru_cache(maxsize=4)
def photo_arrays(name: str, per_class: int = PER_CLASS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Generate domain ``name`` (``photos``, ``photos-sketch`` or ``photos-grain``).

    Returns:
        ``(images, labels)``: uint8 (N, 256, 256, 3) RGB and int64 (N,), N = 4·per_class, class
        ``i`` is ``PHOTO_CLASSES[i]``. The arrays are shared by the cache: do not modify them.
    """
    if name not in PHOTO_DOMAINS:
        raise ValueError(f"unknown photo domain {name!r}; one of {', '.join(PHOTO_DOMAINS)}")
    render, tag = RENDERINGS[name]
    rng = np.random.default_rng([seed, tag])
    photos = class_photos()
    images, labels = [], []
    for label, cls in enumerate(PHOTO_CLASSES):
        for i in range(per_class):
            image = _crop(photos[cls][i % len(photos[cls])], rng)
            images.append(render(image, rng) if render else image)
            labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.int64)
