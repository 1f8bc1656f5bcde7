"""Domain gap per region: K linear probes fitted after training on the frozen region features fᵏ.

Once TADA's region discriminators are fooled, w = 1 − H₂(d̂ᵏ) is ≈ 0 everywhere and says little.
The domain-gap view asks the frozen model a fresh question instead: for every region k, can a
linear probe fitted now on fᵏ tell a source image from a target image? One logistic regression
per region (K of them, batched as one (K, N, C) tensor op, no Python loop over regions) is fitted
on one half of a source and a target sample and scored on the other half. Its balanced held-out
error ε_k gives a per-region proxy A-distance (Ben-David et al., 2007)

    d_A(k) = 2 (1 − 2 ε_k), clipped to [0, 2]:  0 = indistinguishable, 2 = always separable,

and, per image, the probes' P(target) per region: where this image looks like the target domain.
Probe labels: target = 1, source = 0 (so the per-image view reads "P(target)").

Example:
    >>> probes = pair_gap(model, source_domain, target_domain, max_points=500)
    >>> probes.a_distance.shape                         # (H, W), values in [0, 2]
    (7, 7)
    >>> probes.p_target(model.backbone(x)).shape         # (B, H, W), values in [0, 1]
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from tada_core.errors import TadaError
from tada_core.explain.domain_stats import with_domain_statistics
from tada_core.explain.features import subset_indices

if TYPE_CHECKING:
    from tada_core.data import Domain
    from tada_core.model import TADAModel


_FIT_LOCK = threading.Lock()  # concurrent first requests for one checkpoint fit its probes once


class GapError(TadaError):
    """The domain-gap view cannot be computed (its domain pair is not available here)."""


@dataclass
class RegionProbes:
    """K fitted linear probes, one per region, and how well they separate the domains.

    Attributes:
        mean, std: (K, C) standardisation of each region's features (statistics of the fit half).
        weight: (K, C) and bias: (K,) of the logistic regressions; logit > 0 means target.
        error: (H, W) balanced held-out error ε_k (mean of the source and the target error).
        a_distance: (H, W) proxy A-distance 2(1 − 2ε_k) clipped to [0, 2].
        n_fit, n_eval: images per domain in the fit and in the evaluation half.
    """

    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    error: np.ndarray
    a_distance: np.ndarray
    n_fit: int
    n_eval: int

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Probe logits (B, H, W) (> 0: target) for region features (B, C, H, W)."""
        b, _, h, w = features.shape
        x = (_regions(features.float().cpu()) - self.mean[:, None]) / self.std[:, None]  # (K, B, C)
        return (torch.einsum("kbc,kc->kb", x, self.weight) + self.bias[:, None]).T.reshape(b, h, w)

    def p_target(self, features: torch.Tensor) -> np.ndarray:
        """P(target) per region, (B, H, W) float32 in [0, 1], for region features (B, C, H, W)."""
        return torch.sigmoid(self.logits(features)).numpy().astype(np.float32)

    def to_dict(self) -> dict:
        """JSON-ready summary: the A-distance and error maps and the sample sizes."""
        return {
            "a_distance": np.round(self.a_distance, 4).tolist(),
            "a_distance_mean": round(float(self.a_distance.mean()), 4),
            "error": np.round(self.error, 4).tolist(),
            "n_fit": self.n_fit,
            "n_eval": self.n_eval,
        }


def _regions(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (K, B, C) with K = H·W, regions in row-major order."""
    return features.flatten(2).permute(2, 0, 1)


def proxy_a_distance(error: np.ndarray | float) -> np.ndarray:
    """d_A = 2(1 − 2ε) clipped to [0, 2] (a probe worse than chance counts as no gap)."""
    return np.clip(2.0 * (1.0 - 2.0 * np.asarray(error, dtype=np.float64)), 0.0, 2.0)


def fit_region_probes(
    fit_source: torch.Tensor,
    fit_target: torch.Tensor,
    eval_source: torch.Tensor,
    eval_target: torch.Tensor,
    *,
    l2: float = 1e-2,
    max_iter: int = 50,
) -> RegionProbes:
    """Fit one L2-regularised logistic regression per region on the fit half, score it on the other.

    All K regressions are one batched problem: their losses are independent, so minimising the
    sum with L-BFGS fits each of them. Features are standardised per region and channel with the
    fit half's statistics.

    Args:
        fit_source, fit_target: (N_s, C, H, W) and (N_t, C, H, W) region features to fit on.
        eval_source, eval_target: held-out features of the same shape, for the error.
        l2: weight of the L2 penalty on the weights (per region, on standardised features).
        max_iter: L-BFGS iterations.

    Returns:
        The fitted :class:`RegionProbes` with the held-out error and A-distance maps (H, W).
    """
    height, width = fit_source.shape[2:]
    x = torch.cat([_regions(fit_source), _regions(fit_target)], dim=1).double()  # (K, N, C)
    y = torch.cat([torch.zeros(len(fit_source)), torch.ones(len(fit_target))]).double()  # target = 1
    balance = torch.where(y == 1, len(y) / (2.0 * len(fit_target)), len(y) / (2.0 * len(fit_source)))
    mean, std = x.mean(dim=1), x.std(dim=1).clamp_min(1e-6)  # (K, C)
    x = (x - mean[:, None]) / std[:, None]
    k, _, c = x.shape
    weight = torch.zeros(k, c, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = torch.einsum("knc,kc->kn", x, weight) + bias[:, None]  # (K, N)
        per_region = (F.binary_cross_entropy_with_logits(logits, y.expand(k, -1), reduction="none") * balance).mean(1)
        loss = per_region.sum() + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    probes = RegionProbes(
        mean=mean.float(),
        std=std.float(),
        weight=weight.detach().float(),
        bias=bias.detach().float(),
        error=np.zeros((height, width)),
        a_distance=np.zeros((height, width)),
        n_fit=min(len(fit_source), len(fit_target)),
        n_eval=min(len(eval_source), len(eval_target)),
    )
    wrong_source = (probes.logits(eval_source) > 0).float().mean(0)  # (H, W) source called target
    wrong_target = (probes.logits(eval_target) <= 0).float().mean(0)
    probes.error = (0.5 * (wrong_source + wrong_target)).numpy().astype(np.float64)
    probes.a_distance = proxy_a_distance(probes.error)
    return probes


@torch.no_grad()
def region_features(
    model: TADAModel, domain: Domain, indices: np.ndarray, batch_size: int = 256, domain_statistics: bool = False
) -> torch.Tensor:
    """The backbone's frozen region features f, (N, C, H, W) float32 on the CPU, in eval mode.

    ``domain_statistics``: BatchNorm statistics of these images instead of the running ones
    (:mod:`tada_core.explain.domain_stats`).
    """
    sample = Subset(domain.dataset, indices.tolist())
    if domain_statistics:
        model = with_domain_statistics(model, sample, batch_size=batch_size)
    loader = DataLoader(sample, batch_size=batch_size, shuffle=False)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model.backbone(x.to(device)).float().cpu() for x, _ in loader])
    finally:
        model.train(was_training)


def pair_gap(
    model: TADAModel,
    source: Domain,
    target: Domain,
    *,
    max_points: int = 500,
    seed: int = 0,
    domain_statistics: bool = False,
) -> RegionProbes:
    """Fit the region probes of ``model`` for a domain pair on a seeded sample of each domain.

    ``max_points`` images per domain (all when fewer) are drawn with ``seed`` and split in two
    halves: the probes are fitted on the first and their A-distance is measured on the second.
    ``domain_statistics``: each domain's sample normalised with its own BatchNorm statistics.
    """
    halves = []
    for domain in (source, target):
        indices = np.random.default_rng(seed).permutation(subset_indices(len(domain), max_points, seed))
        if len(indices) < 4:
            raise GapError(f"domain {domain.name!r} has {len(indices)} images; the domain gap needs at least 4")
        features = region_features(model, domain, indices, domain_statistics=domain_statistics)
        halves.append((features[: len(features) // 2], features[len(features) // 2 :]))
    (fit_s, eval_s), (fit_t, eval_t) = halves
    return fit_region_probes(fit_s, fit_t, eval_s, eval_t)


def checkpoint_gap(
    path: str | Path, *, data_root: str | None = None, max_points: int = 500, seed: int = 0
) -> RegionProbes:
    """The region probes of a checkpoint for its own domain pair (``CheckpointInfo.source/target``).

    Fitted once per (file, modification time, pair, sample) and cached in-process (8 entries), so
    later requests for the same checkpoint cost only a forward pass.

    Raises:
        GapError: the checkpoint does not name its domains, or they cannot be loaded here.
    """
    stat = Path(path).stat()
    with _FIT_LOCK:
        return _checkpoint_gap(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size, data_root, max_points, seed)


@functools.lru_cache(maxsize=8)
def _checkpoint_gap(
    path: str, mtime_ns: int, size: int, data_root: str | None, max_points: int, seed: int
) -> RegionProbes:
    from tada_core.checkpoint import load_checkpoint
    from tada_core.data import load_domain
    from tada_core.model.inputs import image_size_for, norm_for

    model, info = load_checkpoint(path)
    if not info.source or not info.target:
        raise GapError(f"{Path(path).name} does not record its source and target domains; the gap view needs them")
    kwargs = {"image_size": image_size_for(info.config), "norm": norm_for(info.config), "train": False}
    try:
        source = load_domain(info.source, data_root=data_root, **kwargs)
        target = load_domain(info.target, data_root=data_root, **kwargs)
    except TadaError as err:
        raise GapError(
            f"the domain-gap view of {Path(path).name} needs its domains {info.source!r} → {info.target!r}, "
            f"which cannot be loaded here ({err}); choose the attention or transferability view"
        ) from None
    return pair_gap(model, source, target, max_points=max_points, seed=seed)
