"""Choosing ``best.safetensors`` without target labels.

Choosing the checkpoint with the best *target* accuracy is an oracle (DomainBed): a user has no
target labels. Each criterion here scores one evaluation of a run from what a user does have —
the model's outputs on the held-out source (with labels) and on the target (without) — higher is
better; the run keeps the checkpoint with the highest score (later ones win ties).

* ``source_accuracy`` — accuracy on the held-out source (``train.source_holdout``).
* ``entropy`` — minus the mean prediction entropy on the target (confident is better).
* ``im`` — information maximisation: H(mean target prediction) − mean H(prediction) (confident
  and diverse).
* ``snd`` — soft neighbourhood density (Saito et al., ICCV 2021): the mean entropy of each target
  item's softmax over its similarities (temperature τ = 0.05) to the other targets' L2-normalised
  predictions; high when the target forms dense neighbourhoods.
* ``dev`` — deep embedded validation (You et al., ICML 2019): the held-out source loss weighted
  by the density ratio p(target | z) / p(source | z) of a logistic domain classifier on the
  features z (cross-fitted in two halves), with the control variate; score = −DEV.
* ``estimate`` (the default) — the estimated target accuracy (PM-own,
  :mod:`tada_core.training.estimator`): needs the held-out source to calibrate it.

SND and DEV read a fixed, seeded sample of at most 2,000 target items (the target may be sorted
by class). :func:`all_scores` computes every criterion from the same outputs, so each evaluation
records them all (``metrics.jsonl`` ``scores``) and the benchmarks can compare them afterwards.
docs/RESULTS.md compares them with the oracle and with ``last`` on the digits suite and the photo
pairs; the default (``train.select``) is the best label-free one measured there.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from tada_core.errors import ConfigError
from tada_core.training.evaluate import Outputs

Criterion = Callable[[Outputs, Outputs], float]
ESTIMATE = "estimate"
MAX_TARGET_ITEMS = 2000


def _sample(target: Outputs, max_items: int = MAX_TARGET_ITEMS) -> Outputs:
    """A fixed, seeded random sample of at most ``max_items`` rows of ``target``."""
    if len(target.logits) <= max_items:
        return target
    rows = torch.randperm(len(target.logits), generator=torch.Generator().manual_seed(0))[:max_items]
    return Outputs(target.logits[rows], target.features[rows], target.labels[rows])


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    return -(probs * probs.clamp_min(1e-12).log()).sum(dim=1)


def source_accuracy(source: Outputs, target: Outputs) -> float:
    return float((source.logits.argmax(1) == source.labels).double().mean()) if len(source.labels) else 0.0


def entropy(source: Outputs, target: Outputs) -> float:
    return -float(_entropy(target.logits.softmax(1)).mean())


def information_maximisation(source: Outputs, target: Outputs) -> float:
    probs = target.logits.softmax(1)
    return float(_entropy(probs.mean(0, keepdim=True))[0] - _entropy(probs).mean())


def soft_neighbourhood_density(
    source: Outputs, target: Outputs, temperature: float = 0.05, max_items: int = 2000
) -> float:
    probs = F.normalize(_sample(target, max_items).logits.softmax(1), dim=1)  # (N, C); N² similarities at most 2000²
    similarity = probs @ probs.T / temperature  # (N, N)
    similarity.fill_diagonal_(float("-inf"))
    return float(_entropy(similarity.softmax(dim=1)).mean())


def deep_embedded_validation(source: Outputs, target: Outputs) -> float:
    from sklearn.linear_model import LogisticRegression

    zs, zt = source.features.numpy(), _sample(target).features.numpy()
    if len(zs) < 2 or len(zt) < 2:  # a domain classifier needs both domains in each of the two folds
        return float("nan")
    losses = F.cross_entropy(source.logits, source.labels, reduction="none").numpy()
    x = np.concatenate([zs, zt])
    y = np.concatenate([np.zeros(len(zs)), np.ones(len(zt))])
    folds = np.concatenate([np.arange(len(zs)) % 2, np.arange(len(zt)) % 2])  # both domains in each fold
    p_target = np.empty(len(zs))
    for fold in (0, 1):
        fit, held = folds != fold, folds[: len(zs)] == fold
        classifier = LogisticRegression(C=1.0, max_iter=200).fit(x[fit], y[fit])
        p_target[held] = classifier.predict_proba(zs[held])[:, 1]
    p_target = np.clip(p_target, 1e-4, 1 - 1e-4)
    weights = p_target / (1 - p_target) * len(zs) / len(zt)
    weighted = weights * losses
    variance = np.var(weights)
    eta = -np.cov(weighted, weights)[0, 1] / variance if variance > 0 else 0.0
    return -float(weighted.mean() + eta * (weights.mean() - 1.0))


CRITERIA: dict[str, Criterion] = {
    "source_accuracy": source_accuracy,
    "entropy": entropy,
    "im": information_maximisation,
    "snd": soft_neighbourhood_density,
    "dev": deep_embedded_validation,
}


CHOICES = (*CRITERIA, ESTIMATE)


def check_criterion(name: str) -> str:
    """``name`` when it is a criterion (one of :data:`CHOICES`); ConfigError naming them otherwise."""
    if name not in CHOICES:
        raise ConfigError(f"unknown selection criterion {name!r} (train.select); choose one of {', '.join(CHOICES)}")
    return name


def all_scores(source: Outputs, target: Outputs, estimated: float | None = None) -> dict[str, float]:
    """Every criterion's score of one evaluation (higher is better); ``estimate`` when given.

    A criterion that cannot be computed on these outputs (NaN: DEV needs two images per domain) is left out.
    """
    scores = {name: float(criterion(source, target)) for name, criterion in CRITERIA.items()}
    scores = {name: value for name, value in scores.items() if math.isfinite(value)}
    if estimated is not None:
        scores[ESTIMATE] = float(estimated)
    return scores
