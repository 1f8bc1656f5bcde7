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

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tada_core.data import Domain
from tada_core.model import TADAModel, TADAOutput
from tada_core.model.inputs import norm_for
from tada_core.training.calibration import CalibrationSets, calibration_holdout, ladder_recipe
from tada_core.training.ladder import AugmentedCopies, Ladder
from tada_core.training.map_store import IN_MEMORY_BYTES, MapStore, MapStoreWriter, open_store
from tada_core.training.pseudo_labels import mutual_nearest_labels
from tada_core.training.pseudo_labels import summary as pseudo_summary
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
        batch = self.maps[list(indices)].float()  # (B, C, H, W), from memory or a MapStore on disk
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
    store: Path | None = None,
    key: dict | None = None,
) -> tuple[torch.Tensor | MapStore, torch.Tensor]:
    """Run ``backbone`` (in eval mode) once over ``dataset``.

    With ``store`` (a file path) and maps larger than :data:`~tada_core.training.map_store.IN_MEMORY_BYTES`,
    they are written there (:class:`~tada_core.training.map_store.MapStore`, read a row at a time);
    a complete store already there under the same ``key`` is used without encoding anything.

    Returns:
        ``(maps, labels)``: float16 (N, C, H, W) (a tensor or a MapStore) and int64 (N,).
    """
    if store is not None and (found := open_store(store, key or {})) is not None:
        if on_batch is not None:
            on_batch(len(found))
        return found, found.labels
    was_training = backbone.training
    backbone.eval()
    maps, labels = [], []
    with ExitStack() as stack:
        writer = None
        for images, targets in DataLoader(dataset, batch_size=batch_size, generator=torch.Generator()):
            out = backbone(images.to(device)).half().cpu()
            if (
                store is not None
                and writer is None
                and not maps
                and len(dataset) * out[0].numel() * 2 > IN_MEMORY_BYTES
            ):
                writer = stack.enter_context(MapStoreWriter(store, out.shape[1:], key or {}))
            if writer is not None:
                writer.append(out, torch.as_tensor(targets))
            else:
                maps.append(out)
                labels.append(torch.as_tensor(targets))
            if on_batch is not None:
                on_batch(len(images))
    backbone.train(was_training)
    if writer is not None:
        found = writer.store()
        return found, found.labels
    return torch.cat(maps), torch.cat(labels)


def ladder_images(model: TADAModel, data: RunData) -> int:
    """How many augmented images :func:`cache_run_data` encodes for the calibration ladder."""
    tc = model.config.train
    held_out = calibration_holdout(data.source_eval.labels, tc.source_holdout, tc.eval_max)
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
    store_dir: Path | None = None,
) -> RunData:
    """The run's four views with every image replaced by its cached backbone map.

    Source and target are each encoded once (from their evaluation views); training views flip
    at random, evaluation views do not. The calibration ladder of the accuracy estimate
    (:mod:`tada_core.training.calibration`) is encoded too: every rung of augmented held-out
    source images (``model.config.train.source_holdout`` > 0; :func:`ladder_images` of them).
    ``on_batch(n)`` is called after every n images. ``memo`` (a dict kept by the caller) reuses
    the maps of a domain, and of a source's ladder, already encoded by the same pretrained backbone
    under the same domain name (benchmarks that pair each domain with several others).
    ``store_dir``: where maps too large for memory go (:mod:`tada_core.training.map_store`), and
    where a resumed run finds them again (:func:`store_key` says what must match).
    """
    memo = {} if memo is None else memo
    encoder, _ = model.cache_parts()
    cut = model.config.train.tune_blocks

    def encode(key: tuple, dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        key = (*key, cut)
        if key not in memo:
            where = described = None
            if store_dir is not None:
                described = store_key(model, key, dataset)
                name = hashlib.sha1(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]
                where = Path(store_dir) / f"{name}.f16"
            memo[key] = backbone_maps(encoder, dataset, device=device, on_batch=on_batch, store=where, key=described)
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
    tc = model.config.train  # the ladder of the held-out images a calibration uses (at most eval_max)
    held_out = calibration_holdout(source_eval.labels, tc.source_holdout, tc.eval_max)
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


def store_key(model: TADAModel, key: tuple, dataset: Dataset) -> dict:
    """What a stored cache must have been made from: the domain and view (``key``), the backbone and
    input size, and the files' names, sizes and modification times when the dataset reads files."""
    paths = _file_paths(dataset)
    files = None
    if paths is not None:
        digest = hashlib.sha1()
        for path in paths:
            stat = os.stat(path)
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        files = digest.hexdigest()
    config = model.config
    return {"view": repr(key), "backbone": config.backbone, "image_size": config.image_size, "files": files}


def _file_paths(dataset: Dataset) -> list[str] | None:
    """The image files behind ``dataset`` (through Subset / wrapper datasets), in order; None if none."""
    indices = None
    while dataset is not None:
        if hasattr(dataset, "paths"):
            paths = list(dataset.paths)
            return paths if indices is None else [paths[i] for i in indices]
        if hasattr(dataset, "indices"):
            inner = list(dataset.indices)
            indices = inner if indices is None else [inner[i] for i in indices]
        dataset = getattr(dataset, "dataset", None)
    return None


def with_pseudo_labels(model: TADAModel, data: RunData) -> RunData:
    """``data`` (cached maps) whose target training view carries pseudo-labels in place of the target's
    own labels (:mod:`tada_core.training.pseudo_labels`: mutual nearest neighbours between the
    trained-on source and the target in pooled pretrained features), with ``pseudo`` their summary.
    Unchanged when ``pseudo_weight`` is 0 or for source-only (whose loss never reads target labels)."""
    if model.config.pseudo_weight <= 0 or model.config.variant == "source_only":
        return data
    source, target = data.source_eval, data.target_eval
    trained_on, _ = holdout_split(source.labels, model.config.train.source_holdout)
    features = [pooled(model, d.dataset.maps) for d in (source, target)]
    labels = mutual_nearest_labels(features[0][trained_on], source.labels[trained_on], features[1])
    view = Domain(target.name, target.class_names, CachedMaps(target.dataset.maps, labels, flip=True))
    return replace(data, target=view, pseudo=pseudo_summary(labels, target.labels))


@torch.no_grad()
def pooled(model: TADAModel, maps: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """The pretrained backbone's pooled features (N, C) float32 from cached maps (N, C', H, W),
    through the trained upper stages (in eval mode) when ``train.tune_blocks`` cut the cache below."""
    _, upper = model.cache_parts()
    upper = upper if upper is not None else nn.Identity()
    was_training = upper.training
    upper.eval()
    out = torch.cat([upper(maps[i : i + chunk].float()).mean(dim=(2, 3)) for i in range(0, len(maps), chunk)])
    upper.train(was_training)
    return out


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
    parts = [d.dataset.maps for d in (data.source_eval, data.target_eval)]  # (N, C, H, W) each, never joined
    picks = torch.randperm(sum(map(len, parts)), generator=torch.Generator().manual_seed(0))[:max_points]
    n_source = len(parts[0])
    chosen = torch.stack([parts[0][int(i)] if i < n_source else parts[1][int(i) - n_source] for i in picks]).float()
    if upper is not None:
        was_training = upper.training
        upper.eval()
        chosen = torch.cat([upper(chosen[i : i + 64]) for i in range(0, len(chosen), 64)])
        upper.train(was_training)
    return {"familiarity.features": chosen.mean(dim=(2, 3)).half()}
