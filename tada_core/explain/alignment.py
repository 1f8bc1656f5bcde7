"""Alignment a user can read: do a class's target images land on the same class's source images?

The global proxy A-distance asks whether the two domains *overlap*. With each domain normalised by
its own BatchNorm statistics, as the default recipe trains, every model's domains overlap in their
first two moments: on the shipped digits pair it reads 0.0–0.4 for a model at 95 % on the target
and one at 55 % alike, moving more with the sample than between the models (docs/RESULTS.md). What
adaptation changes is whether the target images of class c sit on the *source images of class c*:

- **class-conditional MMD** (the headline, lower is better aligned): the squared maximum mean
  discrepancy between source class c and the target images of class c — by the target's labels
  when it has them, else by the model's predictions — averaged over classes. Gaussian kernel
  k(a, b) = exp(−γ‖a − b‖²) on L2-normalised bottleneck features z, γ = 1 / the median squared
  distance (median heuristic); unbiased estimate, so ≈ 0 (possibly just below) for aligned classes.
- **source-neighbour accuracy** (higher is better): the share of target images that the vote of
  their k = 10 nearest source images (cosine, in z) puts in their class; without labels, the share
  where that vote agrees with the model's prediction.

Measured on mnist → mnistm and photos → photos-sketch, tada vs source-only, the MMD's intervals are
far apart on both pairs; the neighbour agreement's overlap on the photos (docs/RESULTS.md).
Intervals are 95 %: for the MMD a percentile bootstrap that resamples both samples; for a share the
Wilson score interval of its count (it does not collapse to a point at 100 %).

Example:
    >>> class_mmd(src.features, src.labels, tgt.features, tgt.labels).to_dict()
    {'measure': 'class-conditional MMD …', 'value': 0.039, 'interval': [0.033, 0.045], 'reads': 'lower …'}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tada_core.errors import DataError
from tada_core.explain.features import a_distance

HIGHER = "higher is better aligned"
LOWER = "lower is better aligned"
NEIGHBOURS = 10
BOOTSTRAP = 200
MIN_CLASS = 2  # a class enters the class-conditional MMD with at least this many images a domain
BANDWIDTH_SAMPLE = 500  # images the median heuristic looks at


@dataclass
class Measure:
    """One alignment measure: its name, value, 95 % interval [low, high] and which end is better."""

    measure: str
    value: float
    interval: tuple[float, float]
    reads: str

    def to_dict(self) -> dict:
        low, high = self.interval
        return {
            "measure": self.measure,
            "value": round(self.value, 4),
            "interval": [round(low, 4), round(high, 4)],
            "reads": self.reads,
        }


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _check(source_z: np.ndarray, source_y: np.ndarray, target_z: np.ndarray, target_y: np.ndarray) -> None:
    if len(source_z) != len(source_y) or len(target_z) != len(target_y) or min(len(source_z), len(target_z)) < 2:
        raise DataError("alignment needs at least 2 images a domain and one class per image")


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a share ``hits / n``."""
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


def share(hits: np.ndarray, name: str) -> Measure:
    """The share of True in ``hits`` with its Wilson interval, read "higher is better aligned"."""
    hits = np.asarray(hits, dtype=bool)
    return Measure(name, float(hits.mean()), wilson_interval(int(hits.sum()), len(hits)), HIGHER)


def neighbour_vote(source_z: np.ndarray, source_y: np.ndarray, target_z: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """(N_t,) the class most of each target image's ``k`` nearest source images (cosine, in z) carry.

    Ties go to the class of the nearest image among the tied ones.
    """
    source_y = np.asarray(source_y, dtype=np.int64)
    k = min(k, len(source_z))
    similarity = _unit(target_z) @ _unit(source_z).T  # (N_t, N_s)
    nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(similarity, nearest, axis=1).argsort(axis=1)[:, ::-1]
    classes = source_y[np.take_along_axis(nearest, order, axis=1)]  # (N_t, k), nearest first
    rows = np.arange(len(classes))[:, None]
    counts = (classes[..., None] == np.arange(source_y.max() + 1)).sum(axis=1)  # (N_t, C)
    tied = counts[rows, classes] == counts.max(axis=1, keepdims=True)  # (N_t, k)
    return classes[rows[:, 0], tied.argmax(axis=1)]


def _gamma(z: np.ndarray, seed: int) -> float:
    """Median heuristic on unit vectors: 1 / the median squared distance of a sample of pairs."""
    probe = z[np.random.default_rng(seed).permutation(len(z))[:BANDWIDTH_SAMPLE]]
    squared = np.maximum(2.0 - 2.0 * probe @ probe.T, 0.0)[np.triu_indices(len(probe), 1)]
    return 1.0 / max(float(np.median(squared)), 1e-6)


def _within(kernel: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(B,) mean kernel over pairs of two different images of one domain; w (B, n): copies of each image."""
    pairs = w.sum(1) ** 2 - (w * w).sum(1)
    total = ((w @ kernel) * w).sum(1) - (w * w) @ np.diag(kernel)
    return np.divide(total, pairs, out=np.full(len(w), np.nan), where=pairs > 0)


def _mmd(kernel: np.ndarray, is_target: np.ndarray, copies: np.ndarray) -> np.ndarray:
    """(B,) unbiased MMD² of one class, for each row of ``copies`` (B, n): how often each image is drawn."""
    ws, wt = copies * ~is_target, copies * is_target
    cross = ((ws @ kernel) * wt).sum(1) / np.maximum(ws.sum(1) * wt.sum(1), 1e-12)
    empty = (ws.sum(1) == 0) | (wt.sum(1) == 0)  # a resample may leave a small class without a domain
    return np.where(empty, np.nan, _within(kernel, ws) + _within(kernel, wt) - 2.0 * cross)


def class_mmd(
    source_z: np.ndarray,
    source_y: np.ndarray,
    target_z: np.ndarray,
    target_y: np.ndarray,
    *,
    n_boot: int = BOOTSTRAP,
    seed: int = 0,
    name: str = "class-conditional MMD",
) -> Measure:
    """Mean over classes of MMD²(source images of class c, target images of class c).

    MMD² = mean k(s, s') + mean k(t, t') − 2 mean k(s, t), the within-domain means over pairs of
    two different images (unbiased; a bootstrap resample never pairs an image with its own copy).
    Classes with fewer than :data:`MIN_CLASS` images in either domain are left out. ``target_y``:
    the target's labels, or the model's predictions.
    """
    source_y, target_y = np.asarray(source_y, dtype=np.int64), np.asarray(target_y, dtype=np.int64)
    _check(source_z, source_y, target_z, target_y)
    z = np.concatenate([_unit(source_z), _unit(target_z)])
    labels = np.r_[source_y, target_y]
    domain = np.r_[np.zeros(len(source_z), bool), np.ones(len(target_z), bool)]  # True: target
    gamma = _gamma(z, seed)
    rng = np.random.default_rng(seed)
    n_s, n_t = len(source_z), len(target_z)
    draws = np.zeros((n_boot, n_s + n_t))  # how often each image is drawn in each resample of both domains
    for b in range(n_boot):
        draws[b, :n_s] = np.bincount(rng.integers(0, n_s, n_s), minlength=n_s)
        draws[b, n_s:] = np.bincount(rng.integers(0, n_t, n_t), minlength=n_t)
    values, replicates = [], []
    for c in np.unique(source_y):
        rows = np.flatnonzero(labels == c)
        is_target = domain[rows]
        if min(is_target.sum(), (~is_target).sum()) < MIN_CLASS:
            continue
        kernel = np.exp(-gamma * np.maximum(2.0 - 2.0 * z[rows] @ z[rows].T, 0.0))  # (n_c, n_c), unit vectors
        values.append(_mmd(kernel, is_target, np.ones((1, len(rows))))[0])
        replicates.append(_mmd(kernel, is_target, draws[:, rows]))
    if not values:
        raise DataError(
            f"the class-conditional MMD needs a class with {MIN_CLASS} or more images in both domains: use more images"
        )
    replicates = np.stack(replicates)  # (classes, n_boot); NaN where a resample left a class without a pair
    counted = ~np.isnan(replicates)
    means = np.nansum(replicates, axis=0)[counted.any(0)] / counted.sum(0)[counted.any(0)]
    low, high = np.percentile(means, [2.5, 97.5])
    return Measure(name, float(np.mean(values)), (float(low), float(high)), LOWER)


def a_distance_spread(source_z: np.ndarray, target_z: np.ndarray, *, splits: int = 5, seed: int = 0) -> Measure:
    """The global proxy A-distance (:func:`~tada_core.explain.features.a_distance`): its mean over
    ``splits`` random 50/50 splits, [min, max] over them as the interval."""
    values = [a_distance(source_z, target_z, seed=seed + s) for s in range(splits)]
    return Measure("proxy A-distance", float(np.mean(values)), (min(values), max(values)), LOWER)


def pair_alignment(
    source_z: np.ndarray,
    source_y: np.ndarray,
    target_z: np.ndarray,
    target_y: np.ndarray | None,
    target_pred: np.ndarray,
    *,
    n_boot: int = BOOTSTRAP,
    seed: int = 0,
) -> list[Measure]:
    """One checkpoint's alignment measures on one pair, the headline (class-conditional MMD) first.

    With target labels (``target_y``): the MMD by label, source-neighbour accuracy, the neighbours'
    agreement with the model, and the measured target accuracy. Without (None): the MMD by the
    model's predictions and the agreement.
    """
    target_pred = np.asarray(target_pred, dtype=np.int64)
    classes = target_pred if target_y is None else np.asarray(target_y, dtype=np.int64)
    by = "predictions" if target_y is None else "labels"
    mmd = class_mmd(
        source_z, source_y, target_z, classes, n_boot=n_boot, seed=seed, name=f"class-conditional MMD (target {by})"
    )
    votes = neighbour_vote(source_z, source_y, target_z)
    agreement = share(votes == target_pred, "source-neighbour agreement with the model")
    if target_y is None:
        return [mmd, agreement]
    return [
        mmd,
        share(votes == classes, "source-neighbour accuracy"),
        agreement,
        share(target_pred == classes, "target accuracy"),
    ]


def measure_line(measure: dict) -> str:
    """``name 0.039 (95 %: 0.033–0.045; lower is better aligned)`` from a :meth:`Measure.to_dict`."""
    low, high = measure["interval"]
    return f"{measure['measure']} {measure['value']:.3f} ({low:.3f}–{high:.3f}; {measure['reads']})"


def caption(measure: dict) -> str:
    """One sentence: what the headline measure (a :meth:`Measure.to_dict`) means."""
    by = "the model's predictions" if "predictions" in measure["measure"] else "their labels"
    return (
        f"**{measure['measure']}**: how far each class's target images (classes from {by}) lie from the same "
        "class's source images in the model's features, averaged over classes — 0 when every class is aligned, "
        "lower is better; the interval is a 95 % bootstrap over both samples."
    )
