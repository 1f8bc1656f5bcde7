"""Unlabelled targets, as users have them: flat folders, zips and lists of images; target labels
never train and never choose a checkpoint."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch.utils.data import TensorDataset

from tada_core.cli import main
from tada_core.config import TADAConfig
from tada_core.data import DIGITS_NORM, Domain, load_domain
from tada_core.errors import ConfigError, DataError
from tada_core.training import train
from tada_core.training.run_data import RunData, holdout_split
from tests.helpers import bars_domain


def _load(spec, **kwargs) -> Domain:
    return load_domain(str(spec), image_size=28, norm=DIGITS_NORM, train=False, **kwargs)


def _images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"img_{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_flat_folder_zip_and_path_list_are_unlabelled_targets(tmp_path, monkeypatch):
    monkeypatch.setenv("TADA_DATA_ROOT", str(tmp_path / "cache"))
    paths = _images(tmp_path / "flat", 12)
    flat = _load(tmp_path / "flat")
    assert not flat.labelled and flat.class_names is None and len(flat) == 12
    assert flat.labels.tolist() == [-1] * 12 and flat.dataset[3][1] == -1

    with zipfile.ZipFile(tmp_path / "camera_b.zip", "w") as archive:
        for path in paths:
            archive.write(path, f"camera_b/{path.name}")
    zipped = _load(tmp_path / "camera_b.zip")
    assert not zipped.labelled and len(zipped) == 12
    assert (tmp_path / "cache" / "unzipped").is_dir()  # extracted once, under the data root

    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"flat/{p.name}\n" for p in paths[:10]))
    listed = _load(listing)
    assert not listed.labelled and len(listed) == 10


def test_a_labelled_domain_can_be_read_without_its_labels():
    assert _load("optdigits").labelled
    hidden = _load("optdigits", labels="ignore")
    assert not hidden.labelled and set(hidden.labels.tolist()) == {-1} and hidden.dataset[0][1] == -1
    with pytest.raises(ConfigError, match="labels must be one of auto, require, ignore"):
        _load("optdigits", labels="bogus")


def test_source_must_be_labelled_and_tiny_targets_are_refused(tmp_path):
    _images(tmp_path / "flat", 12)
    with pytest.raises(DataError, match="no class sub-folders, so it has no labels; the source needs them"):
        _load(tmp_path / "flat", labels="require")
    _images(tmp_path / "tiny", 4)
    code = main(["train", "--source", "mnist", "--target", str(tmp_path / "tiny"), "--out", str(tmp_path / "r")])
    assert code == 2 and not (tmp_path / "r").exists()


def test_holdout_split_is_stratified_fixed_disjoint_and_sized():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    train_part, held = holdout_split(labels, 0.1)
    assert len(held) == 10 and len(train_part) == 90 and not set(train_part) & set(held)
    assert torch.bincount(labels[held]).tolist() == [6, 3, 1]  # round(0.1 · n_c) of each class
    assert holdout_split(labels, 0.1) == (train_part, held)  # the same for every run (not the training seed)
    assert holdout_split(labels[torch.randperm(100)], 0.1) != (train_part, held)  # but it follows the items
    # at least one of each class, never all of it; nothing held out at 0
    assert (
        holdout_split(torch.tensor([0, 0, 1, 1, 2]), 0.1)[1] != []
        and len(holdout_split(torch.tensor([0, 0, 1, 1, 2]), 0.1)[1]) == 2
    )
    assert holdout_split(torch.tensor([0, 1, 1]), 0.0) == ([0, 1, 2], [])


def _bars_with_target(labels: torch.Tensor | None) -> RunData:
    source = bars_domain(48, seed=0, name="bars-source")
    base = bars_domain(40, shift=0.4, seed=1, name="bars-target")
    images = base.dataset.tensors[0]
    if labels is None:
        target = Domain("bars-target", None, TensorDataset(images, torch.full((40,), -1)))
    else:
        target = Domain("bars-target", base.class_names, TensorDataset(images, labels))
    return RunData(source=source, target=target, source_eval=source, target_eval=target)


def _tiny_config(out: Path) -> TADAConfig:
    config = TADAConfig(backbone="lenet", variant="tada")
    config.train.iters, config.train.batch_size, config.train.eval_every, config.train.out = 12, 8, 3, str(out)
    return config


@pytest.mark.slow
def test_target_labels_change_neither_the_weights_nor_the_chosen_checkpoint(tmp_path):
    true_labels = torch.arange(40) % 2
    shuffled = true_labels[torch.randperm(40, generator=torch.Generator().manual_seed(1))]
    runs = {
        "true": train(_tiny_config(tmp_path / "true"), data=_bars_with_target(true_labels)),
        "shuffled": train(_tiny_config(tmp_path / "shuffled"), data=_bars_with_target(shuffled)),
        "none": train(_tiny_config(tmp_path / "none"), data=_bars_with_target(None)),
    }
    assert "target_accuracy" not in runs["none"].final
    assert runs["true"].final["target_accuracy"] != runs["shuffled"].final["target_accuracy"]
    assert len({r.best_step for r in runs.values()}) == 1
    for name in ("last", "best"):
        weights = [load_file(tmp_path / run / f"{name}.safetensors") for run in runs]
        keys = [k for k in weights[0] if k.startswith("model.")]
        assert keys and all(torch.equal(weights[0][k], other[k]) for other in weights[1:] for k in keys), name


@pytest.mark.slow
def test_cli_trains_on_a_flat_target_folder(tmp_path, capsys):
    for cls in ("horizontal", "vertical"):
        _images(tmp_path / "src" / cls, 6, seed=len(cls))
    _images(tmp_path / "tgt", 12, seed=9)
    out = tmp_path / "run"
    argv = ["train", "--source", str(tmp_path / "src"), "--target", str(tmp_path / "tgt"), "--iters", "4"]
    code = main([*argv, "--batch-size", "4", "--eval-every", "2", "--out", str(out), "--json", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["target_accuracy"] is None and summary["best_step"] in (2, 4)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("target_accuracy" not in r and r["select"] == "estimate" for r in records)
    assert all("estimated_target_accuracy" in r and len(r["estimate_interval"]) == 2 for r in records)
    assert (out / "best.safetensors").is_file()
