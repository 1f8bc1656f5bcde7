"""A domain: named, labelled images; and :func:`load_domain`, which resolves what a user typed.

Examples:
    >>> source = load_domain("mnist", image_size=28, norm=DIGITS_NORM, train=True)
    >>> target = load_domain("mnistm", image_size=28, norm=DIGITS_NORM, train=True)
    >>> check_same_classes(source, target)
    >>> image, label = source.dataset[0]  # float32 (3, 28, 28) in [-1, 1], int
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset

from tada_core.data.builtin import builtin_names, load_builtin
from tada_core.data.datasets import FileImages
from tada_core.data.folders import read_image_list, scan_image_folder
from tada_core.data.transforms import Norm, build_transform
from tada_core.errors import ConfigError, DataError


def _labels_of(dataset: Dataset) -> torch.Tensor:
    labels = getattr(dataset, "labels", None)
    if labels is not None:
        return torch.as_tensor(labels, dtype=torch.long)
    if isinstance(dataset, Subset):
        return _labels_of(dataset.dataset)[torch.as_tensor(dataset.indices, dtype=torch.long)]
    return torch.tensor([int(dataset[i][1]) for i in range(len(dataset))], dtype=torch.long)


@dataclass
class Domain:
    """Labelled images of one domain.

    Attributes:
        name: the spec as the user gave it (built-in name, folder or list file).
        class_names: class ``i`` is ``class_names[i]``.
        dataset: yields ``(image, label)``: float32 ``(3, S, S)`` RGB normalised with the
            domain's mean/std, and an ``int`` index into ``class_names``.
    """

    name: str
    class_names: list[str]
    dataset: Dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    @property
    def labels(self) -> torch.Tensor:
        """All labels, int64 ``(N,)``, in dataset order (for per-class metrics)."""
        return _labels_of(self.dataset)


def _unknown(spec: str) -> DataError:
    names = builtin_names()
    close = difflib.get_close_matches(spec.lower(), names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return DataError(
        f"unknown domain '{spec}'{hint}: not a built-in name ({', '.join(names)}), a folder, or an "
        "image-list file; 'tada data list' shows the built-ins"
    )


def load_domain(
    spec: str,
    *,
    image_size: int,
    norm: Norm,
    train: bool,
    seed: int = 0,
    data_root: str | None = None,
) -> Domain:
    """Resolve ``spec`` and load its images.

    ``spec`` is tried as, in order: a built-in name (``tada data list``), an existing folder
    (ImageFolder layout), an existing image-list file (``path label`` lines).

    Args:
        spec: what the user typed.
        image_size: side ``S`` of the square images the dataset yields.
        norm: ``(mean, std)`` per RGB channel, e.g. ``DIGITS_NORM`` or ``IMAGENET_NORM``.
        train: training transform (random crop and flip when ``S > 64``) and, for torchvision
            built-ins, the train split; else the test transform and split.
        seed: generation seed of synthetic built-ins (``mnistm``); keep the default 0 for the
            canonical images (it is not the training seed).
        data_root: where torchvision built-ins live (default ``$TADA_DATA_ROOT`` or
            ``~/.cache/tada/data``).

    Raises:
        DataError: unknown spec, no images, a bad list line, a missing file or torchvision data.
        ConfigError: ``image_size`` is not a positive integer.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"image_size must be a positive integer, got {image_size!r}")
    if spec in builtin_names():
        class_names, dataset = load_builtin(
            spec, image_size=image_size, norm=norm, train=train, seed=seed, data_root=data_root
        )
        return Domain(spec, class_names, dataset)
    path = Path(spec).expanduser()
    if path.is_dir():
        samples, class_names = scan_image_folder(path)
    elif path.is_file():
        samples, class_names = read_image_list(path)
    else:
        raise _unknown(spec)
    return Domain(spec, class_names, FileImages(samples, build_transform(image_size, norm, train)))


def _some(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" … and {len(names) - limit} more" if len(names) > limit else "") if names else "none"


def check_same_classes(source: Domain, target: Domain) -> None:
    """Raise :class:`DataError` unless both domains have the same class names in the same order.

    The message names the classes present only in the source and only in the target.
    """
    if source.class_names == target.class_names:
        return
    in_source, in_target = set(source.class_names), set(target.class_names)
    only_source = [c for c in source.class_names if c not in in_target]
    only_target = [c for c in target.class_names if c not in in_source]
    if not only_source and not only_target:
        raise DataError(
            f"source '{source.name}' and target '{target.name}' have the same classes in a different "
            "order; give both the same classes.txt (folders are always sorted by name)"
        )
    raise DataError(
        f"source '{source.name}' and target '{target.name}' have different classes: only in source: "
        f"{_some(only_source)}; only in target: {_some(only_target)}. Both domains need the same "
        "class names (class sub-folder names, or labels / classes.txt of an image list)"
    )
