"""Optional digit domains read through torchvision when the user already has the files.

Nothing here downloads implicitly: :func:`load_arrays` reads files under the data root and says
how to get them when they are missing; only :func:`download` (``tada data download NAME``) goes
to the network. The data root is ``data_root`` if given, else ``$TADA_DATA_ROOT``, else
``~/.cache/tada/data``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tada_core.errors import DataError


@dataclass(frozen=True)
class TorchvisionSet:
    name: str
    train_size: int
    test_size: int
    description: str
    files: tuple[str, ...]  # relative to the data root; all present = available


TORCHVISION_SETS = {
    s.name: s
    for s in (
        TorchvisionSet(
            "tv-mnist",
            60_000,
            10_000,
            "full MNIST via torchvision (train 60,000 / test 10,000), 28×28 grey",
            tuple(
                f"MNIST/raw/{f}-ubyte"
                for f in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1")
            ),
        ),
        TorchvisionSet(
            "usps",
            7_291,
            2_007,
            "USPS postal digits via torchvision (train 7,291 / test 2,007), 16×16 grey",
            ("usps.bz2", "usps.t.bz2"),
        ),
        TorchvisionSet(
            "svhn",
            73_257,
            26_032,
            "SVHN house numbers via torchvision (train 73,257 / test 26,032), 32×32 colour",
            ("train_32x32.mat", "test_32x32.mat"),
        ),
    )
}


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding torchvision data: ``root``, else ``$TADA_DATA_ROOT``, else ``~/.cache/tada/data``."""
    chosen = root or os.environ.get("TADA_DATA_ROOT") or "~/.cache/tada/data"
    return Path(chosen).expanduser()


def is_available(name: str, root: str | os.PathLike | None = None) -> bool:
    """Whether all of ``name``'s files are under the data root (existence only, no checksum)."""
    base = data_root(root)
    return all((base / f).is_file() for f in TORCHVISION_SETS[name].files)


def _missing(name: str, base: Path, why: str) -> DataError:
    return DataError(
        f"built-in domain '{name}' needs torchvision's files under {base} ({why}); run "
        f"'tada data download {name}' (needs the network), or point data_root / TADA_DATA_ROOT at them"
    )


def load_arrays(name: str, root: str | os.PathLike | None, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Read one split: uint8 images ``(N, H, W)`` grey or ``(N, H, W, 3)`` RGB, labels int64 ``(N,)``."""
    from torchvision import datasets

    base = data_root(root)
    if not is_available(name, base):
        raise _missing(name, base, "not found")
    try:
        if name == "tv-mnist":
            ds = datasets.MNIST(base, train=train, download=False)
            return ds.data.numpy(), ds.targets.numpy().astype(np.int64)
        if name == "usps":
            ds = datasets.USPS(base, train=train, download=False)
            return np.asarray(ds.data, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64)
        ds = datasets.SVHN(base, split="train" if train else "test", download=False)
        return np.ascontiguousarray(ds.data.transpose(0, 2, 3, 1)), ds.labels.astype(np.int64)
    except (RuntimeError, OSError, ValueError, EOFError) as err:
        raise _missing(name, base, f"unreadable: {err}") from err


def download(name: str, root: str | os.PathLike | None = None) -> Path:
    """Download both splits of ``name`` with torchvision into the data root; return the root."""
    from torchvision import datasets

    if name not in TORCHVISION_SETS:
        raise DataError(
            f"'{name}' cannot be downloaded; downloadable built-ins: {', '.join(TORCHVISION_SETS)} "
            "(mnist, optdigits and mnistm ship inside Python packages and need no download)"
        )
    base = data_root(root)
    base.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            if name == "tv-mnist":
                datasets.MNIST(base, train=train, download=True)
            elif name == "usps":
                datasets.USPS(base, train=train, download=True)
            else:
                datasets.SVHN(base, split="train" if train else "test", download=True)
    except (OSError, RuntimeError) as err:
        raise DataError(f"downloading '{name}' into {base} failed ({err}); check the network connection") from err
    return base
