"""Interrupted and failing training runs keep a loadable checkpoint and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import tada_core.training.loop as train_module
from tada_core.checkpoint import load_checkpoint
from tada_core.training.loop import TrainingError, train
from tests.helpers import bars_run_data
from tests.test_train import _config


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_finishes(tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "tada_core", "train", "--source", "optdigits", "--target", "mnist"]
    argv += [
        "--iters",
        "400",
        "--batch-size",
        "8",
        "--eval-every",
        "5",
        "--eval-max",
        "50",
        "--quiet",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        metrics = out / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    _, info = load_checkpoint(out / "last.safetensors")  # never half-written
    killed_at = info.extra["step"]
    assert 10 <= killed_at < 400  # the third evaluation line was written after the second checkpoint
    done = subprocess.run(
        [*argv[:-2], "--out", str(out), "--resume", "--iters", "40", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["steps"] == max(40, killed_at)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # no duplicated history


def test_out_of_memory_stops_with_message_and_keeps_last(tmp_path, monkeypatch):
    real_step = train_module.train_step
    calls = {"n": 0}

    def flaky_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 15:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", flaky_step)
    config = _config(tmp_path, iters=30, eval_every=10)
    with pytest.raises(TrainingError, match="out of memory at step 15.*smaller --batch-size"):
        train(config, data=bars_run_data())
    _, info = load_checkpoint(tmp_path / "run" / "last.safetensors")
    assert info.extra["step"] == 10
