"""A domain: named images, labelled or not; and :func:`load_domain`, which resolves what a user typed.

A source is always labelled. A target may be unlabelled — a flat folder of images, a zip of them,
an image list without labels — as it is in real use; a labelled target's labels are used only to
report accuracy. Its images then carry the label ``UNLABELLED`` (−1) and ``class_names`` is None.

Examples:
    >>> source = load_domain("mnist", image_size=28, norm=DIGITS_NORM, train=True)
    >>> target = load_domain("photos_from_camera_b/", image_size=28, norm=DIGITS_NORM, train=True)
    >>> target.labelled
    False
    >>> check_same_classes(source, target)  # nothing to compare: fine
    >>> image, label = source.dataset[0]  # float32 (3, 28, 28) in [-1, 1], int
"""

from __future__ import annotations

import difflib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset

from tada_core.data.archives import extract_zip
from tada_core.data.builtin import builtin_names, load_builtin
from tada_core.data.datasets import FileImages, Unlabelled
from tada_core.data.folders import UNLABELLED, is_flat_folder, read_image_list, scan_image_folder, scan_unlabelled
from tada_core.data.images import probe_image
from tada_core.data.torchvision_sets import data_root as default_data_root
from tada_core.data.transforms import Norm, build_transform
from tada_core.errors import ConfigError, DataError, DataWarning

LABELS = ("auto", "require", "ignore")
"""How :func:`load_domain` treats labels: ``auto`` (use them when the domain has them),
``require`` (a source: refuse an unlabelled domain), ``ignore`` (read it as unlabelled)."""


def _labels_of(dataset: Dataset) -> torch.Tensor:
    labels = getattr(dataset, "labels", None)
    if labels is not None:
        return torch.as_tensor(labels, dtype=torch.long)
    if isinstance(dataset, Subset):
        return _labels_of(dataset.dataset)[torch.as_tensor(dataset.indices, dtype=torch.long)]
    return torch.tensor([int(dataset[i][1]) for i in range(len(dataset))], dtype=torch.long)


@dataclass
class Domain:
    """The images of one domain, labelled or not.

    Attributes:
        name: the spec as the user gave it (built-in name, folder, zip or list file).
        class_names: class ``i`` is ``class_names[i]``; None for an unlabelled domain.
        dataset: yields ``(image, label)``: float32 ``(3, S, S)`` RGB normalised with the
            domain's mean/std, and an ``int`` index into ``class_names`` (``UNLABELLED`` = −1 when
            the domain has no labels).
        skipped: files left out because they could not be read (path and reason).
    """

    name: str
    class_names: list[str] | None
    dataset: Dataset
    skipped: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    @property
    def labelled(self) -> bool:
        return self.class_names is not None

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


def _readable(samples: list[tuple[str, int]], spec: str) -> tuple[list[tuple[str, int]], tuple[tuple[str, str], ...]]:
    """Leave out the files that cannot be read, with one :class:`DataWarning` that counts them."""
    checked = [(sample, probe_image(sample[0])) for sample in samples]
    kept = [sample for sample, why in checked if why is None]
    skipped = tuple((sample[0], why) for sample, why in checked if why is not None)
    if skipped:
        if not kept:
            path, why = skipped[0]
            raise DataError(f"none of the {len(samples)} images of '{spec}' can be read (e.g. '{path}': {why})")
        examples = "; ".join(f"{os.path.basename(path)}: {why}" for path, why in skipped[:3])
        warnings.warn(
            f"skipped {len(skipped)} unreadable file(s) of {len(samples)} in '{spec}' ({examples})",
            DataWarning,
            stacklevel=3,
        )
    return kept, skipped


def _files(spec: str, path: Path, labels: str) -> tuple[list[tuple[str, int]], list[str] | None]:
    """Samples and class names (None: unlabelled) of a folder or an image list."""
    if path.is_dir():
        if labels == "ignore" or (labels == "auto" and is_flat_folder(path)):
            return scan_unlabelled(path), None
        return scan_image_folder(path)
    samples, class_names = read_image_list(path)
    if class_names is None and labels == "require":
        raise DataError(
            f"image list '{spec}' has no labels (every line is just a path); the source needs 'path label' lines"
        )
    if labels == "ignore":
        return [(p, UNLABELLED) for p, _ in samples], None
    return samples, class_names


def load_domain(
    spec: str,
    *,
    image_size: int,
    norm: Norm,
    train: bool,
    seed: int = 0,
    data_root: str | None = None,
    labels: str = "auto",
) -> Domain:
    """Resolve ``spec`` and load its images.

    ``spec`` is tried as, in order: a built-in name (``tada data list``), an existing folder
    (ImageFolder layout with class sub-folders, or a flat folder of unlabelled images), a ``.zip``
    of either (extracted once under ``<data root>/unzipped/``), an existing image-list file
    (``path label`` lines, or just paths when unlabelled). Files that cannot be read are left out
    with one :class:`~tada_core.errors.DataWarning` that counts them.

    Args:
        spec: what the user typed.
        image_size: side ``S`` of the square images the dataset yields.
        norm: ``(mean, std)`` per RGB channel, e.g. ``DIGITS_NORM`` or ``IMAGENET_NORM``.
        train: training transform (random crop and flip when ``S > 64``) and, for torchvision
            built-ins, the train split; else the test transform and split.
        seed: generation seed of synthetic built-ins (``mnistm``); keep the default 0 for the
            canonical images (it is not the training seed).
        data_root: where torchvision built-ins live and zips are extracted (default
            ``$TADA_DATA_ROOT`` or ``~/.cache/tada/data``).
        labels: ``auto``, ``require`` (the source) or ``ignore`` (read as unlabelled), see :data:`LABELS`.

    Raises:
        DataError: unknown spec, no images, no readable image, a bad list line, a missing file or
            torchvision data, an unlabelled domain where labels are required.
        ConfigError: ``image_size`` is not a positive integer, or an unknown ``labels``.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"image_size must be a positive integer, got {image_size!r}")
    if labels not in LABELS:
        raise ConfigError(f"labels must be one of {', '.join(LABELS)}, got {labels!r}")
    if spec in builtin_names():
        class_names, dataset = load_builtin(
            spec, image_size=image_size, norm=norm, train=train, seed=seed, data_root=data_root
        )
        if labels == "ignore":
            return Domain(spec, None, Unlabelled(dataset))
        return Domain(spec, class_names, dataset)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() == ".zip":
        _, path = extract_zip(path, default_data_root(data_root) / "unzipped")
    elif not path.exists():
        raise _unknown(spec)
    if path.is_dir() and labels == "require" and is_flat_folder(path):
        raise DataError(
            f"folder '{spec}' holds images but no class sub-folders, so it has no labels; the source needs "
            "them: put each class's images in its own sub-folder (<domain>/<class>/<image>)"
        )
    samples, class_names = _files(spec, path, labels)
    samples, skipped = _readable(samples, spec)
    return Domain(spec, class_names, FileImages(samples, build_transform(image_size, norm, train)), skipped)


def _some(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" … and {len(names) - limit} more" if len(names) > limit else "") if names else "none"


UNLABELLED_HINT = (
    "To train on it without its labels, pass it as unlabelled: --target-unlabelled (tada train), "
    "labels='ignore' (load_domain) or 'Use the target without its labels' (the app's Train tab)"
)


def check_same_classes(source: Domain, target: Domain) -> None:
    """Raise :class:`DataError` unless both domains have the same class names in the same order.

    An unlabelled target has nothing to compare and always passes. The message names both class
    lists, the classes present only in the source and only in the target, and how to pass the
    target unlabelled instead.
    """
    if not target.labelled or source.class_names == target.class_names:
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
        f"source '{source.name}' and target '{target.name}' have different classes. Source: "
        f"{_some(source.class_names)}; target: {_some(target.class_names)} (only in source: "
        f"{_some(only_source)}; only in target: {_some(only_target)}). A labelled target needs the "
        f"source's class names (class sub-folder names, or labels / classes.txt of an image list). "
        f"{UNLABELLED_HINT}"
    )
