"""From the model's square input back to the user's image: where each map value lies, to the pixel.

The test transform (:func:`tada_core.data.build_transform`) squeezes an image of any shape into
the model's S×S input: digit models (S ≤ 64) resize it to S×S; photo models resize it to R×R,
``R = round(256·S/224)``, and keep the centre S×S crop. So the model sees a box of the original
image — all of it for digits, the centre 87.5 % of each side for photos — stretched to a square.
:class:`InputGeometry` is that box in the original's pixel-edge coordinates (x to the right, y
down, pixel i spans [i, i + 1)); a map over the model's input (any h×w grid: the 7×7 regions or a
finer one) covers exactly the box, cell (r, c) the rectangle

    x ∈ [x0 + c·(x1 − x0)/w, x0 + (c + 1)·(x1 − x0)/w),   y likewise with r, h and y0, y1.

:func:`display_size` picks the size the overlay is drawn at: the image's own aspect ratio, up to
1024 px on the long side, small photos enlarged to 448 px and digit-sized images by a whole factor
to about 224 px; :func:`map_on_display` resamples a grid onto that canvas, NaN outside the box.

Example:
    >>> geometry = input_geometry(480, 200, image_size=224)       # a 480×200 photo, a 224 model
    >>> geometry.box                                                # the centre 87.5 % of each side
    (30.0, 12.5, 450.0, 187.5)
    >>> width, height = display_size(480, 200)
    >>> map_on_display(np.eye(7), geometry, width, height).shape
    (200, 480)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from tada_core.data.transforms import is_deterministic

MAX_LONG_SIDE = 1024
MIN_LONG_SIDE = 448
DIGIT_LONG_SIDE = 224  # digit-sized images (≤ 64 px) are enlarged by a whole factor towards this
MAP_MODES = ("smooth", "blocky")


@dataclass(frozen=True)
class InputGeometry:
    """The part of an original image (``width`` × ``height`` pixels) the model's input shows.

    Attributes:
        box: ``(x0, y0, x1, y1)`` in the original's pixel-edge coordinates.
    """

    width: int
    height: int
    box: tuple[float, float, float, float]

    def scaled(self, width: int, height: int) -> InputGeometry:
        """The same geometry on a resized copy of the image (``width`` × ``height``)."""
        sx, sy = width / self.width, height / self.height
        x0, y0, x1, y1 = self.box
        return InputGeometry(width, height, (x0 * sx, y0 * sy, x1 * sx, y1 * sy))


def input_geometry(width: int, height: int, image_size: int) -> InputGeometry:
    """Where the test transform's S×S input (``image_size``) lies in a ``width`` × ``height`` image."""
    if is_deterministic(image_size):
        return InputGeometry(width, height, (0.0, 0.0, float(width), float(height)))
    resized = round(256 * image_size / 224)
    offset = round((resized - image_size) / 2.0)  # torchvision's CenterCrop (the same rounding)
    sx, sy = width / resized, height / resized
    return InputGeometry(
        width, height, (offset * sx, offset * sy, (offset + image_size) * sx, (offset + image_size) * sy)
    )


def display_size(
    width: int, height: int, *, max_long: int = MAX_LONG_SIDE, min_long: int = MIN_LONG_SIDE
) -> tuple[int, int]:
    """The size an overlay of a ``width`` × ``height`` image is drawn at, keeping its aspect ratio.

    Longer than ``max_long``: shrunk to it. Shorter than ``min_long``: enlarged to it; a digit-sized
    image (≤ 64 px) by the largest whole factor that keeps it within 224 px, so its pixels stay
    crisp squares.
    """
    long = max(width, height)
    if long > max_long:
        scale = max_long / long
    elif long <= 64:
        scale = max(1, DIGIT_LONG_SIDE // long)
    elif long < min_long:
        scale = min_long / long
    else:
        scale = 1.0
    return max(1, round(width * scale)), max(1, round(height * scale))


def display_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` (H, W, 3) uint8 resized to ``width`` × ``height``: nearest when enlarged by a whole
    factor (digits stay sharp squares), Lanczos otherwise."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    whole = width % image.shape[1] == 0 and height % image.shape[0] == 0 and width > image.shape[1]
    method = Image.Resampling.NEAREST if whole else Image.Resampling.LANCZOS
    return np.asarray(Image.fromarray(image).resize((width, height), method))


def map_on_display(
    grid: np.ndarray, geometry: InputGeometry, width: int, height: int, mode: str = "smooth"
) -> np.ndarray:
    """The (h, w) ``grid`` over the model's input, resampled onto a ``width`` × ``height`` drawing of
    the original image: float32 (height, width), NaN where the model did not look.

    ``smooth`` interpolates bicubically between cell centres (clipped to the grid's range, so no
    value is invented); ``blocky`` gives each cell its rectangle. Every display pixel takes the
    value at its centre.
    """
    if mode not in MAP_MODES:
        raise ValueError(f"mode must be one of {', '.join(MAP_MODES)}, not {mode!r}")
    grid = np.asarray(grid, dtype=np.float32)
    if grid.ndim != 2:
        raise ValueError(f"grid must be 2-D (h, w), got shape {grid.shape}")
    h, w = grid.shape
    x0, y0, x1, y1 = geometry.scaled(width, height).box
    # each display pixel centre in grid coordinates (cell c spans [c, c + 1))
    gx = ((np.arange(width) + 0.5) - x0) / (x1 - x0) * w
    gy = ((np.arange(height) + 0.5) - y0) / (y1 - y0) * h
    inside = (gy[:, None] >= 0) & (gy[:, None] < h) & (gx[None, :] >= 0) & (gx[None, :] < w)
    if mode == "blocky":
        cols = np.clip(np.floor(gx).astype(int), 0, w - 1)
        rows = np.clip(np.floor(gy).astype(int), 0, h - 1)
        values = grid[np.ix_(rows, cols)]
    else:
        values = _bicubic(grid, gy - 0.5, gx - 0.5)  # cell centres sit at c + 0.5
        values = np.clip(values, grid.min(), grid.max())
    return np.where(inside, values, np.nan).astype(np.float32)


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution weights (a = −0.5) of the 4 neighbours at offsets −1, 0, 1, 2; (n, 4)."""
    a = -0.5
    d = np.stack([1 + t, t, 1 - t, 2 - t], axis=1)  # distances to the 4 taps
    near = ((a + 2) * d**3 - (a + 3) * d**2 + 1) * (d <= 1)
    far = (a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a) * ((d > 1) & (d < 2))
    return near + far


def _taps(coord: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    base = np.floor(coord).astype(int)
    index = np.clip(base[:, None] + np.arange(-1, 3)[None, :], 0, size - 1)  # edge values repeat
    return index, _cubic_weights(coord - base)


def _bicubic(grid: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Separable bicubic interpolation of ``grid`` at the outer product of ``rows`` × ``cols``."""
    ri, rw = _taps(rows, grid.shape[0])  # (H, 4)
    ci, cw = _taps(cols, grid.shape[1])  # (W, 4)
    along_rows = np.einsum("hk,hkw->hw", rw, grid[ri])  # (H, w)
    return np.einsum("wk,hwk->hw", cw, along_rows[:, ci]).astype(np.float32)


def fits(width: int, height: int, limit: int = MAX_LONG_SIDE) -> tuple[int, int]:
    """``width`` × ``height`` shrunk to at most ``limit`` on the long side (for keeping originals)."""
    scale = min(1.0, limit / max(width, height))
    return max(1, math.floor(width * scale + 0.5)), max(1, math.floor(height * scale + 0.5))
