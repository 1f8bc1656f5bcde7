"""What a model outputs on a domain, and its accuracy where the domain has labels.

The target's labels, when it has them, are used only here, to report accuracy; the label-free
choice of ``best`` (:mod:`tada_core.training.selection`) reads the outputs, never the labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Subset

from tada_core.training.distributed import DistContext, all_reduce_sum, gather_cat


@dataclass
class Outputs:
    """A model's outputs on the items of a domain, in item order.

    Attributes:
        logits: float32 (N, C).
        features: float32 (N, D), the bottleneck features z.
        labels: int64 (N,), −1 where the domain has no labels.
    """

    logits: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor

    @property
    def labelled(self) -> bool:
        return len(self.labels) > 0 and bool((self.labels >= 0).all())

    def accuracy(self) -> float | None:
        """Accuracy in % (None without labels)."""
        if not self.labelled:
            return None
        return round(100.0 * float((self.logits.argmax(1) == self.labels).double().mean()), 2)


def subset_for(dataset, max_items: int | None) -> list[int]:
    """Indices of a fixed, seeded subset of ``max_items`` items (all of them when None or more)."""
    if max_items is not None and max_items < len(dataset):
        return torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:max_items].tolist()
    return list(range(len(dataset)))


@torch.no_grad()
def collect_outputs(
    model: torch.nn.Module,
    dataset,
    indices: Sequence[int] | None = None,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    ctx: DistContext | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Outputs:
    """Logits, features and labels of ``model`` (eval mode, no gradients) over ``dataset[indices]``.

    In a distributed run each rank computes every ``world``-th item and every rank gets all of them.
    ``on_batch(n)`` is called after every batch of n items (this rank's).
    """
    ctx = ctx or DistContext()
    indices = list(range(len(dataset))) if indices is None else list(indices)
    mine = indices[ctx.rank :: ctx.world]
    was_training = model.training
    model.eval()
    logits, features, labels = [], [], []
    # an explicit generator keeps the global RNG untouched, so evaluating never changes training
    for images, targets in DataLoader(Subset(dataset, mine), batch_size=batch_size, generator=torch.Generator()):
        out = model(images.to(device))
        logits.append(out.logits.float().cpu())
        features.append(out.features.float().cpu())
        labels.append(torch.as_tensor(targets, dtype=torch.long))
        if on_batch is not None:
            on_batch(len(images))
    model.train(was_training)
    parts = [torch.cat(x) if x else torch.empty(0) for x in (logits, features, labels)]
    if ctx.enabled:
        order = torch.tensor(mine, dtype=torch.long)
        parts = [gather_cat(p, ctx) for p in parts]
        position = gather_cat(order, ctx).argsort()  # back to item order
        parts = [p[position] for p in parts]
    return Outputs(logits=parts[0], features=parts[1], labels=parts[2].long())


@torch.no_grad()
def predict(model: torch.nn.Module, dataset, batch_size: int = 256, device: str | torch.device = "cpu") -> tuple:
    """Predicted and true labels over ``dataset`` (eval mode, no gradients). Returns two (N,) tensors."""
    out = collect_outputs(model, dataset, batch_size=batch_size, device=device)
    return out.logits.argmax(dim=1), out.labels


def evaluate(
    model: torch.nn.Module,
    dataset,
    class_names: list[str],
    *,
    batch_size: int = 256,
    max_items: int | None = None,
    device: str | torch.device = "cpu",
    ctx: DistContext | None = None,
) -> dict:
    """Overall and per-class accuracy (in %) of ``model`` on a labelled ``dataset``.

    ``max_items`` evaluates on a fixed, seeded subset of N items (for quick periodic evaluation
    during training); ``None`` uses everything. In a distributed run each rank evaluates every
    ``world``-th item and the counts are summed over ranks.
    """
    ctx = ctx or DistContext()
    shard = Subset(dataset, subset_for(dataset, max_items)[ctx.rank :: ctx.world])
    counts = torch.zeros(len(class_names), 2, dtype=torch.float64)  # (correct, total) per class
    if len(shard):
        preds, labels = predict(model, shard, batch_size, device)
        counts[:, 0].index_add_(0, labels, (preds == labels).double())
        counts[:, 1].index_add_(0, labels, torch.ones_like(labels, dtype=torch.float64))
    counts = all_reduce_sum(counts, ctx)
    total = counts[:, 1].sum().item()
    per_class = {
        name: round(100.0 * counts[i, 0].item() / counts[i, 1].item(), 2)
        for i, name in enumerate(class_names)
        if counts[i, 1] > 0
    }
    accuracy = round(100.0 * counts[:, 0].sum().item() / max(total, 1), 2)
    return {"accuracy": accuracy, "per_class": per_class, "n": int(total)}
