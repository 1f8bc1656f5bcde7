"""The planted-artefact pair, the scoring by hand, the baselines and the localisation benchmark, on a tiny budget."""

import json

import numpy as np
import pytest

from tada_core.bench.baselines import centre_prior, sobel
from tada_core.bench.localisation import bench_localisation, parse_pair
from tada_core.bench.planted import checkerboard, plant
from tada_core.bench.scoring import evaluate_map, metrics, neighbours, to_grid
from tada_core.cli import main
from tada_core.errors import ConfigError


def test_plant_writes_a_checkerboard_in_one_to_three_cells_and_nothing_else():
    images = np.full((50, 28, 28), 7, np.uint8)
    planted, mask = plant(images, 7, np.random.default_rng(0))
    counts = mask.reshape(50, -1).sum(1)
    assert counts.min() >= 1 and counts.max() <= 3 and len(set(counts)) == 3
    pixel_mask = np.repeat(np.repeat(mask, 4, axis=1), 4, axis=2)  # each cell is 4×4 pixels
    assert (planted[~pixel_mask] == 7).all()
    r, c = np.argwhere(mask[0])[0]
    np.testing.assert_array_equal(planted[0, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4], checkerboard(4))
    assert checkerboard(2).tolist() == [[255, 0], [0, 255]]
    with pytest.raises(ValueError, match="not a multiple"):
        plant(np.zeros((1, 30, 30), np.uint8), 7, np.random.default_rng(0))


def test_neighbours_are_the_8_connected_ring_outside_the_mask():
    mask = np.zeros((1, 4, 4), bool)
    mask[0, 0, 0] = True
    expected = np.zeros((1, 4, 4), bool)
    expected[0, 0, 1] = expected[0, 1, 0] = expected[0, 1, 1] = True
    np.testing.assert_array_equal(neighbours(mask), expected)


def test_cell_metrics_by_hand():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, 0, 0] = True  # image 0: the artefact covers cell (0, 0) of a 2×2 grid by 1/4
    masks[1, 3, 3] = True  # image 1: cell (1, 1)
    score = np.array([[[0.9, 0.1], [0.5, 0.2]], [[0.3, 0.6], [0.4, 0.8]]])
    # positives 0.9 and 0.8 against negatives 0.1, 0.5, 0.2, 0.3, 0.6, 0.4: all 12 pairs ranked right
    got = metrics(score, masks, 2)
    assert got == {"auc": 1.0, "pointing": 1.0}  # no AUC without neighbours: on 2×2 every cell is one
    low = metrics(score, masks, 2, reads="low")
    assert low["auc"] == 0.0 and low["pointing"] == 0.0
    score[1, 1, 1] = 0.45  # now 0.45 ranks below 0.5 and 0.6: 10 of 12 pairs right
    assert metrics(score, masks, 2)["auc"] == pytest.approx(10 / 12, abs=1e-4)
    assert metrics(score, masks, 2)["pointing"] == 0.5  # image 1's top cell is (0, 1): a miss


def test_finer_maps_are_max_pooled_and_reported_on_their_own_grid_too():
    fine = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    np.testing.assert_array_equal(to_grid(fine, 2)[0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(to_grid(np.ones((1, 1, 1)), 2)[0], np.ones((2, 2)))
    masks = np.zeros((1, 8, 8), bool)
    masks[0, 6:, 6:] = True
    assert set(evaluate_map(fine, masks, grids=(2,))) == {"g2", "g4"}


def test_trivial_maps_by_hand():
    np.testing.assert_array_equal(centre_prior(1, 3)[0], [[-2, -1, -2], [-1, 0, -1], [-2, -1, -2]])
    image = np.zeros((1, 8, 8), np.uint8)
    image[0, :, 4:] = 255  # one vertical edge between columns 3 and 4
    edges = sobel(image, 2)[0]
    assert edges[0, 0] > 0 and edges[0, 1] > 0 and edges[0, 0] == pytest.approx(edges[1, 0])


def test_pair_names_are_checked():
    assert parse_pair("shift-text") == ("text", "shift", "tune")
    assert parse_pair("shift-defect-control-heldout") == ("defect", "control", "heldout")
    with pytest.raises(ConfigError, match="unknown pair"):
        parse_pair("shift-paint")


def test_bench_localisation_scores_every_view_and_the_baselines_on_digits():
    result = bench_localisation(
        pairs=("digits",), digits=80, digits_iters=2, baselines=("occlusion", "centre", "sobel")
    )
    (record,) = result["pairs"]
    assert record["pair"] == "digits" and record["n_test"] == 8 and list(record["modes"]) == ["scratch"]
    views = record["modes"]["scratch"]["views"]
    assert {"attention", "transferability", "gap", "shift"} <= set(views)
    assert set(views["shift"]) == {"g7", "g14"}  # the 14×14 map, on the region grid and its own
    assert views["transferability"]["g7"]["auc"] == pytest.approx(views["attention"]["g7"]["auc"])  # 1 − w, read low
    assert all(0.0 <= m["auc"] <= 1.0 for m in (views["gap"]["g7"], record["baselines"]["occlusion"]["g7"]))
    assert "domain_accuracy" in record["baselines"] and "digits|scratch" in result["checks"]


def test_cli_bench_localisation_json_and_refusals(capsys):
    argv = ["bench", "localisation", "--pairs", "digits", "--digits", "60", "--digits-iters", "1"]
    assert main([*argv, "--baselines", "centre", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [p["pair"] for p in result["pairs"]] == ["digits"] and "centre" in result["pairs"][0]["baselines"]
    assert main(["bench", "localisation", "--pairs", "shift-paint"]) == 2
    assert "unknown pair" in capsys.readouterr().err
    assert main(["bench", "localisation", "--pairs", "digits", "--modes", "wild"]) == 2
