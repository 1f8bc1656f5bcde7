"""The four views of a run's data: source and target, for training and for evaluation."""

from __future__ import annotations

from dataclasses import dataclass

from tada_core.config import TADAConfig
from tada_core.data import Domain, check_same_classes, load_domain
from tada_core.model.inputs import image_size_for, norm_for


@dataclass
class RunData:
    source: Domain  # training transform (augmentation for ImageNet-size inputs)
    target: Domain
    source_eval: Domain  # test transform
    target_eval: Domain

    @property
    def class_names(self) -> list[str]:
        return self.source.class_names


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
