"""The target's class mix without labels (EM), the class-balanced BatchNorm statistics, and what
flags the estimate uncertain, against hand computations and synthetic calibrated posteriors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tada_core.training.batchnorm import blend_statistics
from tada_core.training.estimator import MIX_SHIFT, Calibration, estimate
from tada_core.training.label_shift import balance_weights, estimate_mix, total_variation

MEANS = torch.tensor([-2.0, 0.0, 2.0])  # class y's feature x ~ N(MEANS[y], 1)


def _calibration(prior=(1 / 3, 1 / 3, 1 / 3), temperature=1.0) -> Calibration:
    return Calibration(temperature, [temperature], ["held-out"], [100.0], [1], list(prior))


def _shifted_target(mix: list[float], n: int = 3000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels drawn with ``mix`` and the exactly calibrated log-posteriors of a uniform source:
    log p(y | x) = log N(x; μ_y, 1) − log Σ_y' N(x; μ_y', 1)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.multinomial(torch.tensor(mix), n, replacement=True, generator=generator)
    x = MEANS[labels] + torch.randn(n, generator=generator)
    log_likelihood = -0.5 * (x[:, None] - MEANS[None]) ** 2
    return torch.log_softmax(log_likelihood, dim=1), labels


def test_em_mix_by_hand_two_kinds_of_rows():
    # 75 rows (0.8, 0.2) and 25 rows (0.2, 0.8) under a half-half source: the likelihood
    # 75·log(0.2 + 0.6a) + 25·log(0.8 − 0.6a) is largest where 75(0.8 − 0.6a) = 25(0.2 + 0.6a), a = 11/12
    probs = torch.tensor([[0.8, 0.2]] * 75 + [[0.2, 0.8]] * 25)
    mix = estimate_mix(probs, torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(mix, torch.tensor([11 / 12, 1 / 12], dtype=torch.float64), atol=1e-5, rtol=0)
    # posteriors whose mean is already the source's mix: the source's mix is the maximum at once
    balanced = torch.tensor([[0.8, 0.2], [0.2, 0.8]] * 10)
    torch.testing.assert_close(estimate_mix(balanced, torch.tensor([0.5, 0.5])), torch.tensor([0.5, 0.5]).double())


@pytest.mark.parametrize("mix", [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.5, 0.0]])
def test_a_hand_made_label_shift_of_known_mix_is_recovered_with_the_accuracy(mix):
    log_probs, labels = _shifted_target(mix)
    predictions = log_probs.argmax(1)
    truth = 100 * float((predictions == labels).double().mean())
    drawn = torch.bincount(labels, minlength=3).double() / len(labels)
    result = estimate(log_probs, predictions, _calibration(), class_names=["a", "b", "c"])
    recovered = torch.tensor(list(result.class_mix.values()))
    assert list(result.class_mix) == ["a", "b", "c"] and total_variation(recovered, drawn) < 0.05
    assert (recovered - torch.tensor(mix).double()).abs().max() < 0.05
    assert result.estimated_accuracy == pytest.approx(truth, abs=2.0)
    # the same posteriors matched to the source's (uniform) mix are far off: what the estimate did before
    assert abs(result.accuracy_source_mix - truth) > 5.0
    assert result.mix_shift == pytest.approx(total_variation(recovered, torch.ones(3) / 3), abs=1e-3)
    assert result.uncertain and result.uncertain_reasons[0].startswith("class mix:")


def test_a_mix_like_the_sources_is_not_flagged_and_changes_nothing():
    log_probs, _ = _shifted_target([1 / 3, 1 / 3, 1 / 3], n=6000)
    result = estimate(log_probs, log_probs.argmax(1), _calibration())
    assert result.mix_shift < MIX_SHIFT / 3 and not result.uncertain and result.uncertain_reasons == []
    assert result.estimated_accuracy == pytest.approx(result.accuracy_source_mix, abs=0.5)


def test_below_the_calibrated_confidence_the_source_mix_is_kept_and_flagged_as_covariate_shift():
    # confidence 0.6 everywhere (below the ladder's 75 %), all predicted class 0 of two
    logits = torch.tensor([[math.log(1.5), 0.0]] * 50)
    result = estimate(logits, torch.zeros(50, dtype=torch.long), _calibration((0.5, 0.5)))
    assert result.confidence == pytest.approx(60.0) and result.mix_used == "source"
    assert result.estimated_accuracy == pytest.approx(50.0, abs=0.1)  # the prior matching of before
    assert result.accuracy_estimated_mix == pytest.approx(100.0, abs=0.1)
    assert result.uncertain and result.uncertain_reasons[0].startswith("covariate shift:")


def test_balance_weights_by_hand():
    # predicted shares (0.75, 0.25, 0) of a uniform source: ratios (4/9, 4/3, 0); each present class
    # then weighs 1/3 in all, the absent one nothing, so 2/3 of the source's mix is covered
    weights, covered = balance_weights(torch.tensor([0] * 6 + [1] * 2), torch.ones(3) / 3)
    torch.testing.assert_close(weights, torch.tensor([4 / 9] * 6 + [4 / 3] * 2, dtype=torch.float64))
    assert covered == pytest.approx(2 / 3)
    # a class predicted 2 % of the time for a 50 % share stands for at most 5 × 2 % = 10 %
    _, covered = balance_weights(torch.tensor([0] * 49 + [1]), torch.tensor([0.5, 0.5]))
    assert covered == pytest.approx(0.5 + 0.1)


def test_blend_statistics_gives_the_moments_of_the_mixture_by_hand():
    model, adapted = nn.BatchNorm1d(1), nn.BatchNorm1d(1)
    model.running_mean.fill_(0.0), model.running_var.fill_(1.0)
    adapted.running_mean.fill_(2.0), adapted.running_var.fill_(1.0)
    blend_statistics(adapted, model, 0.5)
    # mean ½·2 + ½·0 = 1; variance ½·1 + ½·1 + ½·½·(2 − 0)² = 2
    assert float(adapted.running_mean) == pytest.approx(1.0) and float(adapted.running_var) == pytest.approx(2.0)
