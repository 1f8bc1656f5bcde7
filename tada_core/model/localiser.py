"""The shift localiser: one small convolutional scorer shared by every position of a fine feature map.

"Where does this target image differ from the source?" is asked of the backbone's first stride-8
stage (its *tap*), a map fine enough to outline a 40×15-pixel mark:

    backbone            tap                    + context      input         map at 224 / 28 px
    efficientnet_lite0  ``net.blocks.2``        ``net.blocks.3``  upsampled 2×  120 × 56 × 56  (cell = 4 px)
    resnet18 … 101      ``layers.1`` (layer2)   –               upsampled 2×  C × 56 × 56
    lenet               ``features.3``          –               as it is      32 × 14 × 14  (cell = 2 px)

Photo backbones run on the image upsampled 2× (bilinear), so every position sees a 4-px step and a
receptive field half as large relative to the artefact (docs/RESULTS.md: +0.03 to +0.12 AUC). On
Lite0 the next, stride-16 stage is resized to the tap's positions and appended (its *context*): a
position then also sees what surrounds it, which lifts the faint marks (dust +0.13 AUC, docs/RESULTS.md
"Localiser variants"); the ResNets' context is not measured, so they keep the plain tap.

The scorer s is Conv3×3(C→64) → ReLU → Conv1×1(64→1), applied to the tap map standardised per
channel, f̃ = (f − μ) / σ; it gives a logit zₚ per position p, high where the target differs. A
:class:`Localiser` averages the logits of several scorers fitted with different seeds
(:mod:`tada_core.training.localiser_fit`):

    z(x) = (1/S) Σₛ sₛ((f(x) − μ) / σ)        (B, h, w)

Example:
    >>> tap = tap_for("lenet")
    >>> maps = tap_features(build_backbone("lenet"), tap, torch.zeros(2, 3, 28, 28))
    >>> maps.shape
    torch.Size([2, 32, 14, 14])
    >>> Localiser(32, seeds=3)(maps).shape
    torch.Size([2, 14, 14])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tada_core.errors import TadaError

PREFIX = "localiser."
FITTED_ON = "fitted_on"  # the (source, target) image counts of the fit, beside the weights
HIDDEN = 64


class LocaliserError(TadaError):
    """The shift localiser cannot be built for this backbone, or its stored tensors are damaged."""


@dataclass(frozen=True)
class Tap:
    """Where the localiser reads the backbone: a sub-module's output on the input upsampled
    ``upsample``×, and optionally a later, coarser ``context`` module's output resized (bilinear) to
    the same positions and appended to its channels."""

    module: str
    upsample: int
    context: str | None = None

    def to_dict(self) -> dict:
        return {"module": self.module, "upsample": self.upsample} | ({"context": self.context} if self.context else {})

    @classmethod
    def from_dict(cls, data: dict) -> Tap:
        """The inverse of :meth:`to_dict`; LocaliserError when ``data`` is not one."""
        try:
            return cls(str(data["module"]), int(data["upsample"]), data.get("context") or None)
        except (KeyError, TypeError, ValueError):
            raise LocaliserError(f"the stored tap {data!r} is not a tap (module, upsample[, context])") from None


_TAPS = {
    "lenet": Tap("features.3", 1),
    "efficientnet_lite0": Tap("net.blocks.2", 2, "net.blocks.3"),
    **{name: Tap("layers.1", 2) for name in ("resnet18", "resnet34", "resnet50", "resnet101")},
}


def tap_for(backbone: str) -> Tap:
    """The :class:`Tap` of a backbone name; LocaliserError for one without a stride-8 stage known here.

    A stored localiser carries the tap it was fitted on in the checkpoint's metadata
    (:meth:`Tap.from_dict`), so one fitted on an older tap (Lite0's without a context, before
    2026-12-05) still loads and is read on that tap.
    """
    try:
        return _TAPS[backbone]
    except KeyError:
        raise LocaliserError(f"no shift localiser is defined for the backbone {backbone!r}") from None


class _Captured(Exception):
    """Raised by the tap's hook to stop the forward pass once the tap map is captured."""


def tap_features(backbone: nn.Module, tap: Tap, x: torch.Tensor) -> torch.Tensor:
    """The tap map (B, C, h, w) of images ``x`` (B, 3, S, S): the backbone is run only up to the tap.

    With ``tap.upsample > 1`` the images are first upsampled bilinearly. The backbone's mode
    (train / eval) is used as it is; call it under ``torch.no_grad()`` for inference.
    """
    if tap.upsample > 1:
        x = F.interpolate(x, scale_factor=tap.upsample, mode="bilinear", align_corners=False)
    names = [tap.module] + ([tap.context] if tap.context else [])
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for name in names:

        def hook(module: nn.Module, args: tuple, output: torch.Tensor, name: str = name) -> None:
            captured[name] = output
            if len(captured) == len(names):
                raise _Captured

        handles.append(backbone.get_submodule(name).register_forward_hook(hook))
    try:
        backbone(x)
    except _Captured:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return join_tap(tap, captured)


def join_tap(tap: Tap, captured: dict[str, torch.Tensor]) -> torch.Tensor:
    """The tap map from the captured outputs of its module (and context, resized bilinearly to the
    module's positions and appended to its channels)."""
    maps = captured[tap.module]
    if tap.context is None:
        return maps
    context = F.interpolate(captured[tap.context], size=maps.shape[-2:], mode="bilinear", align_corners=False)
    return torch.cat([maps, context.to(maps.dtype)], dim=1)


class ShiftScorer(nn.Module):
    """Conv3×3(C → 64) → ReLU → Conv1×1(64 → 1): one logit per position, (B, C, h, w) → (B, h, w)."""

    def __init__(self, channels: int, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, hidden, 3, padding=1)
        self.out = nn.Conv2d(hidden, 1, 1)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.conv(maps)))[:, 0]


class Localiser(nn.Module):
    """The per-channel standardisation and the seed ensemble of :class:`ShiftScorer`.

    Args:
        channels: C of the tap map.
        seeds: how many scorers are averaged.

    ``fitted_on`` is ``(source, target)``, how many images of each domain the fit read (set by
    :func:`tada_core.training.localiser_fit.fit_for_backbone`, stored as the ``localiser.fitted_on``
    tensor); None for a localiser fitted before the counts were recorded.
    """

    def __init__(self, channels: int, seeds: int = 3, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))
        self.scorers = nn.ModuleList(ShiftScorer(channels, hidden) for _ in range(seeds))
        self.fitted_on: tuple[int, int] | None = None

    def standardise(self, maps: torch.Tensor) -> torch.Tensor:
        return (maps.float() - self.mean) / self.std

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """Mean logit of the scorers, (B, h, w), for tap maps (B, C, h, w)."""
        x = self.standardise(maps)
        return torch.stack([scorer(x) for scorer in self.scorers]).mean(0)

    def to_tensors(self, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        """The state as ``localiser.*`` tensors for a checkpoint (``dtype`` e.g. float16 for photo models),
        with the fit's image counts as int64 ``localiser.fitted_on`` when they are known."""
        tensors = {PREFIX + k: v.detach().to(dtype).cpu().contiguous() for k, v in self.state_dict().items()}
        if self.fitted_on is not None:
            tensors[PREFIX + FITTED_ON] = torch.tensor(self.fitted_on, dtype=torch.int64)
        return tensors

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> Localiser:
        """Rebuild from ``localiser.*`` tensors (other keys are ignored); float32, eval mode."""
        state = {k[len(PREFIX) :]: v.float() for k, v in tensors.items() if k.startswith(PREFIX)}
        counts = state.pop(FITTED_ON, None)
        try:
            channels = state["mean"].shape[1]
            seeds = len({k.split(".")[1] for k in state if k.startswith("scorers.")})
            hidden = state["scorers.0.conv.weight"].shape[0]
            localiser = cls(channels, seeds, hidden)
            localiser.load_state_dict(state)
        except (KeyError, IndexError, RuntimeError) as err:
            raise LocaliserError(f"the stored shift localiser is damaged ({type(err).__name__}: {err})") from None
        if counts is not None and counts.numel() == 2:
            localiser.fitted_on = (int(counts[0]), int(counts[1]))
        return localiser.eval()
