"""A digits pair with ground truth for localisation: target digits carry a planted artefact.

The source is MNIST as it is. The target is other MNIST digits where, in each image, 1–3 cells of
the model's h×w region grid (7×7 at 28 px: 4×4-pixel cells), drawn at random per image, are
overwritten with a 1-pixel checkerboard texture that never occurs in the source. The planted
cells are the ground truth a per-region view should find: the only place where the domains
differ.

Example:
    >>> pair = planted_pair(seed=0)
    >>> pair.target_test.shape, pair.mask_test.shape    # uint8 (N, 28, 28), bool (N, 7, 7)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tada_core.data.digits import mnist_arrays


@dataclass
class PlantedPair:
    """Source and planted-target digits, each split in a train and a test part.

    Attributes:
        source_train, source_test: uint8 (N, 28, 28) MNIST digits, untouched.
        target_train, target_test: uint8 (N, 28, 28) other MNIST digits with planted cells.
        *_labels: int64 (N,) digit labels of each part.
        mask_train, mask_test: bool (N, grid, grid), True where a cell was planted.
    """

    source_train: np.ndarray
    source_labels_train: np.ndarray
    source_test: np.ndarray
    source_labels_test: np.ndarray
    target_train: np.ndarray
    target_labels_train: np.ndarray
    target_test: np.ndarray
    target_labels_test: np.ndarray
    mask_train: np.ndarray
    mask_test: np.ndarray


def checkerboard(size: int) -> np.ndarray:
    """A (size, size) uint8 checkerboard of 0 and 255 with a 1-pixel period."""
    rows, cols = np.indices((size, size))
    return np.where((rows + cols) % 2 == 0, 255, 0).astype(np.uint8)


def plant(images: np.ndarray, grid: int, rng: np.random.Generator, max_cells: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Overwrite 1..``max_cells`` random cells of each image's grid×grid partition with a checkerboard.

    Args:
        images: uint8 (N, S, S) with S divisible by ``grid``.

    Returns:
        ``(planted images uint8 (N, S, S), mask bool (N, grid, grid))``.
    """
    n, side = images.shape[0], images.shape[1]
    if side % grid:
        raise ValueError(f"image side {side} is not a multiple of the grid {grid}")
    cell = side // grid
    out, mask = images.copy(), np.zeros((n, grid, grid), dtype=bool)
    texture = checkerboard(cell)
    counts = rng.integers(1, max_cells + 1, size=n)
    for i, count in enumerate(counts):
        for k in rng.choice(grid * grid, size=count, replace=False):
            r, c = divmod(int(k), grid)
            out[i, r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = texture
            mask[i, r, c] = True
    return out, mask


def planted_pair(*, grid: int = 7, test_fraction: float = 0.2, seed: int = 0, digits: int | None = None) -> PlantedPair:
    """Split the 5,000 MNIST digits (or the first ``digits``) in two halves: source as is, target
    with planted cells.

    Each half is split again into train (``1 − test_fraction``) and test parts; the halves are
    disjoint, so no target digit is a source digit with a patch on it.
    """
    images, labels = mnist_arrays()
    images, labels = images[:digits], labels[:digits]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    half = len(order) // 2
    source, target = order[:half], order[half:]
    planted, mask = plant(images[target], grid, rng)
    cut = round(half * (1.0 - test_fraction))
    return PlantedPair(
        source_train=images[source[:cut]],
        source_labels_train=labels[source[:cut]],
        source_test=images[source[cut:]],
        source_labels_test=labels[source[cut:]],
        target_train=planted[:cut],
        target_labels_train=labels[target[:cut]],
        target_test=planted[cut:],
        target_labels_test=labels[target[cut:]],
        mask_train=mask[:cut],
        mask_test=mask[cut:],
    )
