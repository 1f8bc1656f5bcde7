"""Training loop, schedules, sampling, resume and checkpoints on tiny in-memory data."""

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from tada_core import CheckpointError, ConfigError, TADAConfig, build_model
from tada_core.checkpoint import CheckpointInfo, atomic_write, load_checkpoint, save_checkpoint
from tada_core.training.evaluate import evaluate
from tada_core.training.loop import Callback, TrainingError, train
from tada_core.training.sampling import StreamBatchSampler
from tada_core.training.step import lr_factor
from tests.helpers import bars_run_data


def _config(tmp_path, **train_overrides) -> TADAConfig:
    config = TADAConfig(variant="tada", backbone="lenet", num_classes=2)
    config.train.iters = 30
    config.train.batch_size = 16
    config.train.eval_every = 10
    config.train.out = str(tmp_path / "run")
    for key, value in train_overrides.items():
        setattr(config.train, key, value)
    return config


def test_lr_schedule_hand_values():
    assert lr_factor(0.0) == 1.0
    assert lr_factor(1.0) == pytest.approx(11 ** (-0.75))
    assert lr_factor(0.5, alpha=2.0, beta=1.0) == pytest.approx(0.5)


def test_sampler_covers_each_epoch_once_and_ranks_are_disjoint():
    sampler = StreamBatchSampler(size=10, batch_size=4, seed=3)
    stream = [i for b in range(5) for i in sampler.batch_indices(b)]  # 20 positions = 2 epochs
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
    rank0 = StreamBatchSampler(10, 2, seed=3, rank=0, world=2)
    rank1 = StreamBatchSampler(10, 2, seed=3, rank=1, world=2)
    first = rank0.batch_indices(0) + rank1.batch_indices(0) + rank0.batch_indices(1) + rank1.batch_indices(1)
    assert first == stream[:8]  # the two ranks split the single-process stream
    resumed = StreamBatchSampler(10, 4, seed=3, start=3)
    assert next(iter(resumed)) == sampler.batch_indices(3)


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_start(self, run):
        self.events.append(("start", run.step))

    def on_step(self, run, logs):
        self.events.append(("step", run.step))

    def on_eval(self, run, record):
        self.events.append(("eval", record["step"]))

    def on_end(self, run, result):
        self.events.append(("end", result.steps))


def test_train_writes_run_folder_and_learns(tmp_path):
    recorder = Recorder()
    result = train(_config(tmp_path), data=bars_run_data(), callbacks=[recorder])
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"last.safetensors", "best.safetensors", "metrics.jsonl", "config.yaml"}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30]
    assert records[-1]["source_accuracy"] >= 90.0  # the bars are easy: a working loop learns them
    assert [e for e in recorder.events if e[0] != "step"] == [
        ("start", 0),
        ("eval", 10),
        ("eval", 20),
        ("eval", 30),
        ("end", 30),
    ]
    assert sum(e[0] == "step" for e in recorder.events) == 30
    model, info = load_checkpoint(result.last)
    assert info.class_names == ["horizontal", "vertical"] and info.extra["step"] == 30
    again = evaluate(model, bars_run_data().target_eval.dataset, info.class_names)
    assert again["accuracy"] == records[-1]["target_accuracy"]
    assert TADAConfig.from_yaml(run / "config.yaml").variant == "tada"


def test_resume_continues_exactly(tmp_path):
    straight = train(_config(tmp_path / "a", iters=20), data=bars_run_data())
    steps = []
    stopped = train(
        _config(tmp_path / "b", iters=20),
        data=bars_run_data(),
        should_stop=lambda: len(steps) >= 10,
        callbacks=[type("S", (Callback,), {"on_step": lambda self, run, logs: steps.append(run.step)})()],
    )
    assert stopped.stopped and stopped.steps == 10
    resumed = train(_config(tmp_path / "b", iters=20), data=bars_run_data(), resume=True)
    assert resumed.steps == 20
    a, _ = load_checkpoint(straight.last)
    b, _ = load_checkpoint(resumed.last)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, msg=name)


def test_run_folder_guards(tmp_path):
    config = _config(tmp_path, iters=2, eval_every=2)
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(config, data=bars_run_data(), resume=True)
    train(config, data=bars_run_data())
    with pytest.raises(TrainingError, match="already holds a run"):
        train(config, data=bars_run_data())
    with pytest.raises(ConfigError, match="variant differ"):
        train(config.replace(variant="dann"), data=bars_run_data(), resume=True)


def test_nan_loss_stops_with_clear_message(tmp_path):
    config = _config(tmp_path, iters=50)
    config.train.optim.lr = 1e12
    with pytest.raises(TrainingError, match="loss became"):
        train(config, data=bars_run_data())


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "ckpt.safetensors"
    target.write_bytes(b"old")

    def broken(tmp):
        with open(tmp, "wb") as handle:
            handle.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]


def _saved(tmp_path, **config_changes):
    model = build_model(TADAConfig(num_classes=2, **config_changes))
    info = CheckpointInfo(model.config, ["a", "b"], "s", "t", {"target_accuracy": 50.0})
    return save_checkpoint(tmp_path / "m.safetensors", model, info), model


def test_checkpoint_round_trip_and_errors(tmp_path):
    path, model = _saved(tmp_path)
    loaded, info = load_checkpoint(path)
    x = torch.randn(2, 3, 28, 28)
    torch.testing.assert_close(loaded(x).logits, model.eval()(x).logits)
    assert info.metrics == {"target_accuracy": 50.0} and not loaded.training
    (tmp_path / "evil.pt").write_bytes(b"\x80\x04cos\nsystem\n.")
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a valid"):
        load_checkpoint(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")
    save_file({"w": torch.zeros(1)}, tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match="no TADA metadata"):
        load_checkpoint(tmp_path / "foreign.safetensors")


def test_checkpoint_with_wrong_shapes_or_metadata(tmp_path):
    _, model = _saved(tmp_path)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    info = CheckpointInfo(TADAConfig(num_classes=3), ["a", "b", "c"])
    save_file(state, tmp_path / "shapes.safetensors", metadata={"tada": info.to_json()})
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_checkpoint(tmp_path / "shapes.safetensors")
    del state["model.classifier.bias"]
    info = CheckpointInfo(TADAConfig(num_classes=2), ["a", "b"])
    save_file(state, tmp_path / "missing.safetensors", metadata={"tada": info.to_json()})
    with pytest.raises(CheckpointError, match="missing model.classifier.bias|missing classifier.bias"):
        load_checkpoint(tmp_path / "missing.safetensors")
    save_file(state, tmp_path / "garbage.safetensors", metadata={"tada": "{not json"})
    with pytest.raises(CheckpointError, match="unreadable TADA metadata"):
        load_checkpoint(tmp_path / "garbage.safetensors")


def test_grl_coefficient_follows_progress_during_training(tmp_path):
    seen = []
    train(
        _config(tmp_path, iters=4, eval_every=4),
        data=bars_run_data(),
        callbacks=[type("G", (Callback,), {"on_step": lambda self, run, logs: seen.append(logs["grl"])})()],
    )
    expected = [2 / (1 + math.exp(-10 * p)) - 1 for p in (0, 0.25, 0.5, 0.75)]
    assert seen == pytest.approx(expected)
