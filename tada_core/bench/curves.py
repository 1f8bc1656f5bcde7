"""Learning curves of an accuracy benchmark: target accuracy of the running model against steps.

Pure: a benchmark result (``bench_accuracy``'s dict, whose runs carry ``curve`` rows
``[step, target %, source %, estimated target %]``) in, a matplotlib figure out. One panel per
domain pair, one line per variant: the measured target accuracy, mean over seeds, with a band of
± one standard deviation when there are several; dashed in the same colour, the accuracy
estimated without target labels (PM-own), when the runs recorded it.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

COLORS = {
    "source_only": "#7f7f7f",
    "dann": "#1f77b4",
    "tada_local": "#2ca02c",
    "tada_global": "#9467bd",
    "tada": "#d62728",
}


def mean_curves(
    runs: list[dict], column: int = 1
) -> dict[tuple[str, str], dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """{(source, target): {variant: (steps, mean, std)}} over the seeds of each (pair, variant), of
    ``curve`` column ``column`` (1: measured target accuracy, 3: the estimate).

    Runs of one (pair, variant) must share their evaluation steps; steps missing in a run (or
    without a value in that column) are dropped.
    """
    grouped: dict[tuple[str, str], dict[str, list[dict[int, float]]]] = {}
    for run in runs:
        by_step = {
            int(row[0]): float(row[column])
            for row in run.get("curve") or []
            if len(row) > column and row[column] is not None
        }
        if not by_step:
            continue
        grouped.setdefault((run["source"], run["target"]), {}).setdefault(run["variant"], []).append(by_step)
    out: dict = {}
    for pair, variants in grouped.items():
        out[pair] = {}
        for variant, curves in variants.items():
            steps = sorted(set.intersection(*(set(c) for c in curves)))
            values = np.array([[c[s] for s in steps] for c in curves])  # (seeds, steps)
            out[pair][variant] = (np.array(steps), values.mean(axis=0), values.std(axis=0))
    return out


def curves_figure(result: dict, *, title: str | None = None) -> Figure:
    """One panel per pair: target accuracy (%) against training steps, per variant (mean ± std)."""
    curves = mean_curves(result["runs"])
    estimates = mean_curves(result["runs"], column=3)
    pairs = list(curves)
    fig = Figure(figsize=(4.2 * max(1, len(pairs)), 3.6), layout="constrained")
    axes = fig.subplots(1, max(1, len(pairs)), squeeze=False)[0]
    for ax, pair in zip(axes, pairs, strict=False):
        for variant, (steps, mean, std) in curves[pair].items():
            color = COLORS.get(variant)
            ax.plot(steps, mean, marker="o", markersize=3, label=variant, color=color)
            if np.any(std > 0):
                ax.fill_between(steps, mean - std, mean + std, alpha=0.15, color=color)
            if variant in estimates.get(pair, {}):
                est_steps, est_mean, _ = estimates[pair][variant]
                ax.plot(est_steps, est_mean, ls="--", lw=1.2, color=color, label=f"{variant} (estimated)")
        ax.set_title(f"{pair[0]} → {pair[1]}")
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("target accuracy (%)")
    axes[0].legend(fontsize=8, loc="lower right")
    seeds = result.get("seeds")
    note = "; dashed: estimated without target labels (PM-own)" if estimates else ""
    fig.suptitle(title or f"Learning curves (last model at each step; mean ± std over {seeds} seed(s){note})")
    return fig
