"""What a model takes as input: the side of its square images and their normalisation.

>>> image_size_for(TADAConfig(backbone="lenet")), norm_for(TADAConfig(backbone="lenet"))
(28, ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
"""

from __future__ import annotations

from tada_core.config import TADAConfig
from tada_core.data import DIGITS_NORM, IMAGENET_NORM, Norm
from tada_core.model.backbones import backbone_spec


def norm_for(config: TADAConfig) -> Norm:
    """ImageNet mean/std for torchvision and timm backbones, 0.5/0.5 for the digits backbone."""
    return IMAGENET_NORM if backbone_spec(config.backbone).imagenet_norm else DIGITS_NORM


def image_size_for(config: TADAConfig) -> int:
    """The configured input side, or the backbone's default (28 for ``lenet``, 224 otherwise)."""
    return config.image_size or backbone_spec(config.backbone).default_image_size
