"""Ground truth for the shift examples: which uploaded image is an example with a known artefact mask,
and the mask's outline drawn over an overlay.

    mask_for(data)                       bool (H, W) mask of an example image's artefact, or None
    outline(image, mask)                 ``image`` with a box drawn around the mask (the mask is
                                         scaled to the image, so it fits any overlay of that photo)

An upload is matched to an example by the digest of its bytes (the app's upload copies keep the
bytes, not the path), so a visitor's own photo never gets an outline it does not have.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

from tada_core.data.shift_export import find_mask

SHIFT_EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples" / "shift"
OUTLINE_RGB = (255, 255, 255)
SHADOW_RGB = (0, 0, 0)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@functools.lru_cache(maxsize=4)
def _masks(folder: Path) -> dict[str, Path]:
    """Digest of each example image that has a non-empty mask → that image's path."""
    found = {}
    for path in sorted(folder.glob("*.png")):
        mask = find_mask(path)
        if mask is not None and mask.any():
            found[_digest(path.read_bytes())] = path
    return found


def mask_for(data: bytes, folder: Path = SHIFT_EXAMPLES_DIR) -> np.ndarray | None:
    """The artefact mask (bool, the example's own H × W) of the example whose bytes are ``data``."""
    path = _masks(folder).get(_digest(data))
    return find_mask(path) if path is not None else None


def box_of(mask: np.ndarray, height: int, width: int, pad: int = 2) -> tuple[int, int, int, int] | None:
    """The bounding box ``(top, left, bottom, right)`` (inclusive) of ``mask`` scaled to a
    ``height`` × ``width`` image, grown by ``pad`` pixels and clipped to it; None for an empty mask."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    sy, sx = height / mask.shape[0], width / mask.shape[1]
    top = max(0, int(np.floor(rows.min() * sy)) - pad)
    left = max(0, int(np.floor(cols.min() * sx)) - pad)
    bottom = min(height - 1, int(np.ceil((rows.max() + 1) * sy)) - 1 + pad)
    right = min(width - 1, int(np.ceil((cols.max() + 1) * sx)) - 1 + pad)
    return top, left, bottom, right


def outline(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of ``image`` (H, W, 3 uint8) with a box around ``mask`` (any size; scaled to H × W):
    white, 1 px (2 px from 300 px up), inside a black 1 px shadow so it shows on every colormap. A box,
    not the mask's own border, so the map under the mark (e.g. text strokes) stays visible."""
    height, width = image.shape[:2]
    box = box_of(mask, height, width, pad=3)
    drawn = image.copy()
    if box is None:
        return drawn
    thick = 2 if max(height, width) >= 300 else 1
    for ring, color in ((thick, SHADOW_RGB), (0, OUTLINE_RGB)):  # the shadow one pixel outside the line
        top, left, bottom, right = box
        top, left = max(0, top - (ring > 0)), max(0, left - (ring > 0))
        bottom, right = min(height - 1, bottom + (ring > 0)), min(width - 1, right + (ring > 0))
        width_px = thick + (ring > 0)
        drawn[top : top + width_px, left : right + 1] = color
        drawn[bottom - width_px + 1 : bottom + 1, left : right + 1] = color
        drawn[top : bottom + 1, left : left + width_px] = color
        drawn[top : bottom + 1, right - width_px + 1 : right + 1] = color
    return drawn
