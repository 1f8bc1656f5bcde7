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


def _record(step, truth, estimate, interval, scores, select="estimate"):
    return {
        "step": step,
        "target_accuracy": truth,
        "estimated_target_accuracy": estimate,
        "estimate_interval": interval,
        "estimate_uncertain": interval[1] - interval[0] > 10,
        "scores": {**scores, "estimate": estimate},
        "baselines": {"ac": truth + 4.0},
        "select": select,
    }


HISTORY = [
    _record(100, 70.0, 72.0, [69.0, 75.0], {"entropy": -0.5, "im": 1.0}),
    _record(200, 80.0, 78.0, [76.0, 79.0], {"entropy": -0.2, "im": 1.0}),  # the oracle
    _record(300, 75.0, 78.0, [74.0, 80.0], {"entropy": -0.1, "im": 0.5}),  # last; ties the estimate: later wins
]


def test_label_free_report_by_hand():
    from tada_core.bench.label_free import estimation_table, run_report, selection_table

    report = run_report(HISTORY)
    assert report["oracle_target_accuracy"] == 80.0
    criteria = report["criteria"]
    assert criteria["last"] == {"step": 300, "target_accuracy": 75.0, "regret": 5.0, "vs_last": 0.0, "spearman": None}
    assert criteria["estimate"]["step"] == 300  # 78.0 twice: the later one
    assert criteria["im"]["step"] == 200 and criteria["im"]["regret"] == 0.0 and criteria["im"]["vs_last"] == 5.0
    assert criteria["entropy"]["step"] == 300 and criteria["entropy"]["spearman"] == 0.5  # ranks 1,2,3 vs 1,3,2
    assert (
        report["last"]["error"] == 3.0
        and report["last"]["covered"]
        and report["last"]["baseline_errors"] == {"ac": 4.0}
    )
    assert report["selected"]["step"] == 300
    second = {**run_report(HISTORY[:2]), "run": "b", "group": "g"}  # last = the oracle; estimate −2, missed
    table = selection_table([{**report, "run": "a", "group": "g"}, second])
    assert table["last"]["regret"] == {"mean": 2.5, "worst": 5.0, "n": 2} and table["last"]["worst_run"] == "a"
    estimation = estimation_table([{**report, "run": "a", "group": "g"}, second])
    assert estimation["g"]["pm_own"] == {"mae": 2.5, "worst": 3.0} and estimation["g"]["coverage"] == 0.5
    assert estimation["all"]["ac"] == {"mae": 4.0, "worst": 4.0}
