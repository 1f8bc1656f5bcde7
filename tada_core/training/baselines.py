"""The usual label-free accuracy estimates, recorded beside PM-own for comparison (docs/RESULTS.md).

All read the deployed model's softmax p = softmax(logits) (T = 1, running BatchNorm statistics) on
the held-out source (with labels) and on the target (without); c_i = max_y p_i(y) is the
confidence. Each returns a percentage.

* AC (average confidence): 100 · mean_i c_i over the target.
* DoC (difference of confidences, Guillory et al., 2021): source accuracy + AC(target) − AC(source).
* ATC (average thresholded confidence, Garg et al., ICLR 2022): the threshold t puts the same
  fraction of held-out source confidences above it as the source accuracy; the estimate is the
  fraction of target confidences above t. When the held-out source is classified perfectly t is
  its least confident point (nothing of the source lies below it).
* COT (confidence optimal transport, Lu et al., 2023): 100 · (1 − W), W the cost of moving the
  target's softmax vectors (mass 1/N each) onto the source's classes (mass π_y) with cost 1 − p_i(y);
  computed with entropic regularisation ε = 0.01 (log-domain Sinkhorn, 500 iterations), whose plan
  is within a fraction of a point of the exact one at this ε.
"""

from __future__ import annotations

import torch

from tada_core.training.evaluate import Outputs


def _confidence(logits: torch.Tensor) -> torch.Tensor:
    return logits.double().softmax(dim=1).max(dim=1).values


def average_confidence(target: Outputs) -> float:
    return 100.0 * float(_confidence(target.logits).mean())


def difference_of_confidences(source: Outputs, target: Outputs) -> float:
    accuracy = float((source.logits.argmax(1) == source.labels).double().mean())
    return 100.0 * (accuracy + float(_confidence(target.logits).mean() - _confidence(source.logits).mean()))


def thresholded_confidence(source: Outputs, target: Outputs) -> float:
    scores = torch.sort(_confidence(source.logits)).values
    errors = round(float((source.logits.argmax(1) != source.labels).double().mean()) * len(scores))
    target_scores = _confidence(target.logits)
    if errors == 0:
        return 100.0 * float((target_scores >= scores[0]).double().mean())
    if errors >= len(scores):
        return 0.0
    threshold = 0.5 * (scores[errors - 1] + scores[errors])
    return 100.0 * float((target_scores > threshold).double().mean())


def confidence_optimal_transport(
    target: Outputs, prior: torch.Tensor, epsilon: float = 0.01, iterations: int = 500
) -> float:
    probs = target.logits.double().softmax(dim=1)  # (N, C)
    cost = 1.0 - probs
    log_a = torch.full((len(probs),), -torch.log(torch.tensor(float(len(probs)), dtype=torch.float64)))
    log_b = (prior.double() / prior.double().sum()).clamp_min(1e-300).log()
    f = torch.zeros(len(probs), dtype=torch.float64)
    g = torch.zeros(probs.shape[1], dtype=torch.float64)
    kernel = -cost / epsilon
    for _ in range(iterations):
        f = epsilon * (log_a - torch.logsumexp(kernel + g[None] / epsilon, dim=1))
        g = epsilon * (log_b - torch.logsumexp(kernel + f[:, None] / epsilon, dim=0))
    plan = torch.exp(kernel + f[:, None] / epsilon + g[None] / epsilon)
    return 100.0 * (1.0 - float((plan * cost).sum()))


def baseline_estimates(source: Outputs, target: Outputs, prior: torch.Tensor) -> dict[str, float]:
    """``{"ac", "doc", "atc", "cot"}`` estimates of the target accuracy, in %."""
    return {
        "ac": average_confidence(target),
        "doc": difference_of_confidences(source, target),
        "atc": thresholded_confidence(source, target),
        "cot": confidence_optimal_transport(target, prior),
    }
