"""Map-style datasets behind a :class:`~tada_core.data.domains.Domain`.

Every dataset yields ``(image, label)``: a float32 tensor ``(3, S, S)``, RGB, normalised with the
domain's mean/std, and an ``int`` class index; and exposes ``labels``, an int64 tensor ``(N,)``.

* :class:`TensorImages`: a precomputed stack (the digits fast path; no PIL per item).
* :class:`ArrayImages`: uint8 arrays in memory, transformed per item (random augmentation).
* :class:`FileImages`: image files decoded per item with :func:`~tada_core.data.images.load_image`.
* :class:`Unlabelled`: another dataset with its labels hidden (every label −1).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from tada_core.data.images import load_image

Transform = Callable[[Image.Image], torch.Tensor]


class TensorImages(Dataset):
    """Images precomputed once as a normalised tensor; indexing only slices it.

    Args:
        images: float32 ``(N, C, S, S)`` with ``C`` 1 (grey, expanded to 3 on the way out) or 3.
        labels: int64 ``(N,)``.

    Items are fresh tensors (the cache behind them is shared and never modified). Batched access
    through ``DataLoader`` uses :meth:`__getitems__`: one copy per batch.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] not in (1, 3) or len(images) != len(labels):
            raise ValueError(f"expected images (N, 1|3, S, S) and N labels, got {tuple(images.shape)}, {len(labels)}")
        self.images = images
        self.labels = labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].expand(3, -1, -1).clone(), int(self.labels[index])

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, int]]:
        # stack of slices, not images[tensor]: the parallel gather kernel stalls on busy CPUs
        batch = torch.stack([self.images[i] for i in indices]).expand(-1, 3, -1, -1)  # (B, 3, S, S)
        return list(zip(batch.unbind(0), self.labels[list(indices)].tolist(), strict=True))


class ArrayImages(Dataset):
    """uint8 images held in memory, turned into PIL images and transformed per item.

    Args:
        images: uint8 ``(N, H, W)`` grey or ``(N, H, W, 3)`` RGB, 0..255.
        labels: int ``(N,)``.
        transform: PIL image → tensor ``(3, S, S)`` (see :func:`~tada_core.data.transforms.build_transform`).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Transform) -> None:
        self.images = images
        self.labels = torch.tensor(np.asarray(labels), dtype=torch.long)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[index]).convert("RGB")), int(self.labels[index])


class FileImages(Dataset):
    """Image files on disk, decoded per item.

    Args:
        samples: ``(path, class index)`` pairs; the files are known to exist.
        transform: PIL image → tensor ``(3, S, S)``.

    Raises:
        DataError: at ``__getitem__`` when a file cannot be decoded; the message names the file.
    """

    def __init__(self, samples: Sequence[tuple[str | os.PathLike, int]], transform: Transform) -> None:
        self.paths = [os.fspath(path) for path, _ in samples]
        self.labels = torch.tensor([label for _, label in samples], dtype=torch.long)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(load_image(self.paths[index])), int(self.labels[index])


class Unlabelled(Dataset):
    """Another dataset with its labels hidden: items are ``(image, -1)`` (a target read without labels)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.labels = torch.full((len(dataset),), -1, dtype=torch.long)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.dataset[index][0], -1

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, int]]:
        getitems = getattr(self.dataset, "__getitems__", None)
        items = getitems(indices) if getitems is not None else [self.dataset[i] for i in indices]
        return [(image, -1) for image, _ in items]
