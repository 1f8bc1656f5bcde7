"""The accuracy benchmark: summary statistics, learning curves and the CLI on a tiny budget."""

import json

import numpy as np
import pytest

from tada_core.bench.accuracy import summarize
from tada_core.bench.curves import curves_figure, mean_curves
from tada_core.cli import main


def _run(variant, seed, final, curve):
    return {"variant": variant, "source": "a", "target": "b", "seed": seed, "target_accuracy": final, "curve": curve}


RUNS = [
    _run("dann", 0, 60.0, [[100, 40.0, 90.0], [200, 60.0, 95.0]]),
    _run("dann", 1, 70.0, [[100, 50.0, 90.0], [200, 70.0, 95.0]]),
    _run("tada", 0, 80.0, [[100, 55.0, 90.0], [200, 80.0, 95.0]]),
]


def test_summary_is_mean_and_sample_std_of_the_last_checkpoints():
    summary = summarize(RUNS, [("a", "b")], ("dann", "tada"))
    assert summary["table"]["dann"]["a→b"] == {"mean": 65.0, "std": round(float(np.std([60, 70], ddof=1)), 2), "n": 2}
    assert summary["average"] == {"dann": 65.0, "tada": 80.0}
    assert summary["checks"]["tada_beats_dann"] is True


def test_mean_curves_average_seeds_step_by_step():
    curves = mean_curves(RUNS)
    steps, mean, std = curves[("a", "b")]["dann"]
    assert steps.tolist() == [100, 200] and mean.tolist() == [45.0, 65.0] and std.tolist() == [5.0, 5.0]
    fig = curves_figure({"runs": RUNS, "seeds": 2})
    [ax] = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["dann", "tada"]
    assert ax.get_lines()[1].get_ydata().tolist() == [55.0, 80.0]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_cli_runs_a_tiny_suite_and_plots_its_curves(tmp_path, capsys):
    plot = tmp_path / "curves.png"
    code = main(
        ["bench", "accuracy", "--suite", "tiny", "--seeds", "1", "--variants", "source_only,tada", "--iters", "4",
         "--batch-size", "8", "--eval-every", "2", "--jobs", "1", "--set", "train.eval_max=100", "--plot", str(plot), "--keep", str(tmp_path / "runs"), "--json"]
    )  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert {r["variant"] for r in result["runs"]} == {"source_only", "tada"}
    assert [row[0] for row in result["runs"][0]["curve"]] == [2, 4]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    kept = tmp_path / "runs" / "tada_mnist_optdigits_s0"
    assert (kept / "last.safetensors").is_file() and (kept / "metrics.jsonl").is_file()


def test_cli_refuses_a_plot_path_that_is_a_folder_before_training(tmp_path, capsys):
    code = main(["bench", "accuracy", "--suite", "tiny", "--seeds", "1", "--variants", "tada", "--plot", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a folder" in err and not list(tmp_path.iterdir())  # nothing was trained
