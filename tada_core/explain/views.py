"""The three per-region views of an image and the colour scales that show them.

* ``attention`` — w = 1 − H₂(d̂ᵏ) ∈ [0, 1], what the model multiplies region k by, (1 + w)
  (eq. 3–4); high where the region's discriminator can still tell the domains apart.
* ``transferability`` — H₂(d̂ᵏ) = 1 − w ∈ [0, 1]; 1 where the region's discriminator cannot tell
  the domains apart.
* ``gap`` — the domain gap measured after training: P(target) per region from linear probes
  fitted on the frozen region features (:mod:`tada_core.explain.gap`) ∈ [0, 1]; high where this region
  of this image looks like the target domain, even when the training discriminators are fooled.

* ``shift`` — where the target differs: σ(z) ∈ [0, 1] of the shift localiser's logit z, a scorer
  shared by all positions, fitted after training on the frozen stride-8 features
  (:mod:`tada_core.model.localiser`); a finer map (56×56 on photos, 14×14 on digits); high where
  this part of the image has no counterpart anywhere in the source domain.

Which end marks where the image differs from the source (``View.reads``): high for attention,
gap and shift, low for transferability. :func:`default_view` picks the view an image opens on:
shift when the checkpoint has it, else gap, else attention.

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

# ROC-AUC of each view against planted artefacts (held-out target images, 7×7 cells), measured by
# `tada bench localisation` (docs/bench/localisation_photos_frozen_*.json, docs/RESULTS.md
# "Localisation on photos"); shown in every view's caption. tests/test_views_measured.py recomputes
# them from the JSON with tada_core.bench.localisation.measured_captions.
MEASURED: dict[str, str] = {
    "attention": "benchmark cell AUC 0.49–0.57 on 6 planted-artefact photo pairs, 0.46 on digits",
    "gap": "benchmark cell AUC 0.48–0.70 on 6 planted-artefact photo pairs, 0.89 on digits",
    "shift": "benchmark cell AUC 0.76–0.99 on 6 planted-artefact photo pairs, 1.00 on digits",
    "transferability": "benchmark cell AUC 0.49–0.57 on 6 planted-artefact photo pairs, 0.46 on digits",
}
FLAT_SPAN = 0.02  # a map whose values span no more than this is reported as nearly flat


@dataclass(frozen=True)
class View:
    """What a per-region view shows: its name, the symbol and meaning in a legend, its range, and
    which end (``high`` or ``low``) marks where the image differs from the source."""

    name: str
    label: str
    what: str
    fixed_range: tuple[float, float] = (0.0, 1.0)
    reads: str = "high"

    @property
    def meaning(self) -> str:
        """One sentence saying what the view measures, with its benchmark AUC where measured."""
        measured = MEASURED.get(self.name)
        return f"{self.what} ({measured})" if measured else self.what


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
        reads="low",
    ),
    "gap": View(
        "gap",
        "domain gap: probe P(target)",
        "linear probes fitted after training on the frozen region features; high where the region looks like the target",
    ),
    "shift": View(
        "shift",
        "where the target differs: σ(shift logit)",
        "where the target differs: a scorer shared by all regions, fitted after training on the frozen features; "
        "high where nothing like this part occurs in the source",
    ),
}
DEFAULT_ORDER = ("shift", "gap", "attention")
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


def flat_note(value_range: tuple[float, float] | None) -> str | None:
    """A warning when a colour range spans at most :data:`FLAT_SPAN` (the map is nearly flat and its
    colours are stretched over a tiny range), else None."""
    if value_range is None:
        return None
    span = value_range[1] - value_range[0]
    if span > FLAT_SPAN:
        return None
    return f"nearly flat: the values span only {span:.2g} (≤ {FLAT_SPAN}), so small differences fill the colour range"
