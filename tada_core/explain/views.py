"""The three per-region views of an image and the colour scales that show them.

* ``attention`` — w = 1 − H₂(d̂ᵏ) ∈ [0, 1], what the model multiplies region k by, (1 + w)
  (eq. 3–4); high where the region's discriminator can still tell the domains apart.
* ``transferability`` — H₂(d̂ᵏ) = 1 − w ∈ [0, 1]; 1 where the region's discriminator cannot tell
  the domains apart.
* ``gap`` — the domain gap measured after training: P(target) per region from linear probes
  fitted on the frozen region features (:mod:`tada_core.explain.gap`) ∈ [0, 1]; high where this region
  of this image looks like the target domain, even when the training discriminators are fooled.

Scales (how values map to the two ends of a colormap), for all the grids of one request:
``shared`` — the min and max over all of them (fitted, comparable across images, the default);
``fixed`` — the view's full range; ``image`` — each grid's own min and max.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tada_core.errors import ConfigError


@dataclass(frozen=True)
class View:
    """What a per-region view shows: its name, the symbol and meaning in a legend, its range."""

    name: str
    label: str
    meaning: str
    fixed_range: tuple[float, float] = (0.0, 1.0)


VIEWS: dict[str, View] = {
    "attention": View(
        "attention",
        "attention w = 1 − H₂(d̂ᵏ)",
        "what the model multiplies each region by, (1 + w); high where its discriminator still tells the domains apart",
    ),
    "transferability": View(
        "transferability",
        "transferability H₂(d̂ᵏ) = 1 − w",
        "1 where the region's discriminator cannot tell the domains apart",
    ),
    "gap": View(
        "gap",
        "domain gap: probe P(target)",
        "linear probes fitted after training on the frozen region features; high where the region looks like the target",
    ),
}
SCALES = ("shared", "fixed", "image")
SCALE_NAMES = {
    "shared": "shared scale fitted to all images",
    "fixed": "fixed scale",
    "image": "each map its own min–max",
}


def check_view(view: str, scale: str = "shared") -> View:
    """The :class:`View` named ``view``; ConfigError for an unknown view or scale."""
    if view not in VIEWS:
        raise ConfigError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    return VIEWS[view]


def value_ranges(
    grids: Sequence[np.ndarray | None], scale: str, fixed: tuple[float, float] = (0.0, 1.0)
) -> list[tuple[float, float] | None]:
    """The (low, high) colour range of each grid under ``scale`` (None for a missing grid).

    ``shared``: min and max over all the given grids; ``image``: each grid's own min and max;
    ``fixed``: ``fixed``. A range with nothing to stretch (all values equal) falls back to ``fixed``.
    """
    check_view("attention", scale)
    present = [np.asarray(g, dtype=np.float64) for g in grids if g is not None]
    shared = (min(float(g.min()) for g in present), max(float(g.max()) for g in present)) if present else fixed
    ranges: list[tuple[float, float] | None] = []
    for grid in grids:
        if grid is None:
            ranges.append(None)
            continue
        lo, hi = {"shared": shared, "fixed": fixed, "image": (float(np.min(grid)), float(np.max(grid)))}[scale]
        ranges.append((lo, hi) if hi > lo else (float(fixed[0]), float(fixed[1])))
    return ranges


def range_text(value_range: tuple[float, float]) -> tuple[str, str]:
    """The two ends of a colour bar as text, with two significant digits of their difference."""
    lo, hi = value_range
    span = hi - lo
    decimals = min(6, max(2, math.ceil(-math.log10(span)) + 1)) if span > 0 else 2
    return f"{lo:.{decimals}f}", f"{hi:.{decimals}f}"
