"""The arithmetic of the accuracy estimate (PM-own) and its baselines, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from tada_core.training.baselines import (
    average_confidence,
    confidence_optimal_transport,
    difference_of_confidences,
    thresholded_confidence,
)
from tada_core.training.estimator import TEMPERATURE_GRID, Calibration, estimate, fit_temperature, prior_match
from tada_core.training.evaluate import Outputs


def _outputs(logits, labels=None) -> Outputs:
    logits = torch.as_tensor(logits, dtype=torch.float32)
    labels = torch.full((len(logits),), -1) if labels is None else torch.as_tensor(labels)
    return Outputs(logits, torch.zeros(len(logits), 2), labels.long())


def _calibration(temperature=1.0, rungs=(1.0,), prior=(0.5, 0.5)) -> Calibration:
    n = len(rungs)
    return Calibration(temperature, list(rungs), ["r"] * n, [100.0] * n, [1] * n, list(prior))


def test_prior_matching_makes_the_mean_posterior_the_prior_and_keeps_each_row_a_distribution():
    probs = torch.softmax(torch.randn(200, 3, generator=torch.Generator().manual_seed(0)) * 2, dim=1)
    prior = torch.tensor([0.5, 0.3, 0.2])
    q = prior_match(probs, prior)
    torch.testing.assert_close(q.mean(dim=0), prior.double(), atol=1e-6, rtol=0)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(200, dtype=torch.float64))
    # q_i ∝ p_i · w: the ratio q/p is the same per class for every row
    ratio = q / probs.double()
    ratio = ratio / ratio[:, :1]
    torch.testing.assert_close(ratio, ratio[:1].expand_as(ratio))


def test_temperature_is_where_the_confidence_matches_the_accuracy_by_hand():
    # margin m = 2 on every item, 3 of 4 right: NLL(T) is smallest where sigmoid(m / T) = 3/4,
    # i.e. T = 2 / ln 3 = 1.820; the grid is log-spaced by 2.5 %
    logits = torch.tensor([[2.0, 0.0]] * 4)
    labels = torch.tensor([0, 0, 0, 1])
    assert abs(math.log(fit_temperature(logits, labels)) - math.log(2 / math.log(3))) < 0.013


def test_a_perfectly_classified_rung_runs_to_the_grid_floor_and_the_pooled_rung_does_not():
    clean = torch.tensor([[3.0, 0.0], [0.0, 3.0]] * 10)
    clean_labels = torch.tensor([0, 1] * 10)
    shifted = torch.tensor([[1.0, 0.0]] * 10)
    shifted_labels = torch.tensor([0] * 7 + [1] * 3)
    floor = float(TEMPERATURE_GRID[0])
    assert fit_temperature(clean, clean_labels) == pytest.approx(floor)
    pooled = fit_temperature(torch.cat([clean, shifted]), torch.cat([clean_labels, shifted_labels]))
    assert pooled > 10 * floor


def test_with_t_one_own_equal_running_a_uniform_prior_and_balanced_posteriors_it_is_the_average_confidence():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]] * 5)  # mean posterior uniform
    result = estimate(logits, logits.argmax(1), _calibration(1.0, (1.0,), (1 / 3, 1 / 3, 1 / 3)))
    by_hand = 100 * math.exp(2) / (math.exp(2) + 2)  # every row's confidence
    assert result.estimated_accuracy == pytest.approx(by_hand, abs=0.01)
    assert result.estimated_accuracy == pytest.approx(average_confidence(_outputs(logits)), abs=0.01)
    assert result.n_images == 15 and result.interval == pytest.approx([by_hand - 1, by_hand + 1], abs=0.01)


def test_a_collapsed_class_reads_as_label_shift_and_is_flagged_with_the_source_mix_estimate_beside_it():
    # every image predicted class 0 with confidence 0.9, the source half-half: EM's likelihood
    # Σ log(0.9·a/0.5 + 0.1·(1 − a)/0.5) grows with a, so the mix is (1, 0) and the estimate 100 %;
    # matching the source's prior instead moves half of the mass to class 1: about 50 %
    logits = torch.tensor([[math.log(9.0), 0.0]] * 100)
    result = estimate(logits, torch.zeros(100, dtype=torch.long), _calibration())
    assert average_confidence(_outputs(logits)) == pytest.approx(90.0)
    assert result.class_mix == pytest.approx({"0": 1.0, "1": 0.0}, abs=1e-3) and result.mix_used == "estimated"
    assert result.estimated_accuracy == pytest.approx(100.0, abs=0.1)
    assert result.accuracy_source_mix == pytest.approx(50.0, abs=0.1)
    assert result.uncertain and [r.split(":")[0] for r in result.uncertain_reasons] == ["class mix"]
    assert "50.0%" in result.uncertain_reasons[0]


def test_interval_is_min_max_over_the_temperatures_widened_by_one_point_clipped_and_flagged_when_wide():
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 10)
    predictions = logits.argmax(1)
    values = {t: estimate(logits, predictions, _calibration(t, ())).estimated_accuracy for t in (0.05, 1.0, 20.0)}
    assert values[0.05] == pytest.approx(100.0) and values[20.0] == pytest.approx(51.25, abs=0.01)
    result = estimate(logits, predictions, _calibration(1.0, (0.05, 20.0)))
    assert result.estimated_accuracy == pytest.approx(values[1.0])
    assert result.interval == pytest.approx([values[20.0] - 1, 100.0], abs=0.01)  # 101 clipped to 100
    assert result.uncertain and [r.split(":")[0] for r in result.uncertain_reasons][-1] == "calibration"
    confident = estimate(logits * 2, predictions, _calibration(1.0, (1.0,)))  # confidence 88 %, one temperature
    assert not confident.uncertain and confident.uncertain_reasons == []


def test_baselines_by_hand():
    source = _outputs([[3.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 2.0]], [0, 1, 0, 0])  # 3 of 4 right
    target = _outputs([[1.0, 0.0], [0.0, 3.0]])
    conf = lambda m: 1 / (1 + math.exp(-m))  # noqa: E731
    ac_target = 50 * (conf(1) + conf(3))
    assert average_confidence(target) == pytest.approx(ac_target)
    ac_source = 25 * (conf(3) + conf(1) + conf(2) + conf(2))
    assert difference_of_confidences(source, target) == pytest.approx(75 + ac_target - ac_source)
    # one error in four: the threshold lies between the two least confident source points (conf(1), conf(2))
    assert thresholded_confidence(source, target) == pytest.approx(50.0)
    perfect = _outputs([[3.0, 0.0], [0.0, 2.0]], [0, 1])  # no error: t = the least confident source point
    assert thresholded_confidence(perfect, _outputs([[2.0, 0.0], [1.0, 0.0]])) == pytest.approx(50.0)


def test_cot_is_one_minus_the_transport_cost_by_hand():
    uniform = _outputs(torch.zeros(6, 3))  # every class at 1/3: each unit of mass costs 2/3
    assert confidence_optimal_transport(uniform, torch.ones(3) / 3) == pytest.approx(100 / 3, abs=0.1)
    one_hot = _outputs(torch.tensor([[30.0, 0.0], [0.0, 30.0]]))  # certain and matching the prior: cost 0
    assert confidence_optimal_transport(one_hot, torch.tensor([0.5, 0.5])) == pytest.approx(100.0, abs=0.1)
    # both certain of class 0 but the source is half-half: half the mass must move at cost 1
    collapsed = _outputs(torch.tensor([[30.0, 0.0], [30.0, 0.0]]))
    assert confidence_optimal_transport(collapsed, torch.tensor([0.5, 0.5])) == pytest.approx(50.0, abs=0.1)
