"""The app's pure HTML rendering of a view's grid: values only where they can be read, and what the
shift localiser was fitted on."""

import re

import numpy as np
import pytest

from app.render import grid_html, model_block_html
from tada_core.explain.result import AttentionResult

OPTIONS = {"view": "shift", "scale": "shared", "cmap": "jet", "alpha": 0.5, "mode": "smooth"}


@pytest.mark.parametrize("side", [7, 14, 56])
def test_a_grid_shows_its_values_up_to_7x7_and_a_heat_map_beyond(side):
    grid = np.linspace(0.0, 1.0, side * side).reshape(side, side)
    page = grid_html(grid, "jet", (0.0, 1.0), "shift")
    written = re.findall(r"<td [^>]*>([^<]+)</td>", page)
    if side == 7:  # every value in its cell, as the colour shows it
        assert written == [f"{v:.2f}" for v in grid.ravel()] and "tada-heat" not in page
    elif side == 14:  # coloured cells without numbers; each gives its value on hover
        assert written == [] and page.count("<td ") == 196 and "tada-heat" in page
        assert re.findall(r'title="([0-9.]+)"', page) == [f"{v:.3f}" for v in grid.ravel()]
    else:  # 3,136 cells: one line, the overlay shows the map
        assert "<td" not in page and "56×56 map, mean 0.500, max 1.000" in page


def _result(fitted_on):
    rng = np.random.default_rng(0)
    return AttentionResult(
        image=np.zeros((28, 28, 3), np.uint8),
        grid=rng.random((7, 7)).astype(np.float32),
        probs=np.array([0.4, 0.6], np.float32),
        top_k=[("b", 0.6), ("a", 0.4)],
        predicted="b",
        global_attention=1.5,
        domain_prob=0.7,
        shift=rng.random((14, 14)).astype(np.float32),
        shift_fitted_on=fitted_on,
    )


def test_the_shift_caption_says_what_the_localiser_was_fitted_on_when_it_is_known():
    overlay = np.zeros((28, 28, 3), np.uint8)
    block = model_block_html("m", "tada", _result((500, 480)), overlay, OPTIONS, (0.0, 1.0))
    assert "localiser fitted on 500 + 480 images (source + target)" in block
    assert "fitted on" not in model_block_html("m", "tada", _result(None), overlay, OPTIONS, (0.0, 1.0))
    attention = {**OPTIONS, "view": "attention"}
    assert "fitted on" not in model_block_html("m", "tada", _result((500, 480)), overlay, attention, (0.0, 1.0))
