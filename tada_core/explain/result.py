"""The model's view of one image (:class:`AttentionResult`) and how each per-region view is read from it.

:mod:`tada_core.explain.inference` makes results; the views (:mod:`tada_core.explain.views`), the
drawing (:mod:`tada_core.explain.viz`), the CLI and the app read them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tada_core.explain.geometry import InputGeometry
from tada_core.explain.views import DEFAULT_ORDER, VIEWS, check_view


@dataclass
class AttentionResult:
    """The model's view of one image.

    Attributes:
        image: (S, S, 3) uint8 RGB, the image as the model saw it (resized / centre-cropped,
            un-normalised), ready for :func:`tada_core.explain.viz.overlay_attention`.
        grid: (h, w) float32 local attention w ∈ [0, 1]; None for variants without it.
        probs: (C,) float32 softmax probabilities.
        top_k: the k most probable ``(class name, probability)`` pairs, most probable first.
        predicted: the most probable class name.
        global_attention: m ∈ [1, 2]; None for ``source_only``.
        domain_prob: σ(global domain logit) = P(source); None for ``source_only``.
        gap: (h, w) float32 domain-gap view, the region probes' P(target) ∈ [0, 1]
            (:mod:`tada_core.explain.gap`); None unless probes were given.
        original: (H, W, 3) uint8 RGB, the image as the user gave it (upright, at most 1024 px on
            its long side); None when only the model's input is known.
        geometry: where the model's input lies in the image as the user gave it, in its pixels
            (:mod:`tada_core.explain.geometry`; ``geometry.scaled`` maps it onto ``original``). Every
            grid, whatever its size, covers exactly this box.
        shift: (h', w') float32 shift view σ(z) ∈ [0, 1] of the shift localiser
            (:mod:`tada_core.explain.shift`), a finer grid (56×56 photos, 14×14 digits); None unless a
            localiser was given.
        shift_fitted_on: ``(source, target)``, how many images of each domain the shift localiser was
            fitted on; None without a localiser or when its fit did not record them.
    """

    image: np.ndarray
    grid: np.ndarray | None
    probs: np.ndarray
    top_k: list[tuple[str, float]]
    predicted: str
    global_attention: float | None
    domain_prob: float | None
    gap: np.ndarray | None = None
    original: np.ndarray | None = None
    geometry: InputGeometry | None = None
    shift: np.ndarray | None = None
    shift_fitted_on: tuple[int, int] | None = None

    def to_dict(self, grid_view: str = "attention") -> dict:
        """JSON-ready summary (no image pixels); ``views`` holds the grid of each view.

        ``grid`` is the grid of ``grid_view`` (``tada attention`` passes :func:`default_view`) and
        ``grid_reads`` the end of it that marks where the image differs from the source. ``grid_box``
        is ``[x0, y0, x1, y1]``, the part of the user's image, in its pixels, that the grid covers
        (cell (r, c) of an h×w grid spans x0 + c·(x1 − x0)/w … x0 + (c + 1)·(x1 − x0)/w, y likewise);
        ``view_boxes`` gives each view's box and shape. ``localiser`` holds the shift localiser's fit
        counts (``source_images``, ``target_images``) when they are known.
        """
        grids = {view: view_grid(self, view) for view in VIEWS}
        main = grids[check_view(grid_view).name]
        box = [round(v, 4) for v in self.geometry.box] if self.geometry is not None else None
        counts = self.shift_fitted_on
        return {
            "predicted": self.predicted,
            "top_k": [{"class": name, "prob": round(p, 6)} for name, p in self.top_k],
            "global_attention": self.global_attention,
            "domain_prob": self.domain_prob,
            "grid_view": grid_view,
            "grid_reads": VIEWS[grid_view].reads,
            "grid_shape": list(main.shape) if main is not None else None,
            "grid": np.round(main, 6).tolist() if main is not None else None,
            "grid_mean": float(main.mean()) if main is not None else None,
            "views": {view: np.round(g, 6).tolist() if g is not None else None for view, g in grids.items()},
            "view_shapes": {view: list(g.shape) if g is not None else None for view, g in grids.items()},
            "grid_box": box if main is not None else None,
            "view_boxes": {
                view: {"box": box, "shape": list(g.shape)} if g is not None and box is not None else None
                for view, g in grids.items()
            },
            "localiser": {"source_images": counts[0], "target_images": counts[1]} if counts else None,
        }


def fit_note(result: AttentionResult) -> str | None:
    """``fitted on 500 + 500 images (source + target)`` for a result whose shift localiser recorded its
    fit counts, else None (a localiser fitted before they were recorded says nothing)."""
    if result.shift_fitted_on is None:
        return None
    source, target = result.shift_fitted_on
    return f"fitted on {source} + {target} images (source + target)"


def view_grid(result: AttentionResult, view: str) -> np.ndarray | None:
    """The (h, w) grid of ``view`` for one image, or None when that view is not available for it."""
    check_view(view)
    if view == "gap":
        return result.gap
    if view == "shift":
        return result.shift
    if result.grid is None:
        return None
    return result.grid if view == "attention" else (1.0 - result.grid).astype(np.float32)


def default_view(result: AttentionResult) -> str:
    """The view an image opens on: the first of shift, gap and attention that it has (attention when none)."""
    return next((view for view in DEFAULT_ORDER if view_grid(result, view) is not None), "attention")
