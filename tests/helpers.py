"""Tiny in-memory domains shared by the tests (no files, no downloads)."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from tada_core.data import Domain
from tada_core.training.run_data import RunData


def bars_domain(n: int, *, shift: float = 0.0, seed: int = 0, name: str = "bars") -> Domain:
    """Two classes of 28×28 images: a bright horizontal bar (class 0) or a vertical one (class 1).

    ``shift`` adds a constant brightness offset (a crude domain shift).
    """
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = torch.randn(n, 3, 28, 28, generator=generator) * 0.3 - 0.5 + shift
    for i, label in enumerate(labels.tolist()):
        pos = int(torch.randint(6, 22, (1,), generator=generator))
        if label == 0:
            images[i, :, pos - 2 : pos + 2, :] += 1.5
        else:
            images[i, :, :, pos - 2 : pos + 2] += 1.5
    return Domain(name, ["horizontal", "vertical"], TensorDataset(images, labels))


def bars_run_data(n: int = 64) -> RunData:
    source = bars_domain(n, seed=0, name="bars-source")
    target = bars_domain(n, shift=0.4, seed=1, name="bars-target")
    return RunData(source=source, target=target, source_eval=source, target_eval=target)
