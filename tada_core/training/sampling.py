"""Batches that never run dry and can be resumed exactly.

Each domain is read as an endless stream of shuffled epochs: stream position ``s`` is item
``perm_e[s mod n]`` of epoch ``e = s // n``, where ``perm_e`` is a permutation drawn from a
generator seeded with ``(seed, e)``. Global batch ``c`` covers stream positions
``[(c·world + rank)·B, (c·world + rank + 1)·B)``, so ranks of a distributed run read disjoint
samples, and a run resumed at batch ``c`` reads exactly what it would have read.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class StreamBatchSampler(Sampler[list[int]]):
    """Endless index batches over a dataset of ``size`` items, starting at batch ``start``."""

    def __init__(self, size: int, batch_size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1) -> None:
        if size <= 0:
            raise ValueError("cannot sample batches from an empty dataset")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.start, self.rank, self.world = start, rank, world
        self._perms: dict[int, torch.Tensor] = {}

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.clear()
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms[epoch] = torch.randperm(self.size, generator=generator)
        return self._perms[epoch]

    def batch_indices(self, batch: int) -> list[int]:
        """Dataset indices of global batch ``batch`` for this rank."""
        first = (batch * self.world + self.rank) * self.batch_size
        return [int(self._permutation(s // self.size)[s % self.size]) for s in range(first, first + self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        batch = self.start
        while True:
            yield self.batch_indices(batch)
            batch += 1

    def __len__(self) -> int:  # endless; DataLoader only needs a number
        return 2**62


class BatchStream:
    """``next(stream)`` gives the next (images, labels) batch; ``consumed`` is the resume state."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int,
        start: int = 0,
        workers: int = 0,
        rank: int = 0,
        world: int = 1,
        pin_memory: bool = False,
    ) -> None:
        self.consumed = start
        sampler = StreamBatchSampler(len(dataset), batch_size, seed, start, rank, world)
        self._loader = iter(
            DataLoader(
                dataset,
                batch_sampler=sampler,
                num_workers=workers,
                pin_memory=pin_memory,
                persistent_workers=workers > 0,
            )
        )

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = next(self._loader)
        self.consumed += 1
        return images, labels
