"""Write the model card (``<checkpoint>.md``) of a checkpoint from its metadata and training log.

Usage: python scripts/model_card.py CKPT --history RUN/metrics.jsonl --command "tada train …"
       [--localisation shift-text] [--notes NOTES.md]
The target accuracy in the card is measured here, with ``tada eval``'s code, on the full domain
(its labels are read only for this). A run trained on an unlabelled target logs no target accuracy:
its curve shows the label-free estimate instead. The estimate the checkpoint stores, if any, gets a
row. ``--notes`` appends a markdown file (attribution, how hard the pair is, …) to the card.
With ``--localisation PAIR`` the card also gives every view's localisation on the pair's held-out
target images (``tada bench localisation``'s scoring), measured here on this very file.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from tada_core.checkpoint import load_checkpoint
from tada_core.data import load_domain
from tada_core.explain.estimate import stored_estimate
from tada_core.model.inputs import image_size_for, norm_for
from tada_core.training.evaluate import evaluate


def _backbone_note(cfg) -> str:
    if not cfg.pretrained:
        return "from scratch"
    if cfg.train.frozen_backbone:
        return "ImageNet weights, frozen: its features were computed once and cached, the rest trained on them"
    return "ImageNet weights, fine-tuned"


def _localisation_section(model, path: Path, pair: str) -> str:
    """Every view of this checkpoint scored on the pair's held-out target images (7×7 and finer cells)."""
    from tada_core.bench.localisation import case_for, score_views

    case = case_for(pair)
    scored = score_views(model, path, case)
    rows = []
    for view in ("shift", "gap", "attention"):
        for grid, m in scored.get(view, {}).items():
            rows.append(
                f"| {view} | {grid[1:]}×{grid[1:]} | {m['auc']:.3f} | {m.get('auc_nn', float('nan')):.3f} | {m['pointing']:.2f} |"
            )
    return f"""
Where the target differs, on the {len(case.masks)} held-out target images of `{pair}` (never trained on;
ground truth = the artefact masks; `tada bench localisation`'s scoring, measured on this file):

| view | cells | ROC-AUC | AUC w/o clean neighbours | pointing game |
|---|---|---|---|---|
{chr(10).join(rows)}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--history", type=Path, required=True)
    parser.add_argument("--command", required=True)
    parser.add_argument("--localisation", default=None, metavar="PAIR", help="e.g. shift-text")
    parser.add_argument("--notes", type=Path, default=None, help="markdown appended to the card")
    args = parser.parse_args()
    model, info = load_checkpoint(args.checkpoint)
    cfg = info.config
    results = {}
    for role, spec in (("source", info.source), ("target", info.target)):
        domain = load_domain(spec, image_size=image_size_for(cfg), norm=norm_for(cfg), train=False)
        results[role] = evaluate(model, domain.dataset, info.class_names)["accuracy"]
    history = [json.loads(line) for line in args.history.read_text().splitlines() if line.strip()]
    labelled = all(r.get("target_accuracy") is not None for r in history)
    target_key, target_head = (
        ("target_accuracy", "target")
        if labelled
        else ("estimated_target_accuracy", "target, estimated without labels (the run never read them)")
    )
    curve = "\n".join(f"| {r['step']} | {r[target_key]:.2f} | {r['source_accuracy']:.2f} |" for r in history)
    source_head = "source" if labelled or not cfg.train.source_holdout else "held-out source"
    estimate = stored_estimate(info)
    estimate_row = (
        f"| label-free estimate of the target accuracy (stored in the file) | {estimate.estimated_accuracy:.2f}% "
        f"(interval {estimate.interval[0]:.1f}–{estimate.interval[1]:.1f}) |\n"
        if estimate is not None
        else ""
    )
    card = f"""# {args.checkpoint.name}

TADA Studio model card. Variant **{cfg.variant}**, backbone **{cfg.backbone}** ({_backbone_note(cfg)}),
{info.source} → {info.target}, {cfg.num_classes} classes ({", ".join(info.class_names)}).

| | |
|---|---|
| target accuracy ({info.target}, all {"images"}) | **{results["target"]:.2f}%** |
{estimate_row}| source accuracy ({info.source}) | {results["source"]:.2f}% |
| steps | {info.extra.get("step")} (batch {cfg.train.batch_size} + {cfg.train.batch_size}) |
| seed | {cfg.train.seed} |
| checkpoint | the run's `last` checkpoint (no selection with target labels) |
| measured on | {platform.machine()} CPU, torch {torch.__version__} |

Command:

    {args.command}

Verify: `tada eval --checkpoint {args.checkpoint} --domain {info.target}`

Training curve (accuracy in %, evaluated every {cfg.train.eval_every} steps):

| step | {target_head} | {source_head} |
|---|---|---|
{curve}
"""
    if args.localisation:
        card += _localisation_section(model, args.checkpoint, args.localisation)
    if args.notes:
        card += "\n" + args.notes.read_text()
    args.checkpoint.with_suffix(".md").write_text(card)
    print(json.dumps({"checkpoint": str(args.checkpoint), **results}))


if __name__ == "__main__":
    main()
