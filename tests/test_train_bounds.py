"""train.eval_max bounds every evaluation and the calibration of the accuracy estimate; small data
(fewer images than the cap) trains and evaluates exactly as without it."""

import json

import pytest
import torch

from tada_core import ConfigError, TADAConfig
from tada_core.checkpoint import read_checkpoint
from tada_core.data import DIGITS_NORM
from tada_core.training.calibration import calibration_holdout, calibration_sets, stratified_cap
from tada_core.training.ladder import LadderRecipe
from tada_core.training.loop import train
from tada_core.training.run_data import holdout_split
from tests.helpers import bars_run_data


def test_stratified_cap_keeps_each_class_share_and_is_fixed():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    items = list(range(100))
    capped = stratified_cap(items, labels, 20)
    assert len(capped) == 20 and capped == sorted(capped) and len(set(capped)) == 20
    assert torch.bincount(labels[capped]).tolist() == [12, 6, 2]  # 60 : 30 : 10
    assert stratified_cap(items, labels, 20) == capped  # the same every time
    assert stratified_cap(items, labels, 100) == items and stratified_cap(items, labels, None) == items
    odd = stratified_cap(items, labels, 7)
    assert all(abs(int(n) - share) < 1 for n, share in zip(torch.bincount(labels[odd]), (4.2, 2.1, 0.7), strict=True))
    _, held = holdout_split(labels, 0.3)
    assert set(calibration_holdout(labels, 0.3, 9)) < set(held) and calibration_holdout(labels, 0.3) == held


def test_calibration_sets_are_capped_and_unchanged_under_a_larger_cap():
    data = bars_run_data(200)
    labels, recipe = data.source.labels, LadderRecipe(kind="small", copies=2)

    def sets(max_items):
        return calibration_sets(data.source.dataset, labels, 0.2, recipe, DIGITS_NORM, max_items=max_items)

    free, loose, tight = sets(None), sets(1000), sets(10)
    assert len(free.held_out) == 40 and len(free.statistics) == 160
    for a, b in ((free.held_out, loose.held_out), (free.statistics, loose.statistics)):
        assert a.indices == b.indices
    assert free.split == loose.split == {"fraction": 0.2, "seed": 0, "stratified": True, "size": 40}
    assert len(tight.held_out) == 10 and len(tight.statistics) == 10 and len(tight.rungs[1]) == 20
    assert torch.bincount(labels[tight.held_out.indices]).tolist() == [5, 5]
    assert set(tight.held_out.indices) < set(free.held_out.indices)
    assert tight.split == {**free.split, "size": 10, "held_out": 40, "max_items": 10}


def _config(tmp_path, name: str, frozen: bool, **train_overrides) -> TADAConfig:
    config = TADAConfig(variant="tada", backbone="lenet", num_classes=2)
    config.train.iters, config.train.batch_size, config.train.eval_every = 6, 16, 3
    config.train.out, config.train.frozen_backbone, config.train.localiser = str(tmp_path / name), frozen, False
    for key, value in train_overrides.items():
        setattr(config.train, key, value)
    return config


def _records(run) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("seconds", "estimate_seconds")} for r in records]


@pytest.mark.parametrize("frozen", [False, True])
def test_small_data_trains_and_evaluates_exactly_as_without_a_cap(tmp_path, frozen):
    free = train(_config(tmp_path, "free", frozen, eval_max=None), data=bars_run_data(64))
    capped = train(_config(tmp_path, "capped", frozen, eval_max=1000), data=bars_run_data(64))
    assert _records(tmp_path / "free") == _records(tmp_path / "capped")
    assert _records(tmp_path / "free")[-1]["evaluated"] == {"source": 6, "target": 64}
    (a_info, a), (b_info, b) = read_checkpoint(free.last), read_checkpoint(capped.last)
    assert a_info.extra["calibration"] == b_info.extra["calibration"] and a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(("frozen", "rung"), [(False, 12 * 8), (True, 12 * 4)])
def test_a_source_larger_than_eval_max_is_evaluated_and_calibrated_on_a_capped_sample(tmp_path, frozen, rung):
    config = _config(tmp_path, "run", frozen, eval_max=12, source_holdout=0.2, iters=3)
    result = train(config, data=bars_run_data(200))
    assert result.final["evaluated"] == {"source": 12, "target": 12}
    calibration = read_checkpoint(result.last)[0].extra["calibration"]
    assert calibration["split"] == {
        "fraction": 0.2,
        "seed": 0,
        "stratified": True,
        "size": 12,
        "held_out": 40,
        "max_items": 12,
    }
    # each rung: the 12 held-out images × the copies (fine-tuning: 8; frozen: 4, cut from the cached
    # ladder of all 40)
    assert calibration["rung_sizes"][:2] == [12, rung]


def test_eval_max_below_ten_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="eval_max must be at least 10"):
        train(_config(tmp_path, "run", False, eval_max=5), data=bars_run_data(32))


def test_the_app_form_refuses_fewer_than_ten_evaluation_images():
    from types import SimpleNamespace

    from app.serving.train_form import start_job

    allow = SimpleNamespace(check_can_start=lambda owner: None, check_budget=lambda iters: None)
    ctx = SimpleNamespace(
        jobs=allow,
        storage=SimpleNamespace(check_room=lambda *args: None),
        domains=SimpleNamespace(resolve=lambda choice, owner: choice),
    )
    with pytest.raises(ConfigError, match="evaluation images must be at least 10"):
        start_job(ctx, "visitor", "optdigits", "mnist", "tada", "lenet", 10, 8, 0.01, 1.0, 0.1, eval_max=5)
