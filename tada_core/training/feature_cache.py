"""Frozen-backbone training: the backbone's region features are computed once and cached.

With ``config.train.frozen_backbone`` the pretrained backbone G_f is never updated. Each image of
both domains goes through it once (the evaluation transform: resize, centre crop, in eval mode)
and its map f (C, H, W) is kept in memory (float16). The bottleneck G_b, classifier G_y, the K
region discriminators and the global discriminator then train on the cache, which is hundreds
of times cheaper per step than a backbone forward on CPU. Training batches flip the cached map
horizontally at random (an approximation of flipping the image; no random crops).

What differs from the paper (which fine-tunes G_f): the adversarial gradient never reaches the
backbone, so the region discriminators measure where the *pretrained* features differ between
domains and stay free to tell them apart; the local attention w re-weights those fixed regions,
and G_b is the adapted feature extractor that the global discriminator and L_h act on.

Example:
    >>> cached = cache_run_data(model, data)           # one backbone pass over every image
    >>> head = FrozenBackboneHead(model)
    >>> out = head(cached.source.dataset[0][0][None])  # a TADAOutput from a cached map
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tada_core.data import Domain
from tada_core.model import TADAModel, TADAOutput
from tada_core.model.inputs import norm_for
from tada_core.training.calibration import CalibrationSets, ladder_recipe
from tada_core.training.ladder import AugmentedCopies, Ladder
from tada_core.training.run_data import RunData, holdout_split


class CachedMaps(Dataset):
    """Cached backbone maps and labels; items are float32 ``(C, H, W)`` maps and ``int`` labels.

    Args:
        maps: float16 ``(N, C, H, W)``.
        labels: int64 ``(N,)``.
        flip: flip each batch's maps horizontally at random (training), drawn from the global RNG
            so that ``--resume`` replays it.
    """

    def __init__(self, maps: torch.Tensor, labels: torch.Tensor, flip: bool = False) -> None:
        self.maps, self.labels, self.flip = maps, labels.long(), flip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, int]]:
        batch = torch.stack([self.maps[i] for i in indices]).float()  # (B, C, H, W)
        if self.flip:
            flipped = torch.rand(len(indices)) < 0.5
            batch[flipped] = batch[flipped].flip(-1)
        return list(zip(batch.unbind(0), self.labels[list(indices)].tolist(), strict=True))


@torch.no_grad()
def backbone_maps(
    backbone: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``backbone`` (in eval mode) once over ``dataset``.

    Returns:
        ``(maps, labels)``: float16 (N, C, H, W) and int64 (N,).
    """
    was_training = backbone.training
    backbone.eval()
    maps, labels = [], []
    for images, targets in DataLoader(dataset, batch_size=batch_size, generator=torch.Generator()):
        maps.append(backbone(images.to(device)).half().cpu())
        labels.append(torch.as_tensor(targets))
        if on_batch is not None:
            on_batch(len(images))
    backbone.train(was_training)
    return torch.cat(maps), torch.cat(labels)


def ladder_images(model: TADAModel, data: RunData) -> int:
    """How many augmented images :func:`cache_run_data` encodes for the calibration ladder."""
    _, held_out = holdout_split(data.source_eval.labels, model.config.train.source_holdout)
    if not held_out:
        return 0
    recipe = ladder_recipe(model.config, len(held_out))
    return len(held_out) * recipe.copies * len(recipe.severities)


def cache_run_data(
    model: TADAModel,
    data: RunData,
    *,
    device: str | torch.device = "cpu",
    on_batch: Callable[[int], None] | None = None,
    memo: dict | None = None,
) -> RunData:
    """The run's four views with every image replaced by its cached backbone map.

    Source and target are each encoded once (from their evaluation views); training views flip
    at random, evaluation views do not. The calibration ladder of the accuracy estimate
    (:mod:`tada_core.training.calibration`) is encoded too: every rung of augmented held-out
    source images (``model.config.train.source_holdout`` > 0; :func:`ladder_images` of them).
    ``on_batch(n)`` is called after every n images. ``memo`` (a dict kept by the caller) reuses
    the maps of a domain, and of a source's ladder, already encoded by the same pretrained backbone
    under the same domain name (benchmarks that pair each domain with several others).
    """
    memo = {} if memo is None else memo
    encoder, _ = model.cache_parts()
    cut = model.config.train.tune_blocks

    def encode(key: tuple, dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        key = (*key, cut)
        if key not in memo:
            memo[key] = backbone_maps(encoder, dataset, device=device, on_batch=on_batch)
        return memo[key]

    def cached(eval_domain: Domain) -> tuple[Domain, Domain]:
        maps, labels = encode(("maps", eval_domain.name, len(eval_domain)), eval_domain.dataset)
        names = eval_domain.class_names
        return (
            Domain(eval_domain.name, names, CachedMaps(maps, labels, flip=True)),
            Domain(eval_domain.name, names, CachedMaps(maps, labels)),
        )

    source, source_eval = cached(data.source_eval)
    target, target_eval = cached(data.target_eval)
    ladder = None
    _, held_out = holdout_split(source_eval.labels, model.config.train.source_holdout)
    if held_out:
        recipe = ladder_recipe(model.config, len(held_out))
        norm = norm_for(model.config)
        rungs = {}
        for severity in recipe.severities:
            images = AugmentedCopies(data.source_eval.dataset, held_out, severity, recipe, norm)
            key = ("ladder", data.source_eval.name, tuple(held_out), severity, recipe)
            rungs[severity] = CachedMaps(*encode(key, images))
        ladder = Ladder(recipe, rungs)
    return RunData(source=source, target=target, source_eval=source_eval, target_eval=target_eval, ladder=ladder)


def encode_calibration_sets(
    model: TADAModel, sets: CalibrationSets, *, device: str | torch.device = "cpu"
) -> CalibrationSets:
    """``sets`` with every image (held-out, statistics sample, rungs) replaced by its backbone map,
    for :class:`FrozenBackboneHead` (a frozen checkpoint calibrated after training)."""

    encoder, _ = model.cache_parts()

    def encode(dataset: Dataset) -> CachedMaps:
        return CachedMaps(*backbone_maps(encoder, dataset, device=device))

    return CalibrationSets(
        held_out=encode(sets.held_out),
        statistics=encode(sets.statistics),
        rungs={severity: encode(rung) for severity, rung in sets.rungs.items()},
        recipe=sets.recipe,
        prior=sets.prior,
        split=sets.split,
    )


class FrozenBackboneHead(nn.Module):
    """Runs a :class:`TADAModel` from cached backbone maps (B, C, H, W) instead of images.

    ``module`` is the wrapped model (the attribute name lets :func:`tada_core.training.step.unwrap` find it).
    """

    def __init__(self, model: TADAModel) -> None:
        super().__init__()
        self.module = model

    def forward(self, maps: torch.Tensor, split: int | None = None) -> TADAOutput:
        """``maps`` (B, C, H, W); ``split`` as in :meth:`TADAModel.forward` (BatchNorm per domain)."""
        return self.module.forward_cached(maps, split=split)


@torch.no_grad()
def training_features(data: RunData, max_points: int = 512, upper: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Pooled backbone maps (N, C) float16 of up to ``max_points`` source and target images, stored
    in frozen-mode checkpoints as ``familiarity.features`` (see :mod:`tada_core.explain.familiarity`).

    ``upper``: the trained upper stages (``train.tune_blocks``) that turn the cached maps into the
    backbone's; run in eval mode, so call it with the weights being saved."""
    maps = torch.cat([d.dataset.maps for d in (data.source_eval, data.target_eval)])  # (N, C, H, W)
    picks = torch.randperm(len(maps), generator=torch.Generator().manual_seed(0))[:max_points]
    chosen = maps[picks].float()
    if upper is not None:
        was_training = upper.training
        upper.eval()
        chosen = torch.cat([upper(chosen[i : i + 64]) for i in range(0, len(chosen), 64)])
        upper.train(was_training)
    return {"familiarity.features": chosen.mean(dim=(2, 3)).half()}
