"""The arithmetic of the accuracy estimate without target labels ("PM-own"): pure functions.

Notation: N unlabelled target images; ŷ_i the prediction of the deployed model (eval mode, its
running BatchNorm statistics); ℓ_i ∈ R^C the logits of the same model with the *target's own*
BatchNorm statistics (as training normalised each domain); π the source's class prior; T > 0 a
temperature fitted on labelled calibration sets drawn from the held-out source
(:mod:`tada_core.training.calibration`).

    p_i      = softmax(ℓ_i / T)                                      calibrated posteriors
    q_i(y)   = p_i(y)·w_y / Σ_y' p_i(y')·w_y'    with w such that (1/N) Σ_i q_i = π
               (prior matching, the EM / Sinkhorn balancing of Saerens et al., 2002)
    estimate = 100 · (1/N) Σ_i q_i(ŷ_i)                              in %

T = argmin_T −(1/n) Σ_j log softmax(z_j / T)[y_j] over a log-spaced grid (temperature scaling,
Guo et al., 2017), on all calibration sets pooled; T_k the same on set k alone. The interval is
[min, max] of the estimate over {T} ∪ {T_k}, widened by one point and clipped to [0, 100].
Assumption: the target's classes are mixed as in the source (no label shift); prior matching
re-balances the posteriors toward π.

With T = 1, own = running statistics, a uniform π and posteriors whose mean is already uniform,
w = 1 and the estimate is the average confidence (AC) (1/N) Σ_i max_y p_i(y).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

TEMPERATURE_GRID = torch.exp(torch.linspace(math.log(0.05), math.log(20.0), 241, dtype=torch.float64))
"""Candidate temperatures: 241 log-spaced values from 0.05 to 20."""
PRIOR_ITERATIONS = 200
INTERVAL_MARGIN = 1.0  # points added on each side of [min, max] over the temperatures
UNCERTAIN_WIDTH = 10.0  # an interval wider than this many points is flagged "uncertain"

METHOD = "PM-own: temperature from a held-out-source augmentation ladder, own BatchNorm statistics, prior matching"
ASSUMPTION = (
    "the target's classes are mixed as in the source (no label shift); the estimate is least reliable "
    "for shifts unlike the ladder's generic augmentations (e.g. another writing style)"
)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, grid: torch.Tensor = TEMPERATURE_GRID) -> float:
    """The T of ``grid`` that minimises the mean negative log-likelihood of ``labels`` under
    softmax(logits / T) (the smallest such T on ties).

    Args:
        logits: (n, C). labels: int64 (n,), every one in [0, C).
    """
    logits, labels = logits.double(), labels.long()
    chosen = logits[torch.arange(len(labels)), labels]  # (n,)
    nll = torch.cat(
        [
            (torch.logsumexp(logits[None] / t.view(-1, 1, 1), dim=2) - chosen[None] / t.view(-1, 1)).mean(dim=1)
            for t in grid.double().split(16)  # (16, n, C) at a time
        ]
    )  # (G,)
    return float(grid[int(torch.argmin(nll))])


def prior_match(probs: torch.Tensor, prior: torch.Tensor, iterations: int = PRIOR_ITERATIONS) -> torch.Tensor:
    """Posteriors re-weighted per class so that their mean is ``prior``.

    q_i(y) ∝ p_i(y)·w_y; w by the fixed point w ← w·π / mean_i q_i (normalised each time).

    Args:
        probs: (N, C) rows summing to 1. prior: (C,) non-negative, summing to 1 (normalised here).

    Returns:
        (N, C) float64 rows summing to 1.
    """
    p = probs.double()
    target = prior.double() / prior.double().sum()
    weights = torch.ones(p.shape[1], dtype=torch.float64)
    for _ in range(iterations):
        q = p * weights
        q = q / q.sum(dim=1, keepdim=True)
        weights = weights * target / q.mean(dim=0).clamp_min(1e-12)
        weights = weights / weights.sum()
    q = p * weights
    return q / q.sum(dim=1, keepdim=True)


def matched_accuracy(
    own_logits: torch.Tensor, predictions: torch.Tensor, temperature: float, prior: torch.Tensor
) -> float:
    """100 · mean_i q_i(ŷ_i) with q = prior_match(softmax(own_logits / T), prior), in %."""
    q = prior_match(torch.softmax(own_logits.double() / temperature, dim=1), prior)
    return 100.0 * float(q[torch.arange(len(predictions)), predictions.long()].mean())


@dataclass
class Calibration:
    """What a checkpoint stores to estimate its accuracy on any unlabelled target (≤ 20 floats + C).

    Attributes:
        temperature: T, fitted on all calibration sets pooled.
        rung_temperatures: T_k of each set: the held-out source, then each ladder rung used.
        rung_names: ``held-out`` then ``severity 1``, ``severity 2``, …
        rung_accuracies: accuracy (%) of each set with its own BatchNorm statistics.
        rung_sizes: images per set.
        source_prior: class frequencies π of the source, summing to 1.
        ladder: the recipe of the augmented rungs (:class:`~tada_core.training.ladder.LadderRecipe` as a dict).
        split: how the held-out source was drawn (``fraction``, ``seed``, ``stratified``, ``size``).
    """

    temperature: float
    rung_temperatures: list[float]
    rung_names: list[str]
    rung_accuracies: list[float]
    rung_sizes: list[int]
    source_prior: list[float]
    ladder: dict = field(default_factory=dict)
    split: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        return cls(
            temperature=float(data["temperature"]),
            rung_temperatures=[float(t) for t in data["rung_temperatures"]],
            rung_names=[str(n) for n in data.get("rung_names", [])],
            rung_accuracies=[float(a) for a in data.get("rung_accuracies", [])],
            rung_sizes=[int(n) for n in data.get("rung_sizes", [])],
            source_prior=[float(p) for p in data["source_prior"]],
            ladder=dict(data.get("ladder") or {}),
            split=dict(data.get("split") or {}),
        )


@dataclass
class Estimate:
    """An accuracy estimate on an unlabelled target, in % (``to_dict`` is the JSON of ``tada estimate``).

    Attributes:
        estimated_accuracy: the estimate (PM-own with T).
        interval: [low, high], min/max over {T, T_k} ± 1 point, clipped to [0, 100].
        uncertain: the interval is wider than :data:`UNCERTAIN_WIDTH` points.
        n_images: target images it was computed on.
        temperature: T.
        method, assumption: what it is and what it assumes, in one line each.
        measured_accuracy: the accuracy measured with labels, when the target has them (never used
            to estimate).
        notes: anything the reader should know (an older checkpoint calibrated now, …).
    """

    estimated_accuracy: float
    interval: list[float]
    uncertain: bool
    n_images: int
    temperature: float
    method: str = METHOD
    assumption: str = ASSUMPTION
    measured_accuracy: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Estimate:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def estimate(own_logits: torch.Tensor, predictions: torch.Tensor, calibration: Calibration) -> Estimate:
    """The PM-own estimate and its interval for one target.

    Args:
        own_logits: (N, C) logits with the target's own BatchNorm statistics.
        predictions: int64 (N,) predictions of the deployed model (running statistics).
        calibration: the stored :class:`Calibration`.
    """
    prior = torch.tensor(calibration.source_prior, dtype=torch.float64)
    value = matched_accuracy(own_logits, predictions, calibration.temperature, prior)
    band = [value] + [matched_accuracy(own_logits, predictions, t, prior) for t in calibration.rung_temperatures]
    low = max(0.0, min(band) - INTERVAL_MARGIN)
    high = min(100.0, max(band) + INTERVAL_MARGIN)
    return Estimate(
        estimated_accuracy=round(value, 2),
        interval=[round(low, 2), round(high, 2)],
        uncertain=high - low > UNCERTAIN_WIDTH,
        n_images=len(predictions),
        temperature=calibration.temperature,
    )
