"""Training curves of a run as one matplotlib figure: losses per step, accuracy per evaluation.

The accuracy panel draws the held-out source accuracy, the target accuracy measured with labels
(only when the target has them) and, dashed with its interval shaded, the target accuracy
estimated without labels (PM-own, :mod:`tada_core.explain.estimate`), with a one-line caveat.

A figure (rendered to a PNG by the tab) rather than ``gr.LinePlot``: Gradio's native plots keep the
colour legend of the first data they receive, so terms that appear later would never be drawn.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from tada_core.explain.viz import SOURCE_COLOR, TARGET_COLOR, figure_to_array

ESTIMATE_CAVEAT = (
    "dashed: target accuracy estimated without target labels (PM-own: temperature from a held-out-source "
    "augmentation ladder, own BatchNorm statistics, the target's class mix by EM); assumes each class looks on the "
    "target as on the calibration sets"
)

LOSS_KEYS = ("total", "classification", "global_adversarial", "local_adversarial", "entropy", "pseudo_label")
LOSS_STYLE = {
    "total": ("total", "#222222"),
    "classification": ("classification", "#7b3294"),
    "global_adversarial": ("global adversarial", "#e08214"),
    "local_adversarial": ("local adversarial", "#1b9e77"),
    "entropy": ("attentive entropy", "#8c96c6"),
}


def curves_figure(losses: list[dict], evals: list[dict], *, loss_title: str = "training losses") -> Figure:
    """Left: each loss term against the step. Right: source and target accuracy (%) at each evaluation,
    measured (the target only when labelled) and estimated without target labels (dashed, interval shaded)."""
    fig = Figure(figsize=(10.5, 3.3), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    drawn = False
    for key in LOSS_KEYS:
        points = [(r["step"], r[key]) for r in losses if r.get(key) is not None]
        if points:
            label, color = LOSS_STYLE[key]
            ax_loss.plot(*np.array(points, dtype=float).T, label=label, color=color, lw=1.5)
            drawn = True
    if drawn:
        ax_loss.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        ax_loss.text(0.5, 0.5, "no steps yet", ha="center", va="center", transform=ax_loss.transAxes, color="#777")
    ax_loss.set_title(loss_title, fontsize=10)
    ax_loss.set_ylabel("loss", fontsize=9)
    labels = {"target": "target, measured with labels", "source": "held-out source"}
    for domain, color in (("target", TARGET_COLOR), ("source", SOURCE_COLOR)):
        points = [(r["step"], r[f"{domain}_accuracy"]) for r in evals if r.get(f"{domain}_accuracy") is not None]
        if points:
            ax_acc.plot(*np.array(points, dtype=float).T, label=labels[domain], color=color, lw=1.8, marker="o", ms=3)
    estimated = [r for r in evals if r.get("estimated_target_accuracy") is not None]
    if estimated:
        steps = np.array([r["step"] for r in estimated], dtype=float)
        values = np.array([r["estimated_target_accuracy"] for r in estimated], dtype=float)
        ax_acc.plot(
            steps, values, label="target, estimated (PM-own)", color=TARGET_COLOR, lw=1.5, ls="--", marker="x", ms=4
        )
        bands = [r.get("estimate_interval") for r in estimated]
        if all(isinstance(b, (list, tuple)) and len(b) == 2 for b in bands):
            low, high = np.array(bands, dtype=float).T
            ax_acc.fill_between(steps, low, high, color=TARGET_COLOR, alpha=0.12, lw=0)
        fig.supxlabel(ESTIMATE_CAVEAT, fontsize=6.5, color="#555555", wrap=True)
    if evals:
        ax_acc.legend(fontsize=8, frameon=False, loc="lower right")
    else:
        ax_acc.text(0.5, 0.5, "no evaluation yet", ha="center", va="center", transform=ax_acc.transAxes, color="#777")
    ax_acc.set_ylim(0, 100)
    ax_acc.set_title("accuracy at each evaluation (%)", fontsize=10)
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("step", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return fig


def curves_image(losses: list[dict], evals: list[dict], **kwargs) -> np.ndarray:
    """:func:`curves_figure` rendered as a (H, W, 3) uint8 RGB array."""
    return figure_to_array(curves_figure(losses, evals, **kwargs), dpi=100)


def read_metrics(path: Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` (unreadable lines are skipped)."""
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "step" in record:
                records.append(record)
    return records
