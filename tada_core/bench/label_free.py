"""How well the label-free choices did in a benchmark: model selection and accuracy estimation.

Pure: the evaluation records of runs (``metrics.jsonl`` lines: ``step``, ``target_accuracy``,
``scores`` of every criterion, ``estimated_target_accuracy``, ``estimate_interval``, ``baselines``)
in, numbers out. Target labels are read here only, to grade what was chosen without them.

Selection, per run: each criterion picks the evaluation with its highest score (ties → the later);
``regret`` = oracle − chosen (the oracle is the best target accuracy of the run, which needs target
labels); ``vs_last`` = chosen − last; Spearman's ρ between the criterion's score and the target
accuracy over the run's evaluations. Estimation, per run: the error estimate − measured at the
last evaluation (PM-own and the baselines), and whether the interval covers the measured accuracy.
"""

from __future__ import annotations

import math
import statistics

LAST = "last"


def _pick(history: list[dict], criterion: str) -> dict:
    if criterion == LAST:
        return history[-1]
    best = None
    for record in history:
        score = (record.get("scores") or {}).get(criterion)
        if score is not None and (best is None or score >= best["scores"][criterion]):
            best = record
    return best or history[-1]


def _spearman(a: list[float], b: list[float]) -> float | None:
    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    from scipy.stats import spearmanr

    value = float(spearmanr(a, b).statistic)
    return None if math.isnan(value) else round(value, 3)


def run_report(history: list[dict]) -> dict:
    """Selection and estimation of one run from its evaluation records (``target_accuracy`` needed)."""
    labelled = [r for r in history if r.get("target_accuracy") is not None]
    if not labelled:
        return {}
    oracle = max(r["target_accuracy"] for r in labelled)
    last = labelled[-1]
    names = [LAST, *(labelled[-1].get("scores") or {})]
    criteria = {}
    for name in names:
        chosen = _pick(labelled, name)
        truth = [r["target_accuracy"] for r in labelled if name == LAST or name in (r.get("scores") or {})]
        scores = [r["scores"][name] for r in labelled if name != LAST and name in (r.get("scores") or {})]
        criteria[name] = {
            "step": chosen["step"],
            "target_accuracy": chosen["target_accuracy"],
            "regret": round(oracle - chosen["target_accuracy"], 2),
            "vs_last": round(chosen["target_accuracy"] - last["target_accuracy"], 2),
            "spearman": _spearman(scores, truth) if name != LAST else None,
        }
    report: dict = {"oracle_target_accuracy": oracle, "criteria": criteria}
    for key, record in (("last", last), ("selected", _pick(labelled, labelled[-1].get("select", LAST)))):
        if record.get("estimated_target_accuracy") is None:
            continue
        low, high = record["estimate_interval"]
        report[key] = {
            "step": record["step"],
            "target_accuracy": record["target_accuracy"],
            "estimated_accuracy": record["estimated_target_accuracy"],
            "estimate_interval": [low, high],
            "uncertain": record.get("estimate_uncertain"),
            "error": round(record["estimated_target_accuracy"] - record["target_accuracy"], 2),
            "covered": low <= record["target_accuracy"] <= high,
            "baseline_errors": {
                name: round(value - record["target_accuracy"], 2)
                for name, value in (record.get("baselines") or {}).items()
            },
        }
    return report


def _stats(values: list[float], worst: str) -> dict:
    if not values:
        return {}
    pick = max if worst == "max" else min
    return {"mean": round(statistics.fmean(values), 2), "worst": round(pick(values), 2), "n": len(values)}


def selection_table(reports: list[dict]) -> dict:
    """Per criterion over runs: regret (mean, worst = largest), Δ vs last (mean, worst = most
    negative), Spearman ρ (mean, worst = lowest) and the run where the regret was largest."""
    names: list[str] = []
    for report in reports:
        names += [n for n in report.get("criteria", {}) if n not in names]
    table = {}
    for name in names:
        rows = [(r["run"], r["criteria"][name]) for r in reports if name in r.get("criteria", {})]
        worst_run = max(rows, key=lambda row: row[1]["regret"])[0] if rows else None
        table[name] = {
            "regret": _stats([c["regret"] for _, c in rows], "max"),
            "vs_last": _stats([c["vs_last"] for _, c in rows], "min"),
            "spearman": _stats([c["spearman"] for _, c in rows if c["spearman"] is not None], "min"),
            "worst_run": worst_run,
        }
    return table


def estimation_table(reports: list[dict], at: str = "last") -> dict:
    """Per group (the runs' ``group``, e.g. pair × variant) and overall: mean absolute error and the
    worst absolute error of PM-own and each baseline at ``at`` (``last`` or ``selected``), the
    interval's coverage and how often it was flagged uncertain."""
    groups: dict[str, list[dict]] = {}
    for report in reports:
        if at in report:
            groups.setdefault(report["group"], []).append(report[at])
            groups.setdefault("all", []).append(report[at])
    table = {}
    for group, rows in groups.items():
        errors = {"pm_own": [abs(r["error"]) for r in rows]}
        for row in rows:
            for name, error in row["baseline_errors"].items():
                errors.setdefault(name, []).append(abs(error))
        table[group] = {
            **{name: {"mae": round(statistics.fmean(e), 2), "worst": round(max(e), 2)} for name, e in errors.items()},
            "coverage": round(sum(r["covered"] for r in rows) / len(rows), 2),
            "uncertain": sum(bool(r["uncertain"]) for r in rows),
            "n": len(rows),
        }
    return table
