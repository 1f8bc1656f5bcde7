"""The accuracy estimate end to end: the ladder, calibration with own BatchNorm statistics, what a
checkpoint stores, ``tada estimate`` and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from tada_core import TADAConfig, build_model
from tada_core.checkpoint import load_checkpoint
from tada_core.cli import main
from tada_core.data import DIGITS_NORM, IMAGENET_NORM, load_domain
from tada_core.errors import DataError
from tada_core.explain.estimate import EstimateError, estimate_accuracy, estimate_line, stored_estimate
from tada_core.training import train
from tada_core.training.calibration import calibrate, calibration_sets, estimate_on
from tada_core.training.ladder import AugmentedCopies, LadderRecipe, recipe_for
from tests.helpers import bars_domain, bars_run_data


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("est") / "run"
    config = TADAConfig(backbone="lenet", variant="dann")
    config.train.iters, config.train.batch_size, config.train.eval_every, config.train.out = 12, 8, 6, str(out)
    train(config, data=bars_run_data(64))
    return out


def test_ladder_copies_are_deterministic_per_item_and_grow_with_severity():
    source = bars_domain(8).dataset
    recipe = LadderRecipe(kind="small", copies=2)
    mild, harsh = (AugmentedCopies(source, [0, 3, 5], s, recipe, DIGITS_NORM) for s in (1, 4))
    assert len(mild) == 6 and mild[4][1] == int(source[3][1])  # copy 1 of image 3
    torch.testing.assert_close(mild[4][0], mild[4][0])  # the same every time
    assert not torch.equal(mild[1][0], mild[4][0])  # two copies of one image differ
    change = [float((ds[0][0] - source[0][0]).abs().mean()) for ds in (mild, harsh)]
    assert 0 < change[0] < change[1]
    photo = TensorDataset(torch.rand(2, 3, 96, 96) * 2 - 1, torch.tensor([0, 1]))
    large = AugmentedCopies(photo, [0, 1], 3, LadderRecipe(kind="large", copies=1), IMAGENET_NORM)
    assert large[1][0].shape == (3, 96, 96) and large[1][1] == 1
    assert recipe_for(28, 500) == LadderRecipe(kind="small", copies=1)
    assert recipe_for(224, 16, max_copies=4) == LadderRecipe(kind="large", copies=4)


def test_calibration_stops_the_ladder_and_never_touches_the_global_rng():
    torch.manual_seed(0)
    model = build_model(TADAConfig(backbone="lenet", num_classes=2, variant="dann")).eval()  # untrained: ~50 %
    data = bars_run_data(40)
    labels = data.source.labels
    sets = calibration_sets(data.source.dataset, labels, 0.2, LadderRecipe(kind="small", copies=2), DIGITS_NORM)
    state = torch.get_rng_state()
    calibration = calibrate(model, sets)
    result = estimate_on(model, data.target.dataset, calibration)
    assert torch.equal(torch.get_rng_state(), state)
    assert calibration.rung_names[0] == "held-out" and calibration.rung_sizes[0] == 8  # 4 of each class
    stopped = [a < 75 for a in calibration.rung_accuracies[1:]]
    assert stopped[-1] and not any(stopped[:-1])  # the first rung below 75 % is the last one
    assert calibration.source_prior == [0.5, 0.5] and calibration.split["stratified"]
    assert 0 <= result.interval[0] <= result.estimated_accuracy <= result.interval[1] <= 100


def test_training_records_and_stores_the_estimate(trained):
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [6, 12]
    for r in records:
        assert set(r["scores"]) == {"source_accuracy", "entropy", "im", "snd", "dev", "estimate"}
        assert r["select"] == "estimate" and r["scores"]["estimate"] == r["estimated_target_accuracy"]
        assert set(r["baselines"]) == {"ac", "doc", "atc", "cot"}
    _, info = load_checkpoint(trained / "last.safetensors")
    calibration = info.extra["calibration"]
    assert calibration["ladder"]["kind"] == "small" and calibration["split"]["seed"] == 0
    assert len(calibration["rung_temperatures"]) == len(calibration["rung_names"]) >= 2
    stored = stored_estimate(info)
    assert stored.estimated_accuracy == records[-1]["estimated_target_accuracy"]
    assert stored.measured_accuracy == records[-1]["target_accuracy"]
    assert estimate_line(info).startswith(f"Estimated target accuracy {stored.estimated_accuracy:.1f}%")


def _png_folder(folder: Path, n: int, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (28, 28, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return folder


def test_cli_estimates_an_unlabelled_folder_and_counts_unreadable_files(trained, tmp_path, capsys):
    folder = _png_folder(tmp_path / "target", 12)
    (folder / "broken.png").write_bytes(b"not an image")
    code = main(["estimate", "--checkpoint", str(trained / "last.safetensors"), "--domain", str(folder), "--json"])
    captured = capsys.readouterr()
    assert code == 0 and captured.err.count("skipped 1 unreadable file(s)") == 1
    result = json.loads(captured.out)
    assert result["n_images"] == 12 and result["measured_accuracy"] is None and isinstance(result["uncertain"], bool)
    assert result["method"].startswith("PM-own") and "class mix" in result["assumption"]
    assert set(result["class_mix"]) == {"horizontal", "vertical"} and sum(
        result["class_mix"].values()
    ) == pytest.approx(1)
    assert result["uncertain"] == bool(result["uncertain_reasons"])
    assert 0 <= result["interval"][0] <= result["estimated_accuracy"] <= result["interval"][1] <= 100
    assert any("1 unreadable" in note for note in result["notes"])


def test_cli_prints_the_measured_accuracy_of_a_labelled_domain_beside_the_estimate(trained, tmp_path, capsys):
    for cls in ("horizontal", "vertical"):
        _png_folder(tmp_path / "labelled" / cls, 6, seed=len(cls))
    code = main(["estimate", "--checkpoint", str(trained / "last.safetensors"), "--domain", str(tmp_path / "labelled")])
    out = capsys.readouterr().out
    assert code == 0 and "estimated accuracy" in out and "measured accuracy (the domain has labels" in out


def test_cli_refuses_tiny_targets_and_other_classes_with_what_to_do(trained, tmp_path, capsys):
    checkpoint = str(trained / "last.safetensors")
    code = main(["estimate", "--checkpoint", checkpoint, "--domain", str(_png_folder(tmp_path / "tiny", 4))])
    err = capsys.readouterr().err
    assert code == 2 and "at least 10" in err and err.count("\n") == 1
    for cls in ("cat", "dog"):
        _png_folder(tmp_path / "pets" / cls, 6)
    code = main(["estimate", "--checkpoint", checkpoint, "--domain", str(tmp_path / "pets")])
    err = capsys.readouterr().err
    assert code == 2 and "'cat', 'dog'" in err.replace('"', "'") and "'horizontal', 'vertical'" in err
    assert "--unlabelled" in err
    code = main(["estimate", "--checkpoint", checkpoint, "--domain", str(tmp_path / "pets"), "--unlabelled"])
    assert code == 0


def test_a_checkpoint_without_calibration_is_calibrated_from_its_source_or_refused_clearly(trained, tmp_path):
    model, info = load_checkpoint(trained / "last.safetensors")
    del info.extra["calibration"], info.extra["estimate"]
    info.source = "bars-source"  # trained from data in memory: nothing by that name on disk
    assert stored_estimate(info) is None and "No accuracy estimate stored" in estimate_line(info)
    with pytest.raises(EstimateError, match="stores no calibration.*'bars-source' cannot be loaded here.*--source"):
        estimate_accuracy(model, info, bars_domain(20, shift=0.4))
    folder = tmp_path / "source"
    for label, cls in enumerate(("horizontal", "vertical")):
        (folder / cls).mkdir(parents=True)
        for i, image in enumerate(bars_domain(24, seed=3).dataset.tensors[0][label::2]):
            pixels = ((image.permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).byte().numpy()
            Image.fromarray(pixels).save(folder / cls / f"{i}.png")
    result = estimate_accuracy(model, info, bars_domain(20, shift=0.4), source=str(folder))
    assert any("computed now from its source" in note for note in result.notes)
    assert 0 <= result.interval[0] <= result.estimated_accuracy <= result.interval[1] <= 100
    with pytest.raises(DataError, match="at least 10"):
        estimate_accuracy(model, info, bars_domain(6))


def test_a_frozen_backbone_run_encodes_its_ladder_once_and_estimates_on_raw_images(tmp_path):
    config = TADAConfig(backbone="lenet", variant="dann")
    config.train.iters, config.train.batch_size, config.train.eval_every = 6, 8, 6
    config.train.out, config.train.frozen_backbone = str(tmp_path / "run"), True
    result = train(config, data=bars_run_data(48))
    model, info = load_checkpoint(result.last)
    ladder = info.extra["calibration"]["ladder"]
    assert ladder["copies"] == 4 and ladder["kind"] == "small"  # encoded at caching time: 4 copies a rung
    estimate = estimate_accuracy(model, info, bars_domain(20, shift=0.4, name="t"))
    assert estimate.notes == [] and 0 <= estimate.estimated_accuracy <= 100


def test_a_labelled_target_with_some_of_the_classes_is_evaluated_and_names_the_absent_ones(trained, tmp_path, capsys):
    checkpoint = str(trained / "last.safetensors")
    source = bars_domain(24, seed=5)
    folder = tmp_path / "partial" / "vertical"  # one class of two: the domain's label 0 is the checkpoint's 1
    folder.mkdir(parents=True)
    images = source.dataset.tensors[0][source.labels == 1]
    for i, image in enumerate(images):
        pixels = ((image.permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
        Image.fromarray(pixels).save(folder / f"{i}.png")
    model, info = load_checkpoint(trained / "last.safetensors")
    domain = load_domain(str(tmp_path / "partial"), image_size=28, norm=DIGITS_NORM, train=False)
    with torch.no_grad():
        predicted = torch.cat([model(x[None]).logits.argmax(1) for x, _ in domain.dataset])
    by_hand = round(100 * float((predicted == 1).double().mean()), 2)  # right = called "vertical"
    assert main(["eval", "--checkpoint", checkpoint, "--domain", str(tmp_path / "partial"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["absent_classes"] == ["horizontal"] and result["n"] == len(images) == 12
    assert result["accuracy"] == pytest.approx(by_hand) and list(result["per_class"]) == ["vertical"]
    assert main(["eval", "--checkpoint", checkpoint, "--domain", str(tmp_path / "partial")]) == 0
    assert "over 1 of 2 classes" in capsys.readouterr().out
    estimated = estimate_accuracy(model, info, str(tmp_path / "partial"))
    assert estimated.measured_accuracy == pytest.approx(by_hand)
    assert any("no image of 1 of the checkpoint's 2 classes (horizontal)" in note for note in estimated.notes)
    for cls in ("cat", "vertical"):  # a class the checkpoint lacks is still refused
        _png_folder(tmp_path / "other" / cls, 6)
    assert main(["eval", "--checkpoint", checkpoint, "--domain", str(tmp_path / "other")]) == 2
    assert "only in the domain: ['cat']" in capsys.readouterr().err
