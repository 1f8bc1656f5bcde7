"""Cached backbone maps on disk: float16 rows read one image at a time, never loaded whole.

The frozen cache holds one ``(C, H, W)`` map per image (1280 × 7 × 7 in float16 ≈ 125 KB for
EfficientNet-Lite0): 20,000 + 20,000 images would be 5 GB in memory. Above
:data:`IN_MEMORY_BYTES` :func:`tada_core.training.feature_cache.backbone_maps` writes the maps to a
:class:`MapStore` file instead, and training reads the rows of each batch with ``os.pread``: the
operating system's page cache keeps what fits, the process holds a batch.

Not ``mmap``: rows read through a mapping stay counted in the process's resident memory until the
kernel reclaims them, so a random pass over a 5 GB file looks like a 5 GB process (and is one
when memory is short). ``pread`` copies each row into a fresh tensor and keeps nothing.

A store is written to ``NAME.partial`` and renamed when complete, beside a JSON header with its
shape and ``key`` (what was encoded: domain, image count, backbone, cut); :func:`open_store` gives
back a complete store whose key matches, so that ``--resume`` and a second run on the same data do
not encode again.

    >>> with MapStoreWriter(path, (1280, 7, 7), key) as out:
    ...     out.append(maps, labels)                # (B, C, H, W) and (B,), as they are encoded
    >>> store = open_store(path, key)               # None when absent, partial or of other data
    >>> store[[3, 1]].shape, store[0:2].shape       # float16 tensors
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

IN_MEMORY_BYTES = 512 * 2**20  # a domain's maps above this go to disk (≈ 4,000 Lite0 images)
_DTYPE, _ITEM = np.float16, 2


class MapStore:
    """A read-only float16 ``(N, C, H, W)`` array in a file, indexed like a tensor's first axis
    (an int, a slice, a sequence or a tensor of indices); every read returns a new tensor."""

    def __init__(self, path: str | Path, shape: Sequence[int], labels: Sequence[int] | None = None) -> None:
        self.path, self.shape = Path(path), torch.Size(shape)
        self.labels = torch.as_tensor(labels if labels is not None else [-1] * shape[0], dtype=torch.long)
        self._row = int(np.prod(self.shape[1:])) * _ITEM
        self._fd = os.open(self.path, os.O_RDONLY)
        if os.fstat(self._fd).st_size != self._row * self.shape[0]:
            os.close(self._fd)
            raise ValueError(f"{self.path} holds {os.path.getsize(self.path)} bytes, not {self.shape} float16")

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return torch.float16

    def _rows(self, start: int, count: int) -> np.ndarray:
        data = os.pread(self._fd, self._row * count, self._row * start)
        return np.frombuffer(data, dtype=_DTYPE).reshape(count, *self.shape[1:])

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return torch.from_numpy(self._rows(start, max(0, stop - start)).copy())
            index = range(start, stop, step)
        if isinstance(index, int | np.integer) or (torch.is_tensor(index) and index.ndim == 0):
            i = int(index) + (len(self) if int(index) < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"row {int(index)} of a store of {len(self)}")
            return torch.from_numpy(self._rows(i, 1)[0].copy())
        rows = [int(i) for i in (index.tolist() if torch.is_tensor(index) else index)]
        out = np.empty((len(rows), *self.shape[1:]), dtype=_DTYPE)
        for k, i in enumerate(rows):
            out[k] = self._rows(i, 1)[0]
        return torch.from_numpy(out)

    def chunks(self, size: int = 256):
        """The rows in order, ``size`` at a time (float16 tensors)."""
        for start in range(0, len(self), size):
            yield self[start : start + size]

    def __getstate__(self) -> dict:  # DataLoader workers reopen the file
        return {"path": self.path, "shape": tuple(self.shape), "labels": self.labels.tolist()}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["shape"], state["labels"])

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def _header(path: Path) -> Path:
    return path.with_name(path.name + ".json")


class MapStoreWriter:
    """Appends float16 maps and their labels to ``path.partial``; on a clean exit renames it to
    ``path`` and writes the header (``shape``, ``key``, ``labels``). An exception leaves no store
    (the partial file is removed)."""

    def __init__(self, path: str | Path, map_shape: Sequence[int], key: dict) -> None:
        self.path, self.map_shape, self.key, self.count = Path(path), tuple(map_shape), key, 0
        self.labels: list[int] = []
        self.partial = self.path.with_name(self.path.name + ".partial")

    def __enter__(self) -> MapStoreWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.partial, "wb")
        return self

    def append(self, maps: torch.Tensor, labels: Sequence[int] | torch.Tensor) -> None:
        if tuple(maps.shape[1:]) != self.map_shape:
            raise ValueError(f"maps of shape {tuple(maps.shape[1:])} in a store of {self.map_shape}")
        self._file.write(maps.detach().to("cpu", torch.float16).contiguous().numpy().tobytes())
        self.labels += torch.as_tensor(labels).tolist()
        self.count += len(maps)

    def __exit__(self, kind, value, traceback) -> None:
        self._file.close()
        if kind is not None:
            self.partial.unlink(missing_ok=True)
            return
        header = {"shape": [self.count, *self.map_shape], "key": self.key, "labels": self.labels}
        os.replace(self.partial, self.path)
        tmp = _header(self.path).with_suffix(".tmp")
        tmp.write_text(json.dumps(header))
        os.replace(tmp, _header(self.path))

    def store(self) -> MapStore:
        return MapStore(self.path, (self.count, *self.map_shape), self.labels)


def open_store(path: str | Path, key: dict) -> MapStore | None:
    """The complete store at ``path`` when its header's key equals ``key``; else None."""
    path = Path(path)
    try:
        header = json.loads(_header(path).read_text())
        if header.get("key") != json.loads(json.dumps(key)):
            return None
        return MapStore(path, header["shape"], header["labels"])
    except (OSError, ValueError, KeyError):
        return None
