"""The target's class mix without its labels (label shift): EM on calibrated posteriors; pure functions.

Notation: p_i ∈ R^C the calibrated posteriors of N target images under the source's class mix π
(the classifier was trained there); π̂ the target's class mix. Under label shift (each class's
images look the same, only how many of each differs), Bayes' rule gives the target posterior

    q_i(y) = p_i(y)·π̂_y/π_y / Σ_y' p_i(y')·π̂_y'/π_y'

and π̂ is the maximum-likelihood mix, found by EM (Saerens, Latinne & Decaestecker, Neural
Computation 2002, "Adjusting the outputs of a classifier to new a priori probabilities"; with
calibrated posteriors it beats the confusion-matrix inversion BBSE: Alexandari, Kundaje &
Shrikumar, ICML 2020, "Maximum likelihood with bias-corrected calibration is hard-to-beat at
label shift adaptation"):

    π̂ ← (1/N) Σ_i q_i            (E-step q with the current π̂, M-step the mean), from π̂ = π.

A class absent from the target converges to π̂_y → 0. The log-likelihood is concave in π̂, so the
fixed point is the maximum; with posteriors whose mean is already π, π̂ = π at once.

Before EM sees them, the posteriors come from BatchNorm statistics of the target *re-balanced to
the source's class mix* (:func:`balance_weights`): a target that is 85 % one class would otherwise
normalise every image by that class's mean and blur the posteriors EM reads.

    >>> mix = estimate_mix(probs, prior)          # (C,), sums to 1
    >>> total_variation(mix, prior)               # how far it is from the source's mix, in [0, 1]
"""

from __future__ import annotations

import torch

MIX_ITERATIONS = 2000
MIX_TOLERANCE = 1e-8  # EM stops when no class's share moves by more than this
MAX_WEIGHT = 5.0
"""A predicted class stands for at most this many times its share in the re-balanced statistics;
the rest of the source's mix (classes the target lacks) is filled with the running statistics."""


def estimate_mix(
    probs: torch.Tensor,
    prior: torch.Tensor,
    iterations: int = MIX_ITERATIONS,
    tolerance: float = MIX_TOLERANCE,
) -> torch.Tensor:
    """The target's class mix π̂ that maximises the likelihood of ``probs`` (EM, Saerens et al. 2002).

    Args:
        probs: (N, C) calibrated posteriors under the source's mix, rows summing to 1.
        prior: (C,) the source's class mix π (normalised here).

    Returns:
        (C,) float64, non-negative, summing to 1.
    """
    p = probs.double()
    source = prior.double() / prior.double().sum()
    ratio = p / source.clamp_min(1e-12)  # (N, C): p_i(y) / π_y
    mix = source.clone()
    for _ in range(iterations):
        q = ratio * mix
        updated = (q / q.sum(dim=1, keepdim=True).clamp_min(1e-300)).mean(dim=0)
        moved = float((updated - mix).abs().max())
        mix = updated
        if moved < tolerance:
            break
    return mix / mix.sum()


def total_variation(a: torch.Tensor, b: torch.Tensor) -> float:
    """½ Σ |a − b| of two class mixes: the share of images that would have to change class, in [0, 1]."""
    return 0.5 * float((a.double() - b.double()).abs().sum())


def balance_weights(
    predictions: torch.Tensor, prior: torch.Tensor, max_weight: float = MAX_WEIGHT
) -> tuple[torch.Tensor, float]:
    """Per-image weights that re-balance a target to the source's class mix by predicted class.

    Image i weighs r(ŷ_i) with r_y = min(π_y / s_y, ``max_weight``), s the predicted class shares;
    the weighted target's classes then cover ``covered`` = Σ_y min(π_y, max_weight·s_y) of the
    source's mix: 1 when every class is predicted often enough, less when some are (nearly) absent.

    Returns:
        ``(weights, covered)``: float64 (N,), and a float in (0, 1].
    """
    source = prior.double() / prior.double().sum()
    share = torch.bincount(predictions.long(), minlength=len(source)).double() / max(len(predictions), 1)
    ratio = torch.where(share > 0, source / share.clamp_min(1e-12), torch.zeros_like(share)).clamp_max(max_weight)
    covered = min(1.0, float((share * ratio).sum()))
    return ratio[predictions.long()], covered
