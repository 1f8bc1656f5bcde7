"""Alignment measures on hand-made features: class-conditional MMD, source neighbours, intervals."""

import math

import numpy as np
import pytest

from tada_core import DataError
from tada_core.explain.alignment import (
    HIGHER,
    LOWER,
    a_distance_spread,
    caption,
    class_mmd,
    measure_line,
    neighbour_vote,
    pair_alignment,
    wilson_interval,
)

E = np.eye(3)


def _point_masses(n=20):
    """Class 0: source and target both at e1 (aligned). Class 1: source at e2, target at e3."""
    source = np.r_[np.tile(E[0], (n, 1)), np.tile(E[1], (n, 1))]
    target = np.r_[np.tile(E[0], (n, 1)), np.tile(E[2], (n, 1))]
    classes = np.repeat([0, 1], n)
    return source, classes, target, classes


def test_class_mmd_of_point_masses_matches_the_hand_computation():
    # Squared distances are 0 (same point) or 2 (orthogonal unit vectors); of the 80·79/2 pairs fewer
    # than half are 0, so the median is 2 and γ = 1/2. Class 0: 1 + 1 − 2·1 = 0. Class 1: 1 + 1 −
    # 2·exp(−γ·2) = 2 − 2/e. Mean over the two classes: 1 − 1/e. Every resample gives the same.
    m = class_mmd(*_point_masses())
    assert m.value == pytest.approx(1 - 1 / math.e, abs=1e-9)
    assert m.interval == pytest.approx((1 - 1 / math.e, 1 - 1 / math.e), abs=1e-9)
    assert m.reads == LOWER == "lower is better aligned"


def test_class_mmd_matches_a_loop_over_pairs():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(6, 4)), rng.normal(size=(5, 4))
    sy, ty = np.array([0, 0, 0, 1, 1, 1]), np.array([0, 0, 1, 1, 1])
    unit = [v / np.linalg.norm(v) for v in np.r_[s, t]]
    distances = [float(((a - b) ** 2).sum()) for i, a in enumerate(unit) for b in unit[i + 1 :]]
    gamma = 1 / np.median(distances)

    def k(a, b):
        return math.exp(-gamma * float(((a - b) ** 2).sum()))

    def within(xs):
        return sum(k(a, b) for i, a in enumerate(xs) for j, b in enumerate(xs) if i != j) / (len(xs) * (len(xs) - 1))

    per_class = []
    for c in (0, 1):
        xs = [u for u, y in zip(unit[:6], sy, strict=True) if y == c]
        xt = [u for u, y in zip(unit[6:], ty, strict=True) if y == c]
        cross = sum(k(a, b) for a in xs for b in xt) / (len(xs) * len(xt))
        per_class.append(within(xs) + within(xt) - 2 * cross)
    assert class_mmd(s, sy, t, ty, n_boot=20).value == pytest.approx(np.mean(per_class), abs=1e-9)


def _clusters(target_shift, n=60, dim=8, spread=0.3, seed=0):
    """Two well-separated Gaussian classes per domain; the target's class c is centred on the source's
    class c (shift 0, aligned) or on the other class (shift 1, classes swapped)."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((2, dim))
    centres[0, 0], centres[1, 1] = 1.0, 1.0
    classes = np.repeat([0, 1], n)
    source = centres[classes] + spread * rng.normal(size=(2 * n, dim)) / np.sqrt(dim)
    target = centres[(classes + target_shift) % 2] + spread * rng.normal(size=(2 * n, dim)) / np.sqrt(dim)
    return source, classes, target, classes


def test_aligned_classes_score_near_zero_and_swapped_classes_far_apart():
    aligned, swapped = class_mmd(*_clusters(0)), class_mmd(*_clusters(1))
    assert abs(aligned.value) < 0.01 and aligned.interval[0] <= 0.0 <= aligned.interval[1]
    assert swapped.value > 1.0 and swapped.interval[0] > aligned.interval[1]  # separated beyond the intervals
    for m in (aligned, swapped):
        assert m.interval[0] <= m.value <= m.interval[1]


def test_source_neighbours_classify_by_the_cluster_a_target_image_sits_in():
    source, sy, target, ty = _clusters(1)  # target class c sits on source class 1 − c
    np.testing.assert_array_equal(neighbour_vote(source, sy, target), 1 - ty)
    predictions = 1 - ty  # a model that is wrong on every target image, consistently
    measures = {m.measure: m for m in pair_alignment(source, sy, target, ty, predictions)}
    assert measures["source-neighbour accuracy"].value == 0.0
    assert measures["source-neighbour agreement with the model"].value == 1.0
    assert measures["target accuracy"].value == 0.0
    assert measures["source-neighbour accuracy"].reads == HIGHER
    # Ties go to the nearest: two neighbours, one of each class, the nearer is class 1.
    assert neighbour_vote(np.array([[1.0, 0.0], [0.0, 1.0]]), [0, 1], np.array([[0.1, 1.0]]), k=2).tolist() == [1]


def test_pair_alignment_headline_uses_labels_or_predictions():
    source, sy, target, ty = _clusters(0)
    labelled = pair_alignment(source, sy, target, ty, ty)
    unlabelled = pair_alignment(source, sy, target, None, ty)
    assert labelled[0].measure == "class-conditional MMD (target labels)"
    assert unlabelled[0].measure == "class-conditional MMD (target predictions)"
    assert [m.measure for m in unlabelled][1:] == ["source-neighbour agreement with the model"]
    headline = labelled[0].to_dict()
    assert set(headline) == {"measure", "value", "interval", "reads"}
    assert headline["interval"][0] <= headline["value"] <= headline["interval"][1]
    assert "their labels" in caption(headline) and "predictions" in caption(unlabelled[0].to_dict())
    assert "lower is better aligned" in measure_line(headline)


def test_wilson_interval_by_hand():
    # 50 / 100: centre 0.5, half-width 1.96·sqrt(0.25/100 + 1.96²/40000)/(1 + 1.96²/100) = 0.0962
    assert wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    low, high = wilson_interval(160, 160)
    assert high == 1.0 and low == pytest.approx(160 / (160 + 1.96**2), abs=1e-9)  # not a point at 100 %


def test_a_distance_spread_and_errors():
    source, _, target, _ = _clusters(0)
    m = a_distance_spread(source, target, splits=3)
    assert m.interval[0] <= m.value <= m.interval[1] and m.reads == LOWER
    with pytest.raises(DataError, match="more images"):
        class_mmd(source[:3], [0, 1, 2], target[:3], [0, 1, 2])  # no class with 2 images in both domains
    with pytest.raises(DataError, match="at least 2"):
        class_mmd(source[:1], [0], target[:4], [0, 0, 0, 0])


def test_features_tab_summary_shows_the_headline_its_caption_and_both_a_distance_views():
    from app.tabs.features_report import summary_markdown

    source, sy, target, ty = _clusters(0)
    measures = [m.to_dict() for m in pair_alignment(source, sy, target, ty, ty)]
    a_views = {v: {**a_distance_spread(source, target, splits=2).to_dict(), "view": v} for v in ("domain", "running")}
    summary = {
        "checkpoint": "tada_x",
        "variant": "tada",
        "alignment": measures[0],
        "measures": measures,
        "a_distance_views": a_views,
        "bn_statistics": "domain",
        "gap": {"a_distance_mean": 0.5, "a_distance": [[0.5]]},
        "n_source": 120,
        "n_target": 120,
        "estimated_target_accuracy": {"value": 0.95, "interval": [0.93, 0.97], "method": "PM-own", "on": "all of 't'"},
    }
    text = summary_markdown([summary])
    assert "**class-conditional MMD (target labels)**" in text and caption(measures[0]) in text
    assert "domain / running BatchNorm statistics" in text and "estimated 95.0% (93.0%–97.0%) on all of 't'" in text
