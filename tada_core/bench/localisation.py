"""Localisation benchmark: do the per-region views find where the domains really differ?

On :func:`~tada_core.bench.planted.planted_pair` (MNIST → MNIST with a checkerboard planted in
1–3 random cells of each target image) the planted cells are the ground truth. For each trained
variant, and for an untrained ``tada`` model as the floor, every view of the held-out target
images is scored against the planted-cell mask with the ROC-AUC over all cells (0.5 = chance,
1 = every planted cell ranks above every clean one):

* ``attention`` — w = 1 − H₂(d̂ᵏ), read high = planted (eq. 3: the discriminator is confident);
* ``transferability`` — H₂(d̂ᵏ), read low = planted (so its AUC is the attention's);
* ``gap`` — the region probes' P(target) (:mod:`tada_core.explain.gap`), fitted on the train parts of
  source and target, reported on the test parts; read high = planted.

Each region's features see 16×16 pixels around its 4×4 cell (LeNet's receptive field), so a
patch also shows in the 8 neighbouring regions; ``auc_without_neighbours`` leaves the clean
neighbours of planted cells out, to tell "finds the cell" from "finds its neighbourhood".
During training the attention AUC is also traced at every evaluation, to show whether w finds
the regions early and loses them as the region discriminators are fooled.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from tada_core.bench.accuracy import set_path
from tada_core.bench.planted import PlantedPair, planted_pair
from tada_core.checkpoint import load_checkpoint
from tada_core.config import TADAConfig
from tada_core.data import DIGITS_NORM, Domain
from tada_core.data.datasets import TensorImages
from tada_core.data.digits import DIGIT_CLASSES
from tada_core.data.transforms import arrays_to_tensor
from tada_core.explain.gap import fit_region_probes
from tada_core.model import TADAModel, build_model
from tada_core.training.loop import Callback, Run, train
from tada_core.training.run_data import RunData

LOCAL_VARIANTS = ("tada", "tada_local")
DIRECTIONS = {"attention": "high", "transferability": "low", "gap": "high"}


def _tensor(images: np.ndarray) -> torch.Tensor:
    return arrays_to_tensor(images, 28, DIGITS_NORM).expand(-1, 3, -1, -1).contiguous()  # (N, 3, 28, 28)


def _domain(name: str, images: np.ndarray, labels: np.ndarray) -> Domain:
    return Domain(name, list(DIGIT_CLASSES), TensorImages(_tensor(images), torch.as_tensor(labels)))


def run_data(pair: PlantedPair) -> RunData:
    """The pair as a :class:`RunData`: train on the train parts, evaluate on the test parts."""
    return RunData(
        source=_domain("mnist", pair.source_train, pair.source_labels_train),
        target=_domain("planted-mnist", pair.target_train, pair.target_labels_train),
        source_eval=_domain("mnist", pair.source_test, pair.source_labels_test),
        target_eval=_domain("planted-mnist", pair.target_test, pair.target_labels_test),
    )


def roc_auc(mask: np.ndarray, score: np.ndarray, direction: str = "high") -> float:
    """ROC-AUC of ``score`` (read ``high`` or ``low`` = positive) against a boolean ``mask`` of the same shape."""
    score = np.asarray(score, dtype=np.float64).ravel()
    return float(roc_auc_score(np.asarray(mask).ravel(), score if direction == "high" else -score))


def neighbours(mask: np.ndarray) -> np.ndarray:
    """Cells next to (8-connected) but not in ``mask``; bool (N, h, w) → bool (N, h, w)."""
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    h, w = mask.shape[1:]
    grown = np.zeros_like(mask)
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            grown |= padded[:, dr : dr + h, dc : dc + w]
    return grown & ~mask


@torch.no_grad()
def _outputs(model: TADAModel, images: torch.Tensor, batch_size: int = 500) -> tuple[np.ndarray | None, torch.Tensor]:
    """Local attention w (N, h, w) or None, and region features f (N, C, h, w), in eval mode."""
    was_training = model.training
    model.eval()
    grids, feats = [], []
    try:
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size]
            f = model.backbone(x)
            out = model(x)
            feats.append(f)
            grids.append(out.local_attention)
    finally:
        model.train(was_training)
    w = torch.cat(grids).numpy() if grids[0] is not None else None
    return w, torch.cat(feats)


def score_views(model: TADAModel, pair: PlantedPair, tensors: dict[str, torch.Tensor]) -> dict:
    """AUC of every view of ``model`` on the held-out planted targets, plus what they look like."""
    w, f_target_test = _outputs(model, tensors["target_test"])
    _, f_source_train = _outputs(model, tensors["source_train"])
    _, f_target_train = _outputs(model, tensors["target_train"])
    _, f_source_test = _outputs(model, tensors["source_test"])
    probes = fit_region_probes(f_source_train, f_target_train, f_source_test, f_target_test)
    gap = probes.p_target(f_target_test)
    mask = pair.mask_test
    keep = ~neighbours(mask)
    views = {"gap": gap}
    if w is not None:
        views |= {"attention": w, "transferability": 1.0 - w}
    return {
        "auc": {name: round(roc_auc(mask, grid, DIRECTIONS[name]), 4) for name, grid in views.items()},
        "auc_without_neighbours": {
            name: round(roc_auc(mask[keep], grid[keep], DIRECTIONS[name]), 4) for name, grid in views.items()
        },
        "mean_on_planted": {name: round(float(grid[mask].mean()), 5) for name, grid in views.items()},
        "mean_elsewhere": {name: round(float(grid[~mask].mean()), 5) for name, grid in views.items()},
        "attention_range": [round(float(w.min()), 5), round(float(w.max()), 5)] if w is not None else None,
        "pair_a_distance_mean": round(float(probes.a_distance.mean()), 4),
    }


class _AttentionTrace(Callback):
    """Records the attention AUC on the held-out planted targets at every evaluation."""

    def __init__(self, images: torch.Tensor, mask: np.ndarray) -> None:
        self.images, self.mask, self.trace = images, mask, []

    def on_eval(self, run: Run, record: dict) -> None:
        w, _ = _outputs(run.model, self.images)
        self.trace.append(
            {
                "step": run.step,
                "attention_auc": round(roc_auc(self.mask, w), 4),
                "attention_max": round(float(w.max()), 5),
                "target_accuracy": record["target_accuracy"],
            }
        )


def bench_localisation(
    *,
    variants: Sequence[str] = LOCAL_VARIANTS,
    iters: int = 600,
    batch_size: int = 64,
    seed: int = 0,
    evals: int = 6,
    threads: int = 1,
    digits: int | None = None,
    settings: dict | None = None,
) -> dict:
    """Train each variant on the planted pair, then score every view; an untrained ``tada`` is the floor.

    Args:
        variants: variants with local attention to train (``tada``, ``tada_local``).
        iters, batch_size: training budget (steps of ``batch_size`` source + target images).
        evals: how many times the attention AUC is traced during training.
        threads: torch threads.
        digits: use only the first ``digits`` MNIST digits (default all 5,000; fewer for a quick check).
        settings: config overrides by dotted key, e.g. ``{"train.optim.discriminator_lr_mult": 10}``.

    Returns:
        JSON-ready dict: the setting, and per model the AUC of each view, the views' means on
        planted and on clean cells, the target accuracy and the attention AUC during training.
    """
    torch.set_num_threads(threads)
    started = time.time()
    pair = planted_pair(seed=seed, digits=digits)
    data = run_data(pair)
    tensors = {
        "source_train": data.source.dataset.images,
        "target_train": data.target.dataset.images,
        "source_test": data.source_eval.dataset.images,
        "target_test": data.target_eval.dataset.images,
    }
    models = []
    torch.manual_seed(seed)
    floor = build_model(TADAConfig(variant="tada", backbone="lenet", num_classes=len(DIGIT_CLASSES)))
    models.append({"model": "untrained tada", "steps": 0, **score_views(floor, pair, tensors)})
    for variant in variants:
        t0 = time.time()
        trace = _AttentionTrace(tensors["target_test"], pair.mask_test)
        values: dict = {"variant": variant, "backbone": "lenet"}
        for key, value in (settings or {}).items():
            set_path(values, key, value)
        config = TADAConfig.from_dict(values)
        with tempfile.TemporaryDirectory(prefix="tada-loc-") as out:
            config.train.iters, config.train.batch_size, config.train.seed = iters, batch_size, seed
            config.train.eval_every, config.train.out = max(1, iters // max(1, evals)), out
            result = train(config, callbacks=[trace], data=data)
            model, _ = load_checkpoint(result.last)
        models.append(
            {
                "model": variant,
                "steps": result.steps,
                "target_accuracy": result.final["target_accuracy"],
                **score_views(model, pair, tensors),
                "during_training": trace.trace,
                "seconds": round(time.time() - t0, 1),
            }
        )
    return {
        "pair": "mnist → planted-mnist (checkerboard in 1–3 random cells of the 7×7 grid per target image)",
        "n_test_targets": len(pair.mask_test),
        "planted_cell_fraction": round(float(pair.mask_test.mean()), 4),
        "digits": len(pair.source_train) + len(pair.source_test) + len(pair.target_train) + len(pair.target_test),
        "iters": iters,
        "batch_size": batch_size,
        "seed": seed,
        "settings": settings or {},
        "directions": DIRECTIONS,
        "models": models,
        "minutes": round((time.time() - started) / 60.0, 2),
    }
