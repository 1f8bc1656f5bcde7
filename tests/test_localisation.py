"""The planted-artefact pair and the localisation benchmark, on a tiny budget."""

import json

import numpy as np
import pytest

from tada_core.bench.localisation import bench_localisation, neighbours, roc_auc
from tada_core.bench.planted import checkerboard, plant
from tada_core.cli import main


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


def test_roc_auc_by_hand():
    mask = np.array([True, False, False, True])
    # positives 0.9 and 0.4 against negatives 0.1 and 0.5: 3 of the 4 pairs ranked right
    assert roc_auc(mask, np.array([0.9, 0.1, 0.5, 0.4])) == pytest.approx(0.75)
    assert roc_auc(mask, np.array([0.9, 0.1, 0.5, 0.4]), "low") == pytest.approx(0.25)


def test_bench_localisation_scores_every_view_for_trained_and_untrained_models():
    result = bench_localisation(variants=("tada_local",), iters=2, batch_size=8, digits=80, evals=1)
    assert result["digits"] == 80 and result["n_test_targets"] == 8
    floor, trained = result["models"]
    assert floor["model"] == "untrained tada" and trained["model"] == "tada_local" and trained["steps"] == 2
    for model in (floor, trained):
        assert set(model["auc"]) == {"attention", "transferability", "gap"}
        assert all(0.0 <= auc <= 1.0 for auc in model["auc"].values())
        assert model["auc"]["transferability"] == model["auc"]["attention"]  # 1 − w, read low = planted
    assert [t["step"] for t in trained["during_training"]] == [2]


def test_cli_bench_localisation_json_and_refusals(capsys):
    argv = ["bench", "localisation", "--variants", "tada", "--iters", "1", "--batch-size", "4", "--digits", "60"]
    argv += ["--set", "train.optim.discriminator_lr_mult=10"]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [m["model"] for m in result["models"]] == ["untrained tada", "tada"]
    assert result["settings"] == {"train.optim.discriminator_lr_mult": 10}
    assert main(["bench", "localisation", "--variants", "dann"]) == 2
    assert "no local attention" in capsys.readouterr().err
