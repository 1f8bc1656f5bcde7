"""Scoring a map against ground truth: cell ROC-AUC, AUC without the clean neighbours, pointing game.

A map (N, h, w) over the model's input and the pixel masks (N, S, S) of the same images are
compared on a g×g grid of cells (g = 7: the model's regions, 32 px at 224; g = 14: 16 px; or the
map's own grid). A map finer than the grid is max-pooled into it, a coarser one repeated.

* A cell is *positive* when the artefact covers ≥ 2 % of its pixels, *negative* when it covers
  none, and left out in between (a corner grazed by a blurred edge).
* ``auc``: ROC-AUC over all scored cells of all images, the map read ``high`` (or ``low``) =
  artefact; 0.5 is chance, 1 every positive cell above every negative one.
* ``auc_nn``: the same without the clean 8-connected neighbours of positive cells (does the map
  find the cell, or only its neighbourhood?).
* ``pointing``: over the images that carry an artefact, the share whose top cell touches it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

POSITIVE_COVER = 0.02


def neighbours(mask: np.ndarray) -> np.ndarray:
    """Cells next to (8-connected) but not in ``mask``; bool (N, h, w) → bool (N, h, w)."""
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    h, w = mask.shape[1:]
    grown = np.zeros_like(mask)
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            grown |= padded[:, dr : dr + h, dc : dc + w]
    return grown & ~mask


def cell_cover(masks: np.ndarray, grid: int) -> np.ndarray:
    """The share of each cell's pixels that the mask covers, (N, S, S) → (N, grid, grid) in [0, 1]."""
    m = torch.as_tensor(np.asarray(masks, dtype=np.float32))[:, None]
    return F.adaptive_avg_pool2d(m, grid)[:, 0].numpy()


def to_grid(score: np.ndarray, grid: int) -> np.ndarray:
    """A (N, h, w) map on a (N, grid, grid) grid: max-pooled when finer, repeated (nearest) when coarser."""
    s = torch.as_tensor(np.asarray(score, dtype=np.float32))[:, None]
    if s.shape[-1] > grid:
        s = F.adaptive_max_pool2d(s, grid)
    elif s.shape[-1] < grid:
        s = F.interpolate(s, size=(grid, grid), mode="nearest")
    return s[:, 0].numpy()


def metrics(score: np.ndarray, masks: np.ndarray, grid: int, reads: str = "high") -> dict[str, float]:
    """``auc``, ``auc_nn`` and ``pointing`` of ``score`` (N, h, w) against pixel ``masks`` (N, S, S)."""
    value = to_grid(score, grid) * (1.0 if reads == "high" else -1.0)
    cover = cell_cover(masks, grid)
    positive, touched = cover >= POSITIVE_COVER, cover > 0
    valid = positive | ~touched
    out: dict[str, float] = {}
    if positive[valid].any() and (~positive[valid]).any():
        out["auc"] = round(float(roc_auc_score(positive[valid], value[valid])), 4)
        keep = valid & ~neighbours(positive)
        if positive[keep].any() and (~positive[keep]).any():  # else every negative is a neighbour
            out["auc_nn"] = round(float(roc_auc_score(positive[keep], value[keep])), 4)
    carries = positive.any(axis=(1, 2))
    if carries.any():
        top = value.reshape(len(value), -1).argmax(1)
        hit = touched.reshape(len(value), -1)[np.arange(len(value)), top]
        out["pointing"] = round(float(hit[carries].mean()), 4)
    return out


def evaluate_map(score: np.ndarray, masks: np.ndarray, reads: str = "high", grids: tuple[int, ...] = (7,)) -> dict:
    """Metrics on each grid of ``grids`` and, for a finer map, on its own grid (``g7``, ``g14``, ``g56`` …)."""
    side = np.asarray(score).shape[-1]
    wanted = sorted({*grids, side}) if side > min(grids) else sorted(set(grids))
    return {f"g{g}": metrics(score, masks, g, reads) for g in wanted}
