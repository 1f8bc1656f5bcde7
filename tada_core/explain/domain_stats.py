"""BatchNorm statistics per domain, as the model saw each domain in training.

With the default recipe (``train.joint_forward=false``) source and target go through the network
in separate forwards, so every BatchNorm layer normalises each domain with its own batch
statistics while training: the adversarial game aligns features *after* that per-domain
normalisation. Its running statistics, used in eval mode, are one moving average over both
domains. Features computed with them are not the features the discriminators saw: on the shipped
mnist → mnistm models the bottleneck's proxy A-distance is 1.83 (TADA) with the running statistics
and 0.00 with each domain's own (docs/RESULTS.md). The analysis views (t-SNE, A-distance, the domain
gap per region) therefore re-estimate the statistics on each domain's sample (AdaBN, Li et al.
2016), on a copy of the model, when the checkpoint was trained that way.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.data import DataLoader

from tada_core.config import TADAConfig
from tada_core.errors import DataError

STATISTICS = ("auto", "running", "domain")


def trained_per_domain(config: TADAConfig) -> bool:
    """True when training normalised each domain with its own BatchNorm statistics.

    That is the case with separate forwards (``train.joint_forward=false``) unless the backbone
    was frozen (its BatchNorm layers then never saw a training batch; the heads behind it have none).
    """
    return not config.train.joint_forward and not config.train.frozen_backbone


def resolve(statistics: str, config: TADAConfig) -> str:
    """``"running"`` or ``"domain"`` for a requested ``"auto" | "running" | "domain"``."""
    if statistics not in STATISTICS:
        raise ValueError(f"BatchNorm statistics must be one of {', '.join(STATISTICS)}, got {statistics!r}")
    if statistics == "auto":
        return "domain" if trained_per_domain(config) else "running"
    return statistics


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def with_domain_statistics(model: nn.Module, dataset, *, batch_size: int = 256) -> nn.Module:
    """A copy of ``model`` in eval mode whose BatchNorm running statistics are those of ``dataset``.

    Each layer's statistics are the plain average (``momentum=None``) of its batch statistics over
    batches of ``dataset`` drawn in a seeded random order: datasets are often sorted by class, and
    the variance within a one-class batch is far below the domain's. A last batch of a single image
    (which BatchNorm cannot normalise) is left out. Only the BatchNorm buffers change; ``model``
    itself is untouched. A model without BatchNorm is returned as a copy, unchanged.

    Raises:
        DataError: ``dataset`` has fewer than 2 images (no statistics to estimate).
    """
    if len(dataset) < 2:
        raise DataError(f"per-domain BatchNorm statistics need at least 2 images, got {len(dataset)}")
    copied = copy.deepcopy(model)
    layers = _batchnorms(copied)
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
