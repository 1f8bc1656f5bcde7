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

import torch
from torch import nn
from torch.utils.data import DataLoader

from tada_core.errors import DataError
from tada_core.training.step import unwrap


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _kept(model: nn.Module) -> set[int]:
    """ids of the BatchNorm layers that keep their running statistics: those of a frozen backbone."""
    core = unwrap(model)
    config = getattr(core, "config", None)
    if config is None or not config.train.frozen_backbone or not hasattr(core, "backbone"):
        return set()
    return {id(m) for m in _batchnorms(core.backbone)}


@torch.no_grad()
def with_domain_statistics(model: nn.Module, dataset, *, batch_size: int = 256) -> nn.Module:
    """A copy of ``model`` in eval mode whose BatchNorm running statistics are those of ``dataset``.

    Each layer's statistics are the plain average (``momentum=None``) of its batch statistics over
    batches of ``dataset`` drawn in a seeded random order (an explicit generator: the global RNG is
    never touched): datasets are often sorted by class, and the variance within a one-class batch
    is far below the domain's. A last batch of a single image (which BatchNorm cannot normalise)
    is left out. Only the BatchNorm buffers change; ``model`` itself is untouched. A model without
    BatchNorm is returned as a copy, unchanged. The layers of a frozen backbone keep theirs.

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
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum
    return copied.eval()
