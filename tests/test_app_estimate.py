"""The estimate in the app: curves with the estimated target accuracy, the Model tab's estimate box,
the one-line header, and which domains the app may read to compute one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.plots import ESTIMATE_CAVEAT, curves_figure
from app.serving.checkpoints import Entry
from app.serving.estimates import compute_for, estimate_line_for, estimate_markdown, readable_spec, stored_for
from tada_core import TADAConfig
from tada_core.checkpoint import load_checkpoint, save_checkpoint
from tada_core.errors import DataError
from tada_core.training import train
from tests.helpers import bars_run_data

EVALS = [
    {"step": 10, "source_accuracy": 90.0, "target_accuracy": 60.0, "estimated_target_accuracy": 58.0, "estimate_interval": [55.0, 63.0]},
    {"step": 20, "source_accuracy": 95.0, "target_accuracy": 70.0, "estimated_target_accuracy": 72.0, "estimate_interval": [68.0, 75.0]},
]  # fmt: skip


def test_curves_draw_measured_and_estimated_target_accuracy_with_the_method_and_caveat():
    fig = curves_figure([], EVALS)
    ax = fig.axes[1]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert lines["target, estimated (PM-own)"].get_linestyle() == "--"
    assert lines["target, estimated (PM-own)"].get_ydata().tolist() == [58.0, 72.0]
    assert lines["target, measured with labels"].get_ydata().tolist() == [60.0, 70.0]
    assert fig._supxlabel.get_text() == ESTIMATE_CAVEAT and "PM-own" in ESTIMATE_CAVEAT
    unlabelled = [{k: v for k, v in r.items() if k != "target_accuracy"} for r in EVALS]
    labels = [line.get_label() for line in curves_figure([], unlabelled).axes[1].get_lines()]
    assert labels == ["held-out source", "target, estimated (PM-own)"]


@pytest.fixture(scope="module")
def run_checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("app-est") / "run"
    config = TADAConfig(backbone="lenet", variant="source_only")
    config.train.iters, config.train.batch_size, config.train.eval_every, config.train.out = 6, 8, 6, str(out)
    train(config, data=bars_run_data(48))
    return out / "last.safetensors"


def test_stored_estimate_line_and_markdown(run_checkpoint):
    entry = Entry("runs/run", run_checkpoint, "run")
    stored = stored_for(entry)
    assert stored is not None and estimate_line_for(entry).startswith("Estimated target accuracy")
    text = estimate_markdown(stored)
    assert f"{stored.estimated_accuracy:.1f}%" in text and "Method:" in text and "class mix" in text
    mix_line = next(line for line in text.splitlines() if "Estimated class mix of the target:*" in line)
    assert "horizontal: " in mix_line and "vertical: " in mix_line  # keyed by the checkpoint's class names


def test_compute_reads_only_domains_the_server_trusts(run_checkpoint, tmp_path):
    folder = tmp_path / "target"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (28, 28, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    model, info = load_checkpoint(run_checkpoint)
    info.target = str(folder)
    path = save_checkpoint(tmp_path / "ckpt.safetensors", model, info)
    assert readable_spec(Entry("x", path, "upload"), "mnist") == "mnist"
    assert readable_spec(Entry("x", path, "upload"), str(folder)) is None  # a stranger's metadata names no path
    with pytest.raises(DataError, match="not on this server"):
        compute_for(None, Entry("x", path, "upload"))

    class Ctx:
        device = "cpu"

    result = compute_for(Ctx(), Entry("runs/x", path, "run"))
    assert result.n_images == 12 and result.measured_accuracy is None
    assert compute_for(Ctx(), Entry("runs/x", path, "run")) is result  # cached per file
