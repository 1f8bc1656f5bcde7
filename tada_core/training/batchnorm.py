"""A copy of a model whose BatchNorm layers normalise with the statistics of one dataset (AdaBN).

With the default recipe (``train.joint_forward=false``) source and target go through the network
in separate forwards, so every BatchNorm layer normalises each domain with its own batch
statistics while training; the running statistics used in eval mode are one moving average over
both domains. :func:`with_domain_statistics` gives the model as training saw a domain: each
layer's statistics re-estimated on that domain's images (Li et al., 2016). The analysis views
(:mod:`tada_core.explain.domain_stats`) and the accuracy estimate
(:mod:`tada_core.training.calibration`) use it.

A frozen backbone (``train.frozen_backbone``) never normalised a training batch: every image was
encoded once with its pretrained running statistics. Its BatchNorm layers keep them; only the
layers behind it (the bottleneck's, the discriminators'), which did see each domain alone, are
re-estimated.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from tada_core.errors import DataError
from tada_core.training.step import unwrap


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _kept(model: nn.Module) -> set[int]:
    """ids of the BatchNorm layers that keep their running statistics: those of a frozen backbone
    (less its trained upper stages, ``train.tune_blocks``)."""
    core = unwrap(model)
    config = getattr(core, "config", None)
    if config is None or not config.train.frozen_backbone or not hasattr(core, "backbone"):
        return set()
    _, upper = core.cache_parts()
    trained = {id(m) for m in _batchnorms(upper)} if upper is not None else set()
    return {id(m) for m in _batchnorms(core.backbone)} - trained


@torch.no_grad()
def with_domain_statistics(
    model: nn.Module, dataset, *, batch_size: int = 256, on_batch: Callable[[int], None] | None = None
) -> nn.Module:
    """A copy of ``model`` in eval mode whose BatchNorm running statistics are those of ``dataset``.

    Each layer's statistics are the plain average (``momentum=None``) of its batch statistics over
    batches of ``dataset`` drawn in a seeded random order (an explicit generator: the global RNG is
    never touched): datasets are often sorted by class, and the variance within a one-class batch
    is far below the domain's. A last batch of a single image (which BatchNorm cannot normalise)
    is left out. Only the BatchNorm buffers change; ``model`` itself is untouched. A model without
    BatchNorm is returned as a copy, unchanged. The layers of a frozen backbone keep theirs.
    ``on_batch(n)`` is called after every batch of n images.

    ``model`` may be a :class:`~tada_core.model.TADAModel` on images or a wrapper of it
    (:class:`~tada_core.training.feature_cache.FrozenBackboneHead` on cached maps).

    Raises:
        DataError: ``dataset`` has fewer than 2 images (no statistics to estimate).
    """
    if len(dataset) < 2:
        raise DataError(f"per-domain BatchNorm statistics need at least 2 images, got {len(dataset)}")
    copied = copy.deepcopy(model)
    kept = _kept(copied)
    layers = [layer for layer in _batchnorms(copied) if id(layer) not in kept]
    copied.eval()
    if not layers:
        return copied
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
        layer.train()
    device = next(copied.parameters()).device
    order = torch.Generator().manual_seed(0)
    single_left = len(dataset) % batch_size == 1
    for images, _ in DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=order, drop_last=single_left):
        copied(images.to(device))
        if on_batch is not None:
            on_batch(len(images))
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum
    return copied.eval()


@torch.no_grad()
def blend_statistics(adapted: nn.Module, model: nn.Module, weight: float) -> nn.Module:
    """``adapted`` (a :func:`with_domain_statistics` copy of ``model``) with each re-estimated
    BatchNorm layer's statistics mixed with ``model``'s running ones, in place: the moments of the
    mixture ``weight``·adapted + (1 − ``weight``)·running,

        μ = a·μ₁ + (1 − a)·μ₂        σ² = a·σ₁² + (1 − a)·σ₂² + a·(1 − a)·(μ₁ − μ₂)²

    (per layer, an approximation: deeper layers were estimated behind the adapted ones). Used where
    the dataset stands for only part of what the statistics should describe (a target lacking some
    of the source's classes, :mod:`tada_core.training.label_shift`).
    """
    kept = _kept(adapted)
    for layer, running in zip(_batchnorms(adapted), _batchnorms(model), strict=True):
        if id(layer) in kept or layer.running_mean is None or running.running_mean is None:
            continue
        mean, var = layer.running_mean.clone(), layer.running_var.clone()
        other_mean, other_var = running.running_mean, running.running_var
        layer.running_mean.copy_(weight * mean + (1 - weight) * other_mean)
        layer.running_var.copy_(
            weight * var + (1 - weight) * other_var + weight * (1 - weight) * (mean - other_mean) ** 2
        )
    return adapted
