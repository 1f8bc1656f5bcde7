"""The shift localiser's fitting loop as it was before its speed-up (2026-12-08, issue 32): the
reference that tests/test_localiser.py and scripts/profile_localiser_fit.py compare the fast loop
with. Kept verbatim (``dtype`` float64 runs the same loop in double precision, the exact fit that
float32 rounding departs from); not used by the library."""

from __future__ import annotations

import torch

from tada_core.model.localiser import Localiser
from tada_core.training.localiser_fit import FitSettings, _reset, bag_size, channel_stats, mil_loss


def _random_flip(maps: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(len(maps), generator=generator) < 0.5
    maps = maps.clone()
    maps[flip] = maps[flip].flip(-1)
    return maps


def reference_fit(
    source_maps: torch.Tensor,
    target_maps: torch.Tensor,
    settings: FitSettings | None = None,
    dtype: torch.dtype = torch.float32,
) -> Localiser:
    """The old ``fit_localiser``: standardise, clone and flip every batch, in NCHW (float32 weights
    returned whatever ``dtype`` the scorers were trained in)."""
    settings = settings or FitSettings()
    n, b = max(len(source_maps), len(target_maps)), settings.batch_size
    k = settings.top_k if settings.top_k is not None else bag_size(*source_maps.shape[-2:])
    with torch.enable_grad():
        with torch.device("meta"):
            localiser = Localiser(source_maps.shape[1], seeds=len(settings.seeds), hidden=settings.hidden)
        localiser = localiser.to_empty(device="cpu")
        mean, std = channel_stats(source_maps, target_maps)
        localiser.mean.copy_(mean)
        localiser.std.copy_(std.clamp_min(1e-6))
        standardise = localiser.standardise
        if dtype != torch.float32:
            mean, std = localiser.mean.to(dtype), localiser.std.to(dtype)
            standardise = lambda maps: (maps.to(dtype) - mean) / std  # noqa: E731
        for scorer, seed in zip(localiser.scorers, settings.seeds, strict=True):
            generator = torch.Generator().manual_seed(seed)
            _reset(scorer, generator)
            scorer.to(dtype)
            optimiser = torch.optim.Adam(scorer.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
            for _ in range(settings.epochs):
                order_s = torch.randperm(len(source_maps), generator=generator)
                order_t = torch.randperm(len(target_maps), generator=generator)
                for start in range(0, n, b):
                    step = torch.arange(start, start + b)
                    batch_s = _random_flip(standardise(source_maps[order_s[step % len(source_maps)]]), generator)
                    batch_t = _random_flip(standardise(target_maps[order_t[step % len(target_maps)]]), generator)
                    loss = mil_loss(scorer(batch_s), scorer(batch_t), k, settings.trim)
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
            scorer.float()
    return localiser.eval()
