"""Fitting the shift localiser (:mod:`tada_core.model.localiser`) on a model's frozen tap maps.

Multiple-instance learning, with no location labels: every source image is a *negative bag* and
every one of its positions a negative instance; every target image is a *positive bag*, scored by
the mean of its k largest position logits (top-k mean, Tₖ). For a batch of source maps xₛ and
target maps xₜ, with z the scorer's logit map and BCE(z, y) = −y log σ(z) − (1 − y) log(1 − σ(z)):

    L = BCE(Tₖ(z(xₜ)), 1) + BCE(Tₖ(z(xₛ)), 0) + mean_p BCE(z_p(xₛ), 0)

k covers a fixed share of the image, 1/196 of the map's positions (a 16 × 16-px area of a 224-px
image), and at least 3: k = 16 on a 56 × 56 photo map, 3 on LeNet's 14 × 14. A bag of 16 rather
than 3 lets a mark's whole extent, not only its brightest corner, carry the target label
(docs/RESULTS.md "Localiser variants": +0.01 to +0.03 AUC on every photo pair).

So a position can score high only if nothing like it occurs anywhere in the source: an artefact
that is as frequent in both domains cannot be used (its source positions are negatives), and a
global change is spread over every position, so no region stands out. Adam (lr 1e-3, weight
decay 1e-4), 15 epochs of 16 + 16 maps, random horizontal flips; 3 seeds averaged (one seed varies
by ±0.08 AUC). Features are standardised per channel with the mean and std over all positions of
all source and target maps.

Each domain's sample is capped at ``max_images`` (500): the source drawn in proportion to its
classes, the target uniformly (:func:`fit_for_backbone`). The loop runs on the CPU with the caller's
``torch.get_num_threads()`` (the app: one). A step is 16 + 16 maps through one 3×3 convolution
forward and back, which is most of its time; the maps are standardised once up front and read
channels_last (scripts/profile_localiser_fit.py, docs/bench/localiser_fit_speed.json: 0.37 → 0.25 s
a step on Lite0's maps, one thread, 0.29 s when they are standardised batch by batch; the logits
within float32 rounding of the loop before, and nearer its float64 run).

Example:
    >>> localiser = fit_localiser(source_maps, target_maps)         # (N, C, h, w) each
    >>> localiser(target_maps[:4]).shape                           # logits, high = differs
    torch.Size([4, h, w])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from tada_core.model.localiser import HIDDEN, Localiser, Tap, tap_features, tap_for

MAX_IMAGES = 500  # per domain: the MIL fit gains little beyond a few hundred bags
# Both domains' maps are standardised once up front (float32) when that takes at most this many bytes
# (Lite0's 160 + 160 maps of 120 × 56 × 56: 482 MB); larger fits standardise each batch as it is drawn.
STANDARDISED_BYTES = 2**30
CL = torch.channels_last  # the maps' layout: the CPU convolution reads it fastest (0.24 s against 0.32)
BAG_AREA, MIN_BAG = 196, 3  # the top-k bag covers 1/196 of a map's positions, at least 3


@dataclass(frozen=True)
class FitSettings:
    """The localiser's fitting recipe (the defaults are the measured one, docs/RESULTS.md)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 15
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    top_k: int | None = None  # None: bag_size(h, w) of the maps fitted on
    max_images: int = MAX_IMAGES
    hidden: int = HIDDEN  # channels of each scorer's 3x3 convolution
    trim: float = 0.0  # share of target bags left out of the loss, the worst-explained (0: none)

    def to_dict(self) -> dict:
        k = self.top_k if self.top_k is not None else f"h*w/{BAG_AREA}, at least {MIN_BAG}"
        out = {"seeds": list(self.seeds), "epochs": self.epochs, "batch_size": self.batch_size, "top_k": k}
        return out | {
            name: getattr(self, name) for name in ("hidden", "trim") if getattr(self, name) != _DEFAULTS[name]
        }


_DEFAULTS = {"hidden": HIDDEN, "trim": 0.0}  # recorded by to_dict only when changed (research options)


def bag_size(h: int, w: int) -> int:
    """k of the top-k bag score on an h × w map: 1/196 of its positions, at least 3."""
    return max(MIN_BAG, round(h * w / BAG_AREA))


def top_k_mean(logits: torch.Tensor, k: int) -> torch.Tensor:
    """T_k: the mean of the k largest position logits of each image, (B, h, w) → (B,)."""
    flat = logits.flatten(1)
    return flat.topk(min(k, flat.shape[1]), dim=1).values.mean(1)


def mil_loss(source_logits: torch.Tensor, target_logits: torch.Tensor, k: int = 3, trim: float = 0.0) -> torch.Tensor:
    """BCE(T_k(z(xₜ)), 1) + BCE(T_k(z(xₛ)), 0) + mean BCE(z(xₛ), 0) for logit maps (B, h, w).

    ``trim`` > 0 leaves out that share of the target bags with the largest loss (those whose mark
    the scorer cannot see) from the first term."""
    ones, zeros = torch.ones(len(target_logits)), torch.zeros(len(source_logits))
    per_bag = F.binary_cross_entropy_with_logits(top_k_mean(target_logits, k), ones, reduction="none")
    if trim > 0:
        per_bag = per_bag.sort().values[: max(1, round(len(per_bag) * (1 - trim)))]
    bags = per_bag.mean()
    bags = bags + F.binary_cross_entropy_with_logits(top_k_mean(source_logits, k), zeros)
    return bags + F.binary_cross_entropy_with_logits(source_logits, torch.zeros_like(source_logits))


class _Batches:
    """One domain's tap maps served as standardised float32 batches in channels_last layout (the one
    the CPU convolution reads fastest), each map flipped horizontally with probability 1/2.

    With ``once`` the maps are standardised once up front (4 bytes a value); otherwise each batch is
    standardised as it is drawn from the float16 maps (fastest when they are stored channels_last,
    as :func:`encode_taps` stores them). Either way a batch holds exactly the values
    ``(maps[index].float() − mean) / std`` of the per-batch loop it replaces.
    """

    def __init__(self, maps: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, *, once: bool) -> None:
        self.maps, self.mean, self.std = maps, mean, std
        self.ready: torch.Tensor | None = None
        if once:
            self.ready = torch.empty(maps.shape, dtype=torch.float32, memory_format=CL)
            for i in range(0, len(maps), 64):
                self._standardise(maps[i : i + 64], self.ready[i : i + 64])

    def __len__(self) -> int:
        return len(self.maps)

    def _standardise(self, maps: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        if out is None:
            out = torch.empty(maps.shape, dtype=torch.float32, memory_format=CL)
        out.copy_(maps)
        return out.sub_(self.mean).div_(self.std)

    def batch(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The maps at ``index`` (a fresh tensor), standardised, flipped where one draw < 1/2."""
        maps = self.ready[index] if self.ready is not None else self._standardise(self.maps[index])
        flip = torch.rand(len(maps), generator=generator) < 0.5
        if flip.any():
            maps[flip] = maps[flip].flip(-1)
        return maps


def fit_localiser(
    source_maps: torch.Tensor,
    target_maps: torch.Tensor,
    settings: FitSettings = FitSettings(),
    on_epoch: Callable[[int, int], None] | None = None,
) -> Localiser:
    """Fit a :class:`Localiser` on tap maps of source (N_s, C, h, w) and target (N_t, C, h, w) images.

    ``on_epoch(done, total)`` is called after every epoch of every seed. Each seed draws from its own
    ``torch.Generator``: the process-wide RNG is neither read nor changed, so a fit on one thread
    cannot disturb another (the same stream as ``torch.manual_seed(seed)`` on the global one).
    """
    n, b = max(len(source_maps), len(target_maps)), settings.batch_size
    k = settings.top_k if settings.top_k is not None else bag_size(*source_maps.shape[-2:])
    total, done = len(settings.seeds) * settings.epochs, 0
    with torch.enable_grad():
        with torch.device("meta"):  # built without drawing initial weights from the global RNG
            localiser = Localiser(source_maps.shape[1], seeds=len(settings.seeds), hidden=settings.hidden)
        localiser = localiser.to_empty(device="cpu")
        mean, std = channel_stats(source_maps, target_maps)
        localiser.mean.copy_(mean)
        localiser.std.copy_(std.clamp_min(1e-6))
        once = 4 * (source_maps.numel() + target_maps.numel()) <= STANDARDISED_BYTES
        source = _Batches(source_maps, localiser.mean, localiser.std, once=once)
        target = _Batches(target_maps, localiser.mean, localiser.std, once=once)
        for scorer, seed in zip(localiser.scorers, settings.seeds, strict=True):
            generator = torch.Generator().manual_seed(seed)
            _reset(scorer, generator)
            optimiser = torch.optim.Adam(scorer.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
            for _ in range(settings.epochs):
                order_s = torch.randperm(len(source), generator=generator)
                order_t = torch.randperm(len(target), generator=generator)
                for start in range(0, n, b):
                    step = torch.arange(start, start + b)
                    batch_s = source.batch(order_s[step % len(source)], generator)
                    batch_t = target.batch(order_t[step % len(target)], generator)
                    loss = mil_loss(scorer(batch_s), scorer(batch_t), k, settings.trim)  # batches (b, C, h, w)
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                done += 1
                if on_epoch is not None:
                    on_epoch(done, total)
    return localiser.eval()


@torch.no_grad()
def channel_stats(*maps: torch.Tensor, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (unbiased) std, each (1, C, 1, 1), over every position of every map of
    ``maps`` (N, C, h, w), accumulated in float64 a chunk of images at a time."""
    count, total = 0, torch.zeros(maps[0].shape[1], dtype=torch.float64)
    for part in (m[i : i + chunk].double() for m in maps for i in range(0, len(m), chunk)):
        count, total = count + part[:, 0].numel(), total + part.sum(dim=(0, 2, 3))
    mean = total / count
    squares = torch.zeros_like(total)
    for part in (m[i : i + chunk].double() for m in maps for i in range(0, len(m), chunk)):
        squares += ((part - mean[None, :, None, None]) ** 2).sum(dim=(0, 2, 3))
    std = (squares / (count - 1)).sqrt()
    return mean.float()[None, :, None, None], std.float()[None, :, None, None]


@torch.no_grad()
def _reset(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Conv2d initialisation (``reset_parameters``), drawn from ``generator``."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            if layer.bias is not None:
                bound = 1.0 / math.sqrt(layer.weight[0].numel())
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def sample_indices(n: int, max_images: int, seed: int = 0) -> list[int]:
    """Up to ``max_images`` of ``n`` indices, drawn with ``seed``, sorted (all of them when fewer)."""
    if n <= max_images:
        return list(range(n))
    return sorted(torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_images].tolist())


def stratified_indices(labels: torch.Tensor, max_images: int, seed: int = 0) -> list[int]:
    """Up to ``max_images`` indices of images with ``labels`` (N,), every class in proportion to its
    share, drawn with ``seed``, sorted; all of them when there are no more than ``max_images``.

    Class c of n_c images gets ⌊max_images · n_c / N⌋ places, and the places left over go to the
    classes with the largest remainders (the first classes on a tie), each drawn uniformly within
    its class. With any label −1 (an unlabelled domain) it is :func:`sample_indices`.
    """
    n = len(labels)
    if n <= max_images or bool((labels < 0).any()):
        return sample_indices(n, max_images, seed)
    generator = torch.Generator().manual_seed(seed)
    classes, counts = labels.unique(return_counts=True)
    shares = counts.double() * max_images / n
    places = shares.floor().long()
    left_over = max_images - int(places.sum())
    places[torch.sort(places.double() - shares, stable=True).indices[:left_over]] += 1
    picked = []
    for label, k in zip(classes.tolist(), places.tolist(), strict=True):
        members = (labels == label).nonzero().flatten()
        picked += members[torch.randperm(len(members), generator=generator)[:k]].tolist()
    return sorted(picked)


def known_labels(dataset: Dataset) -> torch.Tensor | None:
    """The labels (N,) a dataset (or a ``Subset`` of one) keeps beside its images, without reading an
    image; None when it keeps none."""
    labels = getattr(dataset, "labels", None)
    if labels is not None:
        return torch.as_tensor(labels, dtype=torch.long)
    if isinstance(dataset, Subset):
        inner = known_labels(dataset.dataset)
        return None if inner is None else inner[torch.as_tensor(dataset.indices, dtype=torch.long)]
    return None


@torch.no_grad()
def encode_taps(
    backbone: nn.Module,
    tap: Tap,
    dataset: Dataset,
    *,
    batch_size: int = 8,  # maps of the 2× input: 8 images keep the peak near a gigabyte
    device: str | torch.device = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Tap maps of every image of ``dataset`` (eval mode), float16 (N, C, h, w) on the CPU, stored
    channels_last (the layout :func:`fit_localiser` reads its batches in)."""
    was_training = backbone.training
    backbone.eval()
    maps = []
    try:
        for images, _ in DataLoader(dataset, batch_size=batch_size, generator=torch.Generator()):
            maps.append(tap_features(backbone, tap, images.to(device)).half().cpu().contiguous(memory_format=CL))
            if on_batch is not None:
                on_batch(len(images))
    finally:
        backbone.train(was_training)
    return torch.cat(maps)


def fit_for_backbone(
    backbone: nn.Module,
    backbone_name: str,
    source: Dataset,
    target: Dataset,
    *,
    settings: FitSettings = FitSettings(),
    device: str | torch.device = "cpu",
    on_batch: Callable[[int], None] | None = None,
    on_epoch: Callable[[int, int], None] | None = None,
) -> Localiser:
    """Encode up to ``settings.max_images`` images of each domain at the backbone's tap, then fit.

    A domain with more images is sampled: the source stratified by its class labels
    (:func:`stratified_indices`, when the dataset keeps them), the target uniformly (it is
    unlabelled in general); a domain within the cap is read whole, in order.
    ``on_batch(n)`` after every n images encoded, ``on_epoch(done, total)`` after every epoch. The
    localiser's ``fitted_on`` says how many images of each domain it read."""
    tap = tap_for(backbone_name)
    labels = known_labels(source)
    samples = (
        sample_indices(len(source), settings.max_images)
        if labels is None
        else stratified_indices(labels, settings.max_images),
        sample_indices(len(target), settings.max_images),
    )
    maps = [
        encode_taps(backbone, tap, Subset(d, sample), device=device, on_batch=on_batch)
        for d, sample in zip((source, target), samples, strict=True)
    ]
    localiser = fit_localiser(*maps, settings, on_epoch)
    localiser.fitted_on = (len(maps[0]), len(maps[1]))
    return localiser
