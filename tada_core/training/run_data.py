"""The data of a run: source and target, each in a training and an evaluation view, and the split of
the source that training never sees.

The target may be unlabelled (a flat folder, a zip of images, a list of paths); when it has labels
they are used only to report accuracy, never to train or to choose a checkpoint. A fixed share of
the source (``train.source_holdout``, 10 % by default) is held out of training: it is the
label-free validation set on which ``best`` is chosen and the accuracy estimator is calibrated.

    >>> data = load_run_data(config)
    >>> train_part, held_out = holdout_split(len(data.source), config.train.source_holdout)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from tada_core.config import TADAConfig
from tada_core.data import Domain, check_same_classes, load_domain
from tada_core.errors import DataError, DataWarning
from tada_core.model.inputs import image_size_for, norm_for

MIN_TARGET_IMAGES = 10
SPLIT_SEED = 0  # the held-out part of a source is the same for every training seed


@dataclass
class RunData:
    source: Domain  # training transform (augmentation for ImageNet-size inputs)
    target: Domain
    source_eval: Domain  # test transform
    target_eval: Domain

    @property
    def class_names(self) -> list[str]:
        return self.source.class_names  # type: ignore[return-value]  (a source is always labelled)


def holdout_split(n: int, fraction: float) -> tuple[list[int], list[int]]:
    """Indices ``(train, held_out)`` of a source of ``n`` images, ``round(fraction·n)`` held out
    (at least one when ``fraction > 0`` and ``n ≥ 2``), drawn with a fixed seed; sorted."""
    held = round(fraction * n)
    if fraction > 0 and held == 0 and n >= 2:
        held = 1
    held = min(held, n - 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
    return sorted(order[held:]), sorted(order[:held])


def load_run_data(config: TADAConfig, data_root: str | None = None) -> RunData:
    """Load source and target (train and eval views) and check that their classes agree.

    The source must be labelled; the target is read without labels when it has none or when
    ``train.target_unlabelled`` is set.

    Raises:
        DataError: a domain cannot be read, an unlabelled source, a target of fewer than
            :data:`MIN_TARGET_IMAGES` images, a labelled target with other classes.
    """
    tc = config.train
    kwargs = {"image_size": image_size_for(config), "norm": norm_for(config), "data_root": data_root}
    target_labels = "ignore" if tc.target_unlabelled else "auto"
    source = load_domain(tc.source, train=True, labels="require", **kwargs)
    target = load_domain(tc.target, train=True, labels=target_labels, **kwargs)
    check_same_classes(source, target)
    if len(target) < MIN_TARGET_IMAGES:
        raise DataError(
            f"the target '{tc.target}' has {len(target)} readable image(s); adaptation needs at least "
            f"{MIN_TARGET_IMAGES} (a few hundred is better)"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # the same files, already counted once
        source_eval = load_domain(tc.source, train=False, labels="require", **kwargs)
        target_eval = load_domain(tc.target, train=False, labels=target_labels, **kwargs)
    return RunData(source=source, target=target, source_eval=source_eval, target_eval=target_eval)
