"""A checkpoint's model card: what was trained, on what, how, and how well — as markdown.

    >>> _, info = load_checkpoint("runs/latest/last.safetensors")
    >>> history = read_history("runs/latest/metrics.jsonl")
    >>> print(model_card(info, history, name="last.safetensors"))

``scripts/model_card.py`` writes the cards of the shipped checkpoints (with accuracies measured
on the full domains); the app puts one beside every checkpoint a visitor downloads.
"""

from __future__ import annotations

import json
from pathlib import Path

from tada_core.checkpoint import CheckpointInfo


def read_history(path: str | Path) -> list[dict]:
    """The records of a run's ``metrics.jsonl`` (empty when the file is missing)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def backbone_note(info: CheckpointInfo) -> str:
    cfg = info.config
    if not cfg.pretrained:
        return "from scratch"
    if cfg.train.frozen_backbone:
        return "ImageNet weights, frozen: its features were computed once and cached, the rest trained on them"
    return "ImageNet weights, fine-tuned"


def _percent(value: float | None) -> str:
    return f"{value:.2f}%" if value is not None else "—"


def model_card(
    info: CheckpointInfo,
    history: list[dict],
    *,
    name: str,
    command: str | None = None,
    measured: dict[str, float] | None = None,
) -> str:
    """Markdown describing the checkpoint ``name``.

    Args:
        info: the checkpoint's metadata.
        history: its run's evaluation records (``metrics.jsonl``), oldest first.
        command: the command that trained it, when known.
        measured: accuracies measured on the full domains (``{"source": …, "target": …}``), which
            replace the numbers of the last evaluation.
    """
    cfg, metrics = info.config, info.metrics
    target = (measured or {}).get("target", metrics.get("target_accuracy"))
    source = (measured or {}).get("source", metrics.get("source_accuracy"))
    where = "all images" if measured else "last evaluation"
    classes = ", ".join(info.class_names)
    rows = [
        f"| target accuracy ({info.target}, {where}) | **{_percent(target)}**"
        + (" (the target has no labels)" if target is None else "")
        + " |",
        *_estimate_rows(info),
        f"| source accuracy ({info.source}{', held-out part' if cfg.train.source_holdout else ''}) | {_percent(source)} |",
        f"| steps | {info.extra.get('step')} (batch {cfg.train.batch_size} + {cfg.train.batch_size}) |",
        f"| seed | {cfg.train.seed} |",
        f"| checkpoint | {_chosen(info, name)} |",
    ]
    text = [
        f"# {name}",
        "",
        f"TADA Studio model card. Variant **{cfg.variant}**, backbone **{cfg.backbone}** ({backbone_note(info)}),",
        f"{info.source} → {info.target}, {cfg.num_classes} classes ({classes}).",
        "",
        "| | |",
        "|---|---|",
        *rows,
    ]
    if command:
        text += ["", "Command:", "", f"    {command}"]
    text += ["", f"Verify: `tada eval --checkpoint {name} --domain {info.target}` (needs target labels)"]
    text += [f"Estimate without labels: `tada estimate --checkpoint {name} --domain {info.target}`"]
    curve = [r for r in history if "step" in r]
    if curve:
        text += [
            "",
            f"Training curve (accuracy in %, evaluated every {cfg.train.eval_every} steps):",
            "",
            "| step | target | target, estimated without labels | source |",
            "|---|---|---|---|",
            *(
                f"| {r['step']} | {_percent(r.get('target_accuracy'))} | {_percent(r.get('estimated_target_accuracy'))} "
                f"| {_percent(r.get('source_accuracy'))} |"
                for r in curve
            ),
        ]
    return "\n".join(text) + "\n"


def _estimate_rows(info: CheckpointInfo) -> list[str]:
    estimate = info.extra.get("estimate")
    if not isinstance(estimate, dict) or "estimated_accuracy" not in estimate:
        return []
    low, high = estimate["interval"]
    flag = ", uncertain" if estimate.get("uncertain") else ""
    return [
        f"| target accuracy estimated without labels (PM-own, last evaluation) | {_percent(estimate['estimated_accuracy'])} "
        f"(interval {low:.1f}–{high:.1f}{flag}; assumes the target's classes are mixed as in the source) |"
    ]


def _chosen(info: CheckpointInfo, name: str) -> str:
    if "best" in name:
        return f"the run's best evaluation by {info.config.train.select}, chosen without target labels"
    return "the run's last evaluation (no choice with target labels)"
