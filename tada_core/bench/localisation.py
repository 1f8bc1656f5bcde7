"""Localisation benchmark: do the views find where the target really differs from the source?

Pairs with ground truth: the digits checkerboard pair (:mod:`tada_core.bench.planted`, MNIST →
MNIST with a checkerboard planted in 1–3 random cells of each target image) and the photo pairs of
:mod:`tada_core.data.shift_pairs` (a text stamp, watermark, dust spot or sensor defect on every
target image; control pairs where the artefact is in both domains and the target differs only
globally). For each pair and training mode, TADA is trained on the pair's training images
(`tada train`'s own code) and every view of its held-out target images is scored
(:mod:`tada_core.bench.scoring`: cell ROC-AUC, AUC without the clean neighbours, pointing game):

* ``attention`` w (read high), ``transferability`` 1 − w (read low), ``gap`` (the region probes'
  P(target), fitted on the training images), ``shift`` (the localiser stored by training);

next to the baselines of :mod:`tada_core.bench.baselines` (a domain classifier's Grad-CAM,
Grad-CAM++ and occlusion, the centre prior, Sobel edges), trained and scored on the same images.

Modes: ``frozen`` = the photo defaults (ImageNet EfficientNet-Lite0 frozen, 300 steps of 32 + 32
cached maps); ``finetune`` = the backbone fine-tuned, a short schedule (``finetune_iters`` steps of
``finetune_batch`` + ``finetune_batch`` images, lr 0.01 with the backbone at 0.1×). The digits
LeNet is always trained from scratch (600 steps of 64 + 64; mode ``scratch``).

The goal (DESIGN.md): on every localised-shift pair ROC-AUC ≥ 0.95 and pointing ≥ 0.90, ahead of
Grad-CAM measured in the same run; on every control AUC ≤ 0.70.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tada_core.bench import baselines as B
from tada_core.bench.planted import PlantedPair, planted_pair
from tada_core.bench.scoring import evaluate_map
from tada_core.checkpoint import load_checkpoint, read_info, read_tensors
from tada_core.config import TADAConfig
from tada_core.data import DIGITS_NORM, IMAGENET_NORM, Domain, build_transform
from tada_core.data.artefacts import KINDS
from tada_core.data.datasets import ArrayImages, TensorImages
from tada_core.data.digits import DIGIT_CLASSES
from tada_core.data.shift_pairs import WINDOW, ShiftPair, pair_name, shift_pair
from tada_core.data.transforms import arrays_to_tensor
from tada_core.errors import ConfigError
from tada_core.explain.gap import fit_region_probes
from tada_core.explain.shift import recorded_tap
from tada_core.model import TADAModel
from tada_core.model.localiser import PREFIX, Localiser, tap_features, tap_for
from tada_core.training.loop import train
from tada_core.training.photo_defaults import with_photo_defaults
from tada_core.training.run_data import RunData

PHOTO_PAIRS = (
    "shift-text",
    "shift-watermark",
    "shift-dust",
    "shift-defect",
    "shift-defect-heldout",
    "shift-text-heldout",
    "shift-text-control",
    "shift-watermark-control",
    "shift-dust-control",
    "shift-defect-control-heldout",
)
PAIRS = ("digits", *PHOTO_PAIRS)
MODES = ("frozen", "finetune")
BASELINES = ("gradcam", "gradcampp", "occlusion", "centre", "sobel")
VIEW_READS = {"attention": "high", "transferability": "low", "gap": "high", "shift": "high"}
GOAL = {"auc": 0.95, "pointing": 0.90, "control_auc_max": 0.70, "ahead_of_gradcam": 0.05}


def parse_pair(name: str) -> tuple[str, str, str]:
    """``shift-<kind>[-control][-heldout]`` → (kind, mode, photos); ConfigError for anything else."""
    parts = name.split("-")
    if len(parts) < 2 or parts[0] != "shift" or parts[1] not in KINDS or pair_name(*_spec(parts)) != name:
        raise ConfigError(f"unknown pair {name!r}; choose from {', '.join(PAIRS)}")
    return _spec(parts)


def _spec(parts: list[str]) -> tuple[str, str, str]:
    return parts[1], "control" if "control" in parts else "shift", "heldout" if "heldout" in parts else "tune"


def _domain(name: str, images: torch.Tensor, labels: np.ndarray, classes: list[str]) -> Domain:
    return Domain(name, classes, TensorImages(images, torch.as_tensor(labels)))


def planted_run_data(pair: PlantedPair) -> RunData:
    """The digits pair as a :class:`RunData`: train on the train parts, evaluate on the test parts."""

    def tensor(images: np.ndarray) -> torch.Tensor:
        return arrays_to_tensor(images, 28, DIGITS_NORM).expand(-1, 3, -1, -1).contiguous()  # (N, 3, 28, 28)

    classes = list(DIGIT_CLASSES)
    return RunData(
        source=_domain("mnist", tensor(pair.source_train), pair.source_labels_train, classes),
        target=_domain("planted-mnist", tensor(pair.target_train), pair.target_labels_train, classes),
        source_eval=_domain("mnist", tensor(pair.source_test), pair.source_labels_test, classes),
        target_eval=_domain("planted-mnist", tensor(pair.target_test), pair.target_labels_test, classes),
    )


class _Case:
    """One pair ready to benchmark: training data, held-out tensors, masks over the model's input."""

    def __init__(self, name: str, seed: int, digits: int | None) -> None:
        self.name = name
        if name == "digits":
            pair = planted_pair(seed=seed, digits=digits)
            self.kind, self.control = "digits", False
            self.data = planted_run_data(pair)
            self.train_x = {"source": self.data.source.dataset.images, "target": self.data.target.dataset.images}
            self.test_x = {
                "source": self.data.source_eval.dataset.images,
                "target": self.data.target_eval.dataset.images,
            }
            self.masks = np.repeat(np.repeat(pair.mask_test, 4, axis=1), 4, axis=2)  # (N, 28, 28): cells of 4 px
            self.pixels = pair.target_test
        else:
            kind, mode, photos = parse_pair(name)
            pair = shift_pair(kind, mode, photos, seed)
            self.kind, self.control = kind, mode == "control"
            self.data = self._photo_data(pair)
            self.train_x = {r: self._tensor(p.images) for r, p in (("source", pair.source), ("target", pair.target))}
            self.test_x = {
                r: self._tensor(p.images) for r, p in (("source", pair.source_test), ("target", pair.target_test))
            }
            x0, y0, side = WINDOW  # the centre crop the 224-px model sees
            self.masks = pair.target_test.masks[:, y0 : y0 + side, x0 : x0 + side]
            self.pixels = pair.target_test.images[:, y0 : y0 + side, x0 : x0 + side]

    @staticmethod
    def _tensor(images: np.ndarray) -> torch.Tensor:
        dataset = ArrayImages(images, np.zeros(len(images)), build_transform(224, IMAGENET_NORM, train=False))
        return torch.stack([dataset[i][0] for i in range(len(dataset))])  # (N, 3, 224, 224)

    @staticmethod
    def _photo_data(pair: ShiftPair) -> RunData:
        def view(part, role: str, train_view: bool) -> Domain:
            transform = build_transform(224, IMAGENET_NORM, train=train_view)
            return Domain(f"{pair.name}-{role}", pair.classes, ArrayImages(part.images, part.labels, transform))

        return RunData(
            source=view(pair.source, "source", True),
            target=view(pair.target, "target", True),
            source_eval=view(pair.source, "source", False),
            target_eval=view(pair.target, "target", False),
        )


def case_for(pair: str, seed: int = 0) -> _Case:
    """A pair's training data, held-out tensors and masks over the model's input (``digits`` or a photo pair)."""
    if pair != "digits":
        parse_pair(pair)
    return _Case(pair, seed, None)


def _config(case: _Case, mode: str, out: str, seed: int, iters: dict[str, int]) -> TADAConfig:
    if case.kind == "digits":
        config = TADAConfig(variant="tada", backbone="lenet")
        config.train.iters, config.train.batch_size = iters["digits"], 64
        config.train.eval_every = iters["digits"]
    else:
        data: dict = {"variant": "tada", "backbone": "efficientnet_lite0", "pretrained": True, "train": {}}
        if mode == "finetune":
            data["train"] = {"frozen_backbone": False, "iters": iters["finetune"], "batch_size": iters["batch"]}
            data["train"]["eval_every"] = iters["finetune"]
        config = TADAConfig.from_dict(with_photo_defaults(data))
    config.train.seed, config.train.out = seed, out
    config.train.source, config.train.target = f"{case.name}-source", f"{case.name}-target"
    return config


@torch.no_grad()
def _backbone_maps(model: TADAModel, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model.backbone(x[i : i + 32]).float() for i in range(0, len(x), 32)])


@torch.no_grad()
def score_views(model: TADAModel, checkpoint: Path, case: _Case) -> dict:
    """Every view of ``model`` on the held-out targets of ``case``, scored against the masks."""
    model.eval()
    x = case.test_x["target"]
    outs = [model(x[i : i + 32]) for i in range(0, len(x), 32)]
    views: dict[str, np.ndarray] = {}
    if outs[0].local_attention is not None:
        w = torch.cat([o.local_attention for o in outs]).numpy()
        views |= {"attention": w, "transferability": 1.0 - w}
    maps = {k: _backbone_maps(model, v) for k, v in (*case.train_x.items(), ("test_source", case.test_x["source"]))}
    f_test = _backbone_maps(model, x)
    probes = fit_region_probes(maps["source"], maps["target"], maps["test_source"], f_test)
    views["gap"] = probes.p_target(f_test)
    tensors = read_tensors(checkpoint, PREFIX)
    if tensors:
        info = read_info(checkpoint)
        localiser = Localiser.from_tensors(tensors)
        tap = recorded_tap(info.extra.get("localiser"), tap_for(model.config.backbone))
        views["shift"] = torch.cat(
            [localiser(tap_features(model.backbone, tap, x[i : i + 16])) for i in range(0, len(x), 16)]
        ).numpy()
    scored = {name: evaluate_map(grid, case.masks, VIEW_READS[name], (7, 14)) for name, grid in views.items()}
    if "attention" in views:
        scored["attention_range"] = [
            round(float(views["attention"].min()), 5),
            round(float(views["attention"].max()), 5),
        ]
    return scored


def _baselines(case: _Case, wanted: Sequence[str], seed: int) -> dict:
    started, out = time.time(), {}
    if any(b in wanted for b in ("gradcam", "gradcampp", "occlusion")):
        kind = "digits" if case.kind == "digits" else "photos"
        net, layer = B.domain_classifier(kind, case.train_x["source"], case.train_x["target"], seed=seed)
        out["domain_accuracy"] = B.domain_accuracy(net, case.test_x["source"], case.test_x["target"])
        x = case.test_x["target"]
        for method in ("gradcam", "gradcampp"):
            if method in wanted:
                cam = torch.as_tensor(B.grad_cam(net, layer, x, method))[:, None]  # (N, 1, S, S)
                out[method] = {  # the mean of the map over each cell, as the research baseline did
                    f"g{g}": evaluate_map(F.adaptive_avg_pool2d(cam, g)[:, 0].numpy(), case.masks, "high", (g,))[
                        f"g{g}"
                    ]
                    for g in (7, 14)
                }
        if "occlusion" in wanted:
            out["occlusion"] = evaluate_map(B.occlusion(net, x), case.masks)
    n = len(case.masks)
    if "centre" in wanted:
        out["centre"] = evaluate_map(B.centre_prior(n, 7), case.masks)
    if "sobel" in wanted:
        out["sobel"] = evaluate_map(B.sobel(case.pixels, 14), case.masks, "high", (7, 14))
    out["seconds"] = round(time.time() - started, 1)
    return out


def bench_localisation(
    *,
    pairs: Sequence[str] = PAIRS,
    modes: Sequence[str] = MODES,
    baselines: Sequence[str] = BASELINES,
    seed: int = 0,
    finetune_iters: int = 100,
    finetune_batch: int = 16,
    digits: int | None = None,
    digits_iters: int = 600,
    keep: str | None = None,
    threads: int = 1,
    on_result: Callable[[dict], None] | None = None,
) -> dict:
    """Train TADA on each pair in each mode, score every view and the baselines on its held-out targets.

    Args:
        pairs: ``digits`` and / or photo pairs (:data:`PHOTO_PAIRS`).
        modes: ``frozen`` and / or ``finetune`` for photo pairs (digits: always from scratch, once).
        baselines: any of :data:`BASELINES`.
        digits, digits_iters: use only the first ``digits`` MNIST digits, train ``digits_iters`` steps.
        keep: copy each run's last checkpoint and metrics to ``<keep>/<pair>-<mode>.*``.
        on_result: called with each pair's record as soon as it is done.
    """
    for name in pairs:
        if name != "digits":
            parse_pair(name)
    if unknown := [m for m in modes if m not in MODES] + [b for b in baselines if b not in BASELINES]:
        raise ConfigError(f"unknown mode or baseline {', '.join(unknown)}; modes {MODES}, baselines {BASELINES}")
    torch.set_num_threads(threads)
    started, records = time.time(), []
    for name in pairs:
        case = _Case(name, seed, digits)
        record: dict = {"pair": name, "kind": case.kind, "control": case.control, "n_test": len(case.masks)}
        record["modes"] = {}
        for mode in ("scratch",) if case.kind == "digits" else modes:
            t0 = time.time()
            with tempfile.TemporaryDirectory(prefix="tada-loc-") as out:
                iters = {"digits": digits_iters, "finetune": finetune_iters, "batch": finetune_batch}
                config = _config(case, mode, out, seed, iters)
                result = train(config, data=case.data)
                model, info = load_checkpoint(result.last)
                run = {"train_seconds": round(time.time() - t0, 1), "steps": result.steps}
                run["target_accuracy"] = result.final.get("target_accuracy")
                run["localiser_seconds"] = info.extra.get("localiser", {}).get("seconds")
                run["views"] = score_views(model, result.last, case)
                if keep:
                    Path(keep).mkdir(parents=True, exist_ok=True)
                    shutil.copy(result.last, Path(keep) / f"{name}-{mode}.safetensors")
                    shutil.copy(Path(out) / "metrics.jsonl", Path(keep) / f"{name}-{mode}.metrics.jsonl")
            run["seconds"] = round(time.time() - t0, 1)
            record["modes"][mode] = run
        record["baselines"] = _baselines(case, baselines, seed)
        records.append(record)
        if on_result is not None:
            on_result(record)
    return {
        "pairs": records,
        "goal": GOAL,
        "checks": goal_checks(records),
        "settings": {
            "seed": seed,
            "finetune_iters": finetune_iters,
            "finetune_batch": finetune_batch,
            "digits_iters": digits_iters,
        },
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}",
        "minutes": round((time.time() - started) / 60.0, 2),
    }


def goal_checks(records: Sequence[dict], view: str = "shift") -> dict[str, dict]:
    """Per pair and mode: does ``view`` meet the goal (7×7 cells)? Shift pairs: AUC, pointing and the
    lead over Grad-CAM; controls: AUC ≤ 0.70."""
    checks = {}
    for record in records:
        gradcam = record.get("baselines", {}).get("gradcam", {}).get("g7", {}).get("auc")
        for mode, run in record["modes"].items():
            got = run["views"].get(view, {}).get("g7", {})
            if not got:
                continue
            if record["control"]:
                ok = {"control_auc": got.get("auc", 0.5) <= GOAL["control_auc_max"]}
            else:
                ok = {"auc": got.get("auc", 0) >= GOAL["auc"], "pointing": got.get("pointing", 0) >= GOAL["pointing"]}
                if gradcam is not None:
                    ok["ahead_of_gradcam"] = got.get("auc", 0) >= gradcam + GOAL["ahead_of_gradcam"]
            checks[f"{record['pair']}|{mode}"] = {**ok, "met": all(ok.values())}
    return checks


def summary_lines(records: Sequence[dict]) -> list[str]:
    """A compact table: per pair and mode, AUC / pointing (7×7 cells) of each view and baseline."""
    lines = []
    for record in records:
        base = record.get("baselines", {})
        shown = [(b, base[b]["g7"]) for b in BASELINES if b in base]
        for mode, run in record["modes"].items():
            cells = [(v, run["views"][v]["g7"]) for v in ("attention", "gap", "shift") if v in run["views"]]
            text = "  ".join(
                f"{n} {m.get('auc', float('nan')):.2f}/{m.get('pointing', float('nan')):.2f}" for n, m in cells + shown
            )
            lines.append(f"{record['pair']:30s} {mode:8s} {text}")
    return lines


def measured_captions(records: Sequence[dict]) -> dict[str, str]:
    """The benchmark phrase of each view for its caption (:data:`tada_core.explain.views.MEASURED`):
    the range of its 7×7 cell ROC-AUC over the frozen localised-shift photo pairs (controls left
    out) and its AUC on the digits pair."""
    photos: dict[str, list[float]] = {}
    digits: dict[str, float] = {}
    for record in records:
        for mode, run in record["modes"].items():
            for view, grids in run["views"].items():
                auc = grids.get("g7", {}).get("auc") if isinstance(grids, dict) else None
                if auc is None:
                    continue
                if record["kind"] == "digits":
                    digits[view] = auc
                elif mode == "frozen" and not record["control"]:
                    photos.setdefault(view, []).append(auc)
    captions = {}
    for view in sorted(set(photos) | set(digits)):
        parts = []
        if view in photos:
            lo, hi = min(photos[view]), max(photos[view])
            span = f"{lo:.2f}" if round(lo, 2) == round(hi, 2) else f"{lo:.2f}–{hi:.2f}"
            parts.append(f"{span} on {len(photos[view])} planted-artefact photo pairs")
        if view in digits:
            parts.append(f"{digits[view]:.2f} on digits")
        captions[view] = "benchmark cell AUC " + ", ".join(parts)
    return captions
