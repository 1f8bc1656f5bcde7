"""The three per-region views and the colour scales of a request, against hand computations."""

import numpy as np
import pytest

from tada_core.errors import ConfigError
from tada_core.explain.result import AttentionResult, view_grid
from tada_core.explain.views import VIEWS, range_text, value_ranges


def _result(grid, gap=None):
    return AttentionResult(
        image=np.zeros((28, 28, 3), np.uint8),
        grid=None if grid is None else np.asarray(grid, np.float32),
        probs=np.array([1.0], np.float32),
        top_k=[("a", 1.0)],
        predicted="a",
        global_attention=None,
        domain_prob=None,
        gap=None if gap is None else np.asarray(gap, np.float32),
    )


def test_views_are_w_one_minus_w_and_the_probes_p_target():
    w = np.array([[0.0, 0.25], [0.5, 1.0]])
    gap = np.array([[0.9, 0.1], [0.2, 0.3]])
    result = _result(w, gap)
    np.testing.assert_allclose(view_grid(result, "attention"), w)
    np.testing.assert_allclose(view_grid(result, "transferability"), [[1.0, 0.75], [0.5, 0.0]])
    np.testing.assert_allclose(view_grid(result, "gap"), gap)
    assert view_grid(_result(None), "transferability") is None and view_grid(_result(w), "gap") is None
    views = result.to_dict()["views"]
    assert set(views) == set(VIEWS) and views["transferability"] == [[1.0, 0.75], [0.5, 0.0]]
    with pytest.raises(ConfigError, match="unknown view 'heat'"):
        view_grid(result, "heat")


def test_shared_scale_is_the_min_and_max_over_all_images_of_the_request():
    a = np.array([[0.001, 0.004], [0.002, 0.003]])
    b = np.array([[0.0005, 0.0073], [0.002, 0.001]])
    assert value_ranges([a, None, b], "shared") == [(0.0005, 0.0073), None, (0.0005, 0.0073)]
    assert value_ranges([a, b], "image") == [(0.001, 0.004), (0.0005, 0.0073)]
    assert value_ranges([a, b], "fixed", (0.0, 2.0)) == [(0.0, 2.0), (0.0, 2.0)]
    flat = np.full((2, 2), 0.3)
    assert value_ranges([flat], "shared") == [(0.0, 1.0)]  # nothing to stretch: the fixed range
    assert value_ranges([flat, a], "image")[0] == (0.0, 1.0)
    with pytest.raises(ConfigError, match="unknown scale"):
        value_ranges([a], "log")


def test_range_text_shows_enough_decimals_to_tell_the_ends_apart():
    assert range_text((0.0, 1.0)) == ("0.00", "1.00")
    assert range_text((0.0005, 0.0073)) == ("0.0005", "0.0073")
    assert range_text((0.00012, 0.00018)) == ("0.000120", "0.000180")
    assert range_text((0.0, 2.0)) == ("0.00", "2.00")
