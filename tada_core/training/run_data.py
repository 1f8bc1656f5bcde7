"""The data of a run: source and target, each in a training and an evaluation view, and the split of
the source that training never sees.

The target may be unlabelled (a flat folder, a zip of images, a list of paths); when it has labels
they are used only to report accuracy, never to train or to choose a checkpoint. A fixed share of
the source (``train.source_holdout``, 10 % by default) is held out of training: it is the
label-free validation set on which ``best`` is chosen and the accuracy estimator is calibrated.

    >>> data = load_run_data(config)
    >>> train_part, held_out = holdout_split(data.source.labels, config.train.source_holdout)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from tada_core.config import TADAConfig
from tada_core.data import Domain, check_same_classes, load_domain
from tada_core.errors import DataError, DataWarning
from tada_core.model.inputs import image_size_for, norm_for
from tada_core.training.ladder import Ladder

MIN_TARGET_IMAGES = 10
SPLIT_SEED = 0  # the held-out part of a source is the same for every training seed


@dataclass
class RunData:
    source: Domain  # training transform (augmentation for ImageNet-size inputs)
    target: Domain
    source_eval: Domain  # test transform
    target_eval: Domain
    ladder: Ladder | None = None  # calibration rungs already encoded (frozen backbone); else made on demand
    pseudo: dict | None = None  # what the target's pseudo-labels cover (training/pseudo_labels.py summary)

    @property
    def class_names(self) -> list[str]:
        return self.source.class_names  # type: ignore[return-value]  (a source is always labelled)


def holdout_split(labels: torch.Tensor, fraction: float) -> tuple[list[int], list[int]]:
    """Indices ``(train, held_out)`` of a source with these ``labels`` (int64 (N,)); sorted.

    Class-stratified: of the n_c images of class c, h_c = round(fraction·n_c) are held out, at
    least one when ``fraction > 0``, and never all of them (h_c ≤ n_c − 1, so a class of one image
    is only trained on). Drawn with a fixed seed (:data:`SPLIT_SEED`), independent of the training
    seed: every run on a source holds out the same images, and a checkpoint's split can be
    recomputed from its config alone.
    """
    labels = torch.as_tensor(labels, dtype=torch.long)
    if fraction <= 0:
        return list(range(len(labels))), []
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    held: list[int] = []
    for c in torch.unique(labels).tolist():  # ascending classes: the draws do not depend on item order
        members = torch.nonzero(labels == c).flatten()
        count = min(max(1, round(fraction * len(members))), len(members) - 1)
        held += members[torch.randperm(len(members), generator=generator)[:count]].tolist()
    held_set = set(held)
    return [i for i in range(len(labels)) if i not in held_set], sorted(held)


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
