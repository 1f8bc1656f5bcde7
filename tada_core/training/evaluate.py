"""Accuracy of a model on a labelled domain (the target's labels are used only here)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Subset

from tada_core.training.distributed import DistContext, all_reduce_sum


@torch.no_grad()
def predict(model: torch.nn.Module, dataset, batch_size: int = 256, device: str | torch.device = "cpu") -> tuple:
    """Predicted and true labels over ``dataset`` (eval mode, no gradients). Returns two (N,) tensors."""
    was_training = model.training
    model.eval()
    preds, labels = [], []
    # an explicit generator keeps the global RNG untouched, so evaluating never changes training
    for images, targets in DataLoader(dataset, batch_size=batch_size, generator=torch.Generator()):
        preds.append(model(images.to(device)).logits.argmax(dim=1).cpu())
        labels.append(torch.as_tensor(targets))
    model.train(was_training)
    return torch.cat(preds), torch.cat(labels)


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
    """Overall and per-class accuracy (in %) of ``model`` on ``dataset``.

    ``max_items`` evaluates on a fixed, seeded subset of N items (for quick periodic evaluation
    during training); ``None`` uses everything. In a distributed run each rank evaluates every
    ``world``-th item and the counts are summed over ranks.
    """
    indices = list(range(len(dataset)))
    if max_items is not None and max_items < len(dataset):
        indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:max_items].tolist()
    ctx = ctx or DistContext()
    shard = Subset(dataset, indices[ctx.rank :: ctx.world])
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
