"""`tada train`, `tada eval`, `--resume` and bad input through the real CLI entry point."""

import json
import os
import subprocess
import sys

import pytest

from tada_core.cli import main

TINY = ["--source", "optdigits", "--target", "mnist", "--batch-size", "8", "--eval-max", "100", "--quiet"]


def _json_out(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_eval_resume(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", *TINY, "--iters", "6", "--eval-every", "3", "--out", out, "--json"]) == 0
    summary = _json_out(capsys)
    assert summary["steps"] == 6 and summary["variant"] == "tada"
    assert os.path.exists(summary["last"]) and os.path.exists(tmp_path / "run" / "config.yaml")
    assert main(["eval", "--checkpoint", summary["last"], "--domain", "optdigits", "--json"]) == 0
    result = _json_out(capsys)
    assert result["n"] == 1797 and set(result["per_class"]) == {str(i) for i in range(10)}
    assert main(["train", "--out", out, "--resume", "--iters", "9", "--json", "--quiet"]) == 0
    assert _json_out(capsys)["steps"] == 9
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [3, 6, 9]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--variant", "mada", "--iters", "1"], "unknown variant"),
        (["train", "--source", "nowhere", "--target", "mnist", "--iters", "1"], "unknown domain 'nowhere'"),
        (["train", "--backbone", "vgg", "--iters", "1"], "unknown backbone"),
        (["train", "--iters", "zero"], "invalid int value"),
        (["train", "--config", "missing.yaml"], "does not exist"),
        (["eval", "--checkpoint", "missing.safetensors", "--domain", "mnist"], "does not exist"),
        (["eval", "--checkpoint", "model.pt", "--domain", "mnist"], "pickle"),
        (["bench", "accuracy", "--suite", "imagenet"], "unknown suite"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"pickle")
    try:
        code = main([*argv, *(["--out", str(tmp_path / "r")] if argv[0] == "train" else [])])
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_mismatched_classes_are_refused_before_training(tmp_path, capsys):
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / "folder" / cls).mkdir(parents=True)
        Image.new("RGB", (28, 28)).save(tmp_path / "folder" / cls / "a.png")
    code = main(["train", "--source", "mnist", "--target", str(tmp_path / "folder"), "--out", str(tmp_path / "r")])
    assert code == 2
    assert "cat" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path):
    """DDP on CPU with gloo: finishes, writes one valid checkpoint, accuracy like one process."""
    common = ["--source", "optdigits", "--target", "optdigits", "--variant", "dann", "--iters", "40"]
    common += ["--batch-size", "16", "--eval-every", "40", "--json", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    ddp = subprocess.run(
        [*torchrun, "-m", "tada_core", "train", *common, "--out", str(tmp_path / "ddp")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    ddp_summary = json.loads(ddp.stdout.strip().splitlines()[-1])
    assert len([line for line in ddp.stdout.splitlines() if line.startswith("{")]) == 1  # only rank 0 reports
    single = subprocess.run(
        [sys.executable, "-m", "tada_core", "train", *common, "--out", str(tmp_path / "one")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-2000:]
    single_summary = json.loads(single.stdout.strip().splitlines()[-1])
    from tada_core.checkpoint import load_checkpoint

    _, info = load_checkpoint(ddp_summary["last"])
    assert info.extra["world_size"] == 2 and info.extra["step"] == 40
    assert ddp_summary["target_accuracy"] > 50 and single_summary["target_accuracy"] > 50
    assert abs(ddp_summary["target_accuracy"] - single_summary["target_accuracy"]) < 25
