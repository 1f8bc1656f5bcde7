"""The four views of a run's data: source and target, for training and for evaluation."""

from __future__ import annotations

from dataclasses import dataclass

from tada_core.backbones import backbone_spec
from tada_core.config import TADAConfig
from tada_core.data import DIGITS_NORM, IMAGENET_NORM, Domain, check_same_classes, load_domain


@dataclass
class RunData:
    source: Domain  # training transform (augmentation for ImageNet-size inputs)
    target: Domain
    source_eval: Domain  # test transform
    target_eval: Domain

    @property
    def class_names(self) -> list[str]:
        return self.source.class_names


def norm_for(config: TADAConfig) -> tuple:
    """ImageNet mean/std for torchvision backbones, 0.5/0.5 for the digits backbone."""
    return IMAGENET_NORM if backbone_spec(config.backbone).imagenet_norm else DIGITS_NORM


def image_size_for(config: TADAConfig) -> int:
    return config.image_size or backbone_spec(config.backbone).default_image_size


def load_run_data(config: TADAConfig, data_root: str | None = None) -> RunData:
    """Load source and target (train and eval views) and check that their classes agree."""
    tc = config.train
    kwargs = {"image_size": image_size_for(config), "norm": norm_for(config), "data_root": data_root}
    source = load_domain(tc.source, train=True, **kwargs)
    target = load_domain(tc.target, train=True, **kwargs)
    check_same_classes(source, target)
    return RunData(
        source=source,
        target=target,
        source_eval=load_domain(tc.source, train=False, **kwargs),
        target_eval=load_domain(tc.target, train=False, **kwargs),
    )
