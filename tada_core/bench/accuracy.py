"""Accuracy benchmark: every variant on every pair of a suite, several seeds, the same budget.

Reports the *last* checkpoint's target accuracy of each run (no model selection with target
labels), mean ± std over seeds per variant and pair, each variant's average over pairs, and
whether the paper's order (source_only < dann < tada_local, tada_global < tada) holds.
Each run also keeps its evaluation records (``history``) and grades the label-free choices
(:mod:`tada_core.bench.label_free`): the estimate, its interval and the measured accuracy at the
last and at the selected checkpoint, and the checkpoint each selection criterion would choose, its
regret against the oracle and its gain over ``last``; the result sums them up over runs
(``selection``, ``estimation``).
Runs go to a process pool (one thread each), so ``jobs=2`` uses both cores of a small machine.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from tada_core.bench.label_free import estimation_table, run_report, selection_table
from tada_core.config import VARIANTS, TADAConfig

SUITES: dict[str, list[tuple[str, str]]] = {
    "digits": [("mnist", "optdigits"), ("optdigits", "mnist"), ("mnist", "mnistm")],
    "tiny": [("mnist", "optdigits")],
}


def set_path(data: dict, dotted: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``dotted = "a.b"``."""
    *parents, leaf = dotted.split(".")
    for key in parents:
        data = data.setdefault(key, {})
    data[leaf] = value


def run_one(job: dict) -> dict:
    """Train one (variant, pair, seed) job in a temporary folder; returns its final accuracies."""
    import torch

    from tada_core.training import train

    torch.set_num_threads(job.get("threads", 1))
    data = {"variant": job["variant"], "train": {"source": job["source"], "target": job["target"]}}
    for key, value in job["settings"].items():
        set_path(data, key, value)
    started = time.time()
    keep = job.get("keep")
    with tempfile.TemporaryDirectory(prefix="tada-bench-") as scratch:
        out = Path(keep, f"{job['variant']}_{job['source']}_{job['target']}_s{job['seed']}") if keep else Path(scratch)
        set_path(data, "train.out", str(out))
        set_path(data, "train.seed", job["seed"])
        result = train(TADAConfig.from_dict(data))
        history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return run_record(job, history, result.best_step, round(time.time() - started, 1))


HISTORY_KEYS = (
    "step",
    "target_accuracy",
    "source_accuracy",
    "estimated_target_accuracy",
    "estimate_interval",
    "estimate_uncertain",
    "temperature",
    "estimate_seconds",
    "scores",
    "baselines",
    "select",
)


def run_record(job: dict, history: list[dict], best_step: int, seconds: float) -> dict:
    """One run's result: last and selected accuracy, the label-free report, the curve and history."""
    final = history[-1]
    return {
        "variant": job["variant"],
        "source": job["source"],
        "target": job["target"],
        "seed": job["seed"],
        "run": f"{job['variant']}_{job['source']}_{job['target']}_s{job['seed']}",
        "group": f"{job['source']}→{job['target']} {job['variant']}",
        "target_accuracy": final.get("target_accuracy"),
        "source_accuracy": final.get("source_accuracy"),
        "oracle_target_accuracy": max(r["target_accuracy"] for r in history),  # chosen with target labels
        "selected_target_accuracy": next(r["target_accuracy"] for r in history if r["step"] == best_step),
        "best_step": best_step,
        "seconds": round(seconds, 1),
        **run_report(history),
        "curve": [
            [r["step"], r["target_accuracy"], r["source_accuracy"], r.get("estimated_target_accuracy")] for r in history
        ],
        "history": [{k: r[k] for k in HISTORY_KEYS if k in r} for r in history],
    }


def label_free_summary(runs: list[dict]) -> dict:
    """The selection and estimation tables over ``runs`` (records of :func:`run_record`)."""
    return {
        "selection": selection_table(runs),
        "estimation": {"last": estimation_table(runs, "last"), "selected": estimation_table(runs, "selected")},
    }


def summarize(runs: list[dict], pairs: list[tuple[str, str]], variants: tuple[str, ...]) -> dict:
    """Mean ± std per variant and pair, averages over pairs and the checks of the goal."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    averages: dict[str, float] = {}
    for variant in variants:
        table[variant] = {}
        for source, target in pairs:
            accs = [
                r["target_accuracy"]
                for r in runs
                if (r["variant"], r["source"], r["target"]) == (variant, source, target)
            ]
            if accs:
                table[variant][f"{source}→{target}"] = {
                    "mean": round(statistics.mean(accs), 2),
                    "std": round(statistics.stdev(accs), 2) if len(accs) > 1 else 0.0,
                    "n": len(accs),
                }
        if table[variant]:
            averages[variant] = round(statistics.mean(v["mean"] for v in table[variant].values()), 2)
    checks = {}
    if {"tada", "source_only"} <= set(averages):
        checks["tada_minus_source_only"] = round(averages["tada"] - averages["source_only"], 2)
    if {"tada", "dann"} <= set(averages):
        checks["tada_beats_dann"] = averages["tada"] > averages["dann"]
    if set(VARIANTS) <= set(averages):
        a = averages
        checks["paper_order_holds"] = (
            a["source_only"] < a["dann"] < min(a["tada_local"], a["tada_global"])
            and max(a["tada_local"], a["tada_global"]) < a["tada"]
        )
    return {"table": table, "average": averages, "checks": checks}


def bench_accuracy(
    suite: str = "digits",
    *,
    seeds: int = 3,
    variants: tuple[str, ...] = VARIANTS,
    settings: dict[str, Any] | None = None,
    jobs: int = 2,
    on_result: Callable[[dict], None] | None = None,
    keep: str | None = None,
) -> dict:
    """Train ``variants × pairs × seeds`` runs and summarise them.

    Args:
        suite: a key of :data:`SUITES`.
        seeds: seeds 0 … seeds−1.
        settings: dotted config overrides applied to every run (``{"train.iters": 1500}``).
        jobs: parallel worker processes.
        on_result: called with each finished run (for progress output).
        keep: keep every run's folder (checkpoints, metrics.jsonl) under this folder,
            named ``<variant>_<source>_<target>_s<seed>``; by default they are deleted.
    """
    pairs = SUITES[suite]
    settings = dict(settings or {})
    job_list = [
        {"variant": v, "source": s, "target": t, "seed": seed, "settings": settings, "keep": keep}
        for seed in range(seeds)
        for s, t in pairs
        for v in variants
    ]
    started = time.time()
    runs = []
    if jobs <= 1:
        for job in job_list:
            runs.append(run_one(job))
            if on_result:
                on_result(runs[-1])
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for future in as_completed([pool.submit(run_one, job) for job in job_list]):
                runs.append(future.result())
                if on_result:
                    on_result(runs[-1])
    return {
        "suite": suite,
        "seeds": seeds,
        "settings": settings,
        "minutes": round((time.time() - started) / 60, 1),
        **summarize(runs, pairs, variants),
        **label_free_summary(runs),
        "runs": sorted(runs, key=lambda r: (r["variant"], r["source"], r["target"], r["seed"])),
    }
