"""The arithmetic of the accuracy estimate without target labels ("PM-own" with the class mix): pure functions.

Notation: N unlabelled target images; ŷ_i the prediction of the deployed model (eval mode, its
running BatchNorm statistics); ℓ_i ∈ R^C the logits of the same model with the *target's own*
BatchNorm statistics, the target re-balanced to the source's class mix
(:func:`~tada_core.training.label_shift.balance_weights`); π the source's class prior; T > 0 a
temperature fitted on labelled calibration sets drawn from the held-out source
(:mod:`tada_core.training.calibration`).

    p_i      = softmax(ℓ_i / T)                                      calibrated posteriors
    π̂        = EM mix of p under π (:mod:`tada_core.training.label_shift`)   the target's class mix
    q_i(y)   = p_i(y)·w_y / Σ_y' p_i(y')·w_y'    with w such that (1/N) Σ_i q_i = m
               (prior matching, the EM / Sinkhorn balancing of Saerens et al., 2002)
    estimate = 100 · (1/N) Σ_i q_i(ŷ_i)                              in %

with m = π̂ (the estimated mix), or m = π (the source's mix, the estimate before issue 34) when
the target is beyond the calibration (below). T = argmin_T −(1/n) Σ_j log softmax(z_j / T)[y_j]
over a log-spaced grid (temperature scaling, Guo et al., 2017), on all calibration sets pooled;
T_k the same on set k alone. The interval is [min, max] of the estimate over {T} ∪ {T_k}, widened
by one point and clipped to [0, 100].

The mix cannot tell label shift from a model that confuses classes on the target: both move the
predicted mix. Where the model is confident, the move is read as label shift; where its mean
calibrated confidence (1/N) Σ_i max_y p_i(y) is below the ladder's stop accuracy (75 %: the
calibration sets reach down to about that accuracy), the model's own mistakes move its mix
(source-only on MNIST-M reads a balanced target as a mix 0.38 away from it), so the source's mix is
kept. ``uncertain`` is true, each with its reason, when:
- the class mix: the estimated mix is more than :data:`MIX_SHIFT` (total variation) from the
  source's — label shift or confusion, the images cannot say which; the estimate under the
  source's mix is reported beside it;
- the calibration: the interval is wider than :data:`UNCERTAIN_WIDTH` points;
- the covariate shift: the target is beyond the calibration (as above).

With T = 1, own = running statistics, a uniform π and posteriors whose mean is already uniform,
π̂ = π, w = 1 and the estimate is the average confidence (AC) (1/N) Σ_i max_y p_i(y).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from tada_core.training.label_shift import estimate_mix, total_variation

TEMPERATURE_GRID = torch.exp(torch.linspace(math.log(0.05), math.log(20.0), 241, dtype=torch.float64))
"""Candidate temperatures: 241 log-spaced values from 0.05 to 20."""
PRIOR_ITERATIONS = 200
INTERVAL_MARGIN = 1.0  # points added on each side of [min, max] over the temperatures
UNCERTAIN_WIDTH = 10.0  # an interval wider than this many points is flagged "uncertain"
MIX_SHIFT = 0.15
"""Total variation between the estimated and the source's class mix above which the estimate is
flagged. Below it: a source-mixed target of ~100 images or more differs from π by sampling alone
by ≲ 0.12 (E TV ≈ ½ Σ_y √(2π_y(1 − π_y)/(πN)): 0.12 for 10 classes and N = 100, 0.05 for 4 and
160). Above it sit the mixes that class confusions produce on a target of the source's mix
(0.2–0.4 measured: source-only on MNIST-M 0.38; photos-grain TADA seed 0, 35 of 40 motorcycles
called "person", ≈ 0.2), where reading them as label shift over-estimates the accuracy."""
STOP_ACCURACY = 75.0  # the ladder's stop accuracy when a calibration does not store it (ladder.py)

METHOD = (
    "PM-own with the class mix: temperature from a held-out-source augmentation ladder, own BatchNorm "
    "statistics of the target re-balanced to the source's classes, the target's class mix by EM"
)
ASSUMPTION = (
    "the images of each class look on the target as on the calibration sets (the class mix may differ: it is "
    "estimated); least reliable for shifts unlike the ladder's generic augmentations (e.g. another writing "
    "style) and where the model confuses classes on the target, which the class mix cannot tell from label shift"
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
    """100 · mean_i q_i(ŷ_i) with q = prior_match(softmax(own_logits / T), prior), in %: the
    estimate if the target's classes were mixed as ``prior``."""
    q = prior_match(torch.softmax(own_logits.double() / temperature, dim=1), prior)
    return 100.0 * float(q[torch.arange(len(predictions)), predictions.long()].mean())


def mixed_accuracy(
    own_logits: torch.Tensor, predictions: torch.Tensor, temperature: float, prior: torch.Tensor
) -> tuple[float, torch.Tensor]:
    """The estimate (%) under the target's own class mix π̂ (EM, :func:`estimate_mix`), and π̂.

    q_i ∝ p_i · π̂ / π: at the EM fixed point (1/N) Σ_i q_i = π̂, the prior matching to π̂.
    """
    probs = torch.softmax(own_logits.double() / temperature, dim=1)
    source = prior.double() / prior.double().sum()
    mix = estimate_mix(probs, source)
    q = probs * (mix / source.clamp_min(1e-12))
    q = q / q.sum(dim=1, keepdim=True).clamp_min(1e-300)
    return 100.0 * float(q[torch.arange(len(predictions)), predictions.long()].mean()), mix


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
        estimated_accuracy: the estimate (PM-own with T, at the class mix ``mix_used``).
        interval: [low, high], min/max over {T, T_k} ± 1 point, clipped to [0, 100].
        uncertain: an assumption breaks; ``uncertain_reasons`` says which (one sentence each,
            starting ``class mix:``, ``calibration:`` or ``covariate shift:``).
        n_images: target images it was computed on.
        temperature: T.
        class_mix: the target's estimated class mix {class: fraction} (EM; absent classes ≈ 0).
        mix_shift: its total variation from the source's mix, in [0, 1].
        mix_used: ``estimated`` (the estimate re-weights to ``class_mix``) or ``source`` (the target
            is beyond the calibration: the source's mix is kept).
        accuracy_estimated_mix, accuracy_source_mix: the estimate at each mix (one of them is
            ``estimated_accuracy``).
        confidence: the mean calibrated confidence on the target, in %.
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
    class_mix: dict[str, float] = field(default_factory=dict)
    mix_shift: float | None = None
    mix_used: str = "source"
    accuracy_estimated_mix: float | None = None
    accuracy_source_mix: float | None = None
    confidence: float | None = None
    uncertain_reasons: list[str] = field(default_factory=list)
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


def _at(own_logits: torch.Tensor, predictions: torch.Tensor, t: float, prior: torch.Tensor, mix: str) -> float:
    if mix == "source":
        return matched_accuracy(own_logits, predictions, t, prior)
    return mixed_accuracy(own_logits, predictions, t, prior)[0]


def estimate(
    own_logits: torch.Tensor,
    predictions: torch.Tensor,
    calibration: Calibration,
    class_names: list[str] | None = None,
) -> Estimate:
    """The estimate, its interval, the target's class mix and what makes it uncertain, for one target.

    Args:
        own_logits: (N, C) logits with the target's own BatchNorm statistics (re-balanced to the
            source's class mix, :func:`~tada_core.training.calibration.estimate_on`).
        predictions: int64 (N,) predictions of the deployed model (running statistics).
        calibration: the stored :class:`Calibration`.
        class_names: the keys of ``class_mix`` (default ``"0"``, ``"1"``, …).
    """
    prior = torch.tensor(calibration.source_prior, dtype=torch.float64)
    prior = prior / prior.sum()
    t = calibration.temperature
    at_mix, mix = mixed_accuracy(own_logits, predictions, t, prior)
    at_source = matched_accuracy(own_logits, predictions, t, prior)
    shift = total_variation(mix, prior)
    confidence = 100.0 * float(torch.softmax(own_logits.double() / t, dim=1).max(dim=1).values.mean())
    floor = float(calibration.ladder.get("stop_accuracy", STOP_ACCURACY))
    beyond = confidence < floor
    used = "source" if beyond else "estimated"
    value = at_source if beyond else at_mix
    band = [value] + [_at(own_logits, predictions, rung, prior, used) for rung in calibration.rung_temperatures]
    low = max(0.0, min(band) - INTERVAL_MARGIN)
    high = min(100.0, max(band) + INTERVAL_MARGIN)
    reasons = []
    if beyond:
        reasons.append(
            f"covariate shift: the model's mean calibrated confidence on the target is {confidence:.0f}%, below the "
            f"{floor:.0f}% down to which it was calibrated, so its own mistakes move the predicted class mix; the "
            f"source's class mix is kept (under the estimated mix, {shift:.2f} from the source's, it would be "
            f"{at_mix:.1f}%)"
        )
    elif shift > MIX_SHIFT:
        reasons.append(
            f"class mix: the target's estimated class mix is {shift:.2f} (total variation) from the source's; the "
            f"estimate reads it as label shift, but a model that confuses classes on this target moves the mix too, "
            f"and then the accuracy is nearer {at_source:.1f}% (the estimate under the source's mix)"
        )
    if high - low > UNCERTAIN_WIDTH:
        reasons.append(
            f"calibration: the estimate moves by {high - low:.0f} points across the calibration sets' temperatures "
            f"(interval wider than {UNCERTAIN_WIDTH:.0f})"
        )
    names = class_names or [str(i) for i in range(len(prior))]
    return Estimate(
        estimated_accuracy=round(value, 2),
        interval=[round(low, 2), round(high, 2)],
        uncertain=bool(reasons),
        n_images=len(predictions),
        temperature=t,
        class_mix={name: round(float(share), 4) for name, share in zip(names, mix, strict=True)},
        mix_shift=round(shift, 4),
        mix_used=used,
        accuracy_estimated_mix=round(at_mix, 2),
        accuracy_source_mix=round(at_source, 2),
        confidence=round(confidence, 2),
        uncertain_reasons=reasons,
    )
