"""The accuracy estimate under label shift: subsets of labelled targets mixed unlike the source.

Over trained checkpoints (the shipped ones by default: nothing is trained). For each (checkpoint,
target) the deployed model's outputs on the whole target are computed once (a frozen backbone's
maps too); each subset is then estimated as ``tada estimate`` would on those images alone
(:func:`~tada_core.training.calibration.estimate_on`: own statistics from the subset, the class
mix by EM), beside the estimate before issue 34 (own statistics, matched to the source's mix).
The target labels are read here only, to draw the subsets and grade the estimates.

Subsets of a target with C classes (seeded):
- ``balanced``: the whole target;
- ``dominant c@f``: all images of class c (the first and the middle class), a fraction of each
  other class so that c makes f ∈ {0.5, 0.7, 0.85} of the subset;
- ``absent …``: one or two classes left out, the rest whole;
- ``dirichlet k``: a mix drawn from Dirichlet(1, …, 1), as many images as the classes allow.

    >>> result = bench_label_shift([("checkpoints/tada_mnist_mnistm.safetensors", "mnistm")])
    >>> result["cases"][0]["summary"]["shifted"]["mae"]
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

from tada_core.checkpoint import load_checkpoint
from tada_core.data import load_domain
from tada_core.errors import DataWarning
from tada_core.model.inputs import image_size_for, norm_for
from tada_core.training.calibration import estimate_on, own_outputs
from tada_core.training.estimator import Calibration, matched_accuracy
from tada_core.training.evaluate import Outputs, collect_outputs
from tada_core.training.feature_cache import CachedMaps, FrozenBackboneHead, backbone_maps
from tada_core.training.label_shift import total_variation

SHIPPED = (
    ("checkpoints/tada_mnist_mnistm.safetensors", "mnistm"),
    ("checkpoints/source_only_mnist_mnistm.safetensors", "mnistm"),
    ("checkpoints/dann_mnist_mnistm.safetensors", "mnistm"),
    ("checkpoints/tada_photos_sketch.safetensors", "photos-sketch"),
    ("checkpoints/tada_shift_text.safetensors", "shift-text-target"),
)
DOMINANT = (0.5, 0.7, 0.85)
DIRICHLET_DRAWS = 5
GOAL = {"worst": 5.0, "mae": 3.0, "balanced_worse_by": 0.5}


def subsets(labels: torch.Tensor, num_classes: int, seed: int = 0) -> dict[str, list[int]]:
    """The named subsets (item indices) of a target with these ``labels`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(labels.numpy() == c)).tolist() for c in range(num_classes)]
    out = {"balanced": list(range(len(labels)))}
    for c in (0, num_classes // 2):
        for f in DOMINANT:
            k = round(len(by_class[c]) * (1 - f) / (f * (num_classes - 1)))
            out[f"dominant {c}@{f:.2f}"] = by_class[c] + [
                i for o in range(num_classes) if o != c for i in by_class[o][:k]
            ]
    for gone in ((num_classes - 1,), (1,), (0, 1), (num_classes // 2, num_classes - 1)):
        out[f"absent {'+'.join(map(str, gone))}"] = [
            i for c in range(num_classes) if c not in gone for i in by_class[c]
        ]
    for draw in range(DIRICHLET_DRAWS):
        mix = rng.dirichlet(np.ones(num_classes))
        total = min(len(by_class[c]) / mix[c] for c in range(num_classes))
        out[f"dirichlet {draw}"] = [i for c in range(num_classes) for i in by_class[c][: int(total * mix[c])]]
    return out


def _subset(outputs: Outputs, items: list[int]) -> Outputs:
    index = torch.tensor(items, dtype=torch.long)
    return Outputs(outputs.logits[index], outputs.features[index], outputs.labels[index])


def _grade(runner, dataset, calibration: Calibration, running: Outputs, items: list[int], names: list[str]) -> dict:
    """One subset: the estimate, the one before issue 34, the truth, the class mixes."""
    mine = _subset(running, items)
    truth = 100.0 * float((mine.logits.argmax(1) == mine.labels).double().mean())
    true_mix = torch.bincount(mine.labels, minlength=len(names)).double() / len(items)
    result = estimate_on(runner, dataset, calibration, items, running=mine, class_names=names)
    own = own_outputs(runner, dataset, items)
    before = matched_accuracy(
        own.logits, mine.logits.argmax(1), calibration.temperature, torch.tensor(calibration.source_prior)
    )
    estimated_mix = torch.tensor(list(result.class_mix.values()), dtype=torch.float64)
    prior = torch.tensor(calibration.source_prior, dtype=torch.float64)
    return {
        "n": len(items),
        "true_mix": [round(float(x), 4) for x in true_mix],
        "true_shift": round(total_variation(true_mix, prior), 4),
        "measured": round(truth, 2),
        "estimate": result.estimated_accuracy,
        "error": round(result.estimated_accuracy - truth, 2),
        "before": round(before, 2),
        "before_error": round(before - truth, 2),
        "class_mix": result.class_mix,
        "mix_error": round(total_variation(estimated_mix, true_mix), 4),
        "mix_shift": result.mix_shift,
        "mix_used": result.mix_used,
        "interval": result.interval,
        "uncertain": result.uncertain,
        "reasons": [reason.split(":", 1)[0] for reason in result.uncertain_reasons],
    }


def _stats(rows: list[dict], key: str) -> dict:
    errors = [abs(r[key]) for r in rows]
    return {"mae": round(statistics.fmean(errors), 2), "worst": round(max(errors), 2)}


def summarise(records: dict[str, dict]) -> dict:
    """MAE / worst of the estimate and of the one before on the shifted subsets, the class-mix error,
    the balanced target's change, and whether the goal (:data:`GOAL`) is met."""
    shifted = [r for name, r in records.items() if name != "balanced"]
    balanced = records["balanced"]
    misses = [name for name, r in records.items() if name != "balanced" and abs(r["error"]) > GOAL["worst"]]
    new = _stats(shifted, "error")
    worse_by = round(abs(balanced["error"]) - abs(balanced["before_error"]), 2)
    return {
        "shifted": new | {"subsets": len(shifted), "flagged": sum(r["uncertain"] for r in shifted)},
        "shifted_before": _stats(shifted, "before_error"),
        "mix_error": {
            "mae": round(statistics.fmean(r["mix_error"] for r in shifted), 4),
            "worst": round(max(r["mix_error"] for r in shifted), 4),
        },
        "balanced": {"error": balanced["error"], "before_error": balanced["before_error"], "worse_by": worse_by},
        "misses": misses,
        "misses_not_flagged": [name for name in misses if not records[name]["uncertain"]],
        "goal_met": new["worst"] <= GOAL["worst"]
        and new["mae"] <= GOAL["mae"]
        and worse_by <= GOAL["balanced_worse_by"],
    }


def bench_case(checkpoint: str, target: str, *, device: str = "cpu", seed: int = 0) -> dict:
    """Every subset of ``target`` for one checkpoint, and the summary."""
    started = time.time()
    model, info = load_checkpoint(checkpoint, device=device)
    calibration = Calibration.from_dict(info.extra["calibration"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        domain = load_domain(target, image_size=image_size_for(info.config), norm=norm_for(info.config), train=False)
    runner, dataset = model, domain.dataset
    if info.config.train.frozen_backbone:
        runner, dataset = (
            FrozenBackboneHead(model),
            CachedMaps(*backbone_maps(model.cache_parts()[0], dataset, device=device)),
        )
    running = collect_outputs(runner, dataset, device=device)
    names = list(info.class_names)
    records = {
        name: _grade(runner, dataset, calibration, running, items, names)
        for name, items in subsets(running.labels, len(names), seed).items()
    }
    return {
        "checkpoint": checkpoint,
        "target": target,
        "variant": info.variant,
        "records": records,
        "summary": summarise(records),
        "seconds": round(time.time() - started, 1),
    }


def bench_label_shift(cases=SHIPPED, *, device: str = "cpu", on_case: Callable[[dict], None] | None = None) -> dict:
    """:func:`bench_case` over ``cases`` ((checkpoint, target) pairs)."""
    results = []
    for checkpoint, target in cases:
        results.append(bench_case(checkpoint, target, device=device))
        if on_case is not None:
            on_case(results[-1])
    return {"goal": GOAL, "cases": results}


def table(result: dict) -> list[str]:
    """The markdown table of :func:`bench_label_shift`'s result, one row per case."""
    lines = [
        "| checkpoint → target | shifted subsets: MAE / worst | before (source mix) | class-mix TV error MAE / worst "
        "| balanced error (before) | misses > 5 (flagged) | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in result["cases"]:
        s = case["summary"]
        name = case["checkpoint"].rsplit("/", 1)[-1].removesuffix(".safetensors")
        misses = f"{len(s['misses'])} ({len(s['misses']) - len(s['misses_not_flagged'])})"
        lines.append(
            f"| {name} → {case['target']} | {s['shifted']['mae']:.1f} / {s['shifted']['worst']:.1f} "
            f"| {s['shifted_before']['mae']:.1f} / {s['shifted_before']['worst']:.1f} "
            f"| {s['mix_error']['mae']:.3f} / {s['mix_error']['worst']:.3f} "
            f"| {s['balanced']['error']:+.1f} ({s['balanced']['before_error']:+.1f}) | {misses} "
            f"| {'met' if s['goal_met'] else 'not met'} |"
        )
    return lines
