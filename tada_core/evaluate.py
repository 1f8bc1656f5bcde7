"""Accuracy of a model on a labelled domain (the target's labels are used only here)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Subset

from tada_core.model import TADAModel


@torch.no_grad()
def predict(model: TADAModel, dataset, batch_size: int = 256, device: str | torch.device = "cpu") -> tuple:
    """Predicted and true labels over ``dataset`` (eval mode, no gradients). Returns two (N,) tensors."""
    was_training = model.training
    model.eval()
    preds, labels = [], []
    for images, targets in DataLoader(dataset, batch_size=batch_size, generator=torch.Generator()):
        preds.append(model(images.to(device)).logits.argmax(dim=1).cpu())
        labels.append(torch.as_tensor(targets))
    model.train(was_training)
    return torch.cat(preds), torch.cat(labels)


def evaluate(
    model: TADAModel,
    dataset,
    class_names: list[str],
    *,
    batch_size: int = 256,
    max_items: int | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """Overall and per-class accuracy (in %) of ``model`` on ``dataset``.

    ``max_items`` evaluates on the first N items of a fixed, seeded subset (for quick periodic
    evaluation during training); ``None`` uses everything.
    """
    if max_items is not None and max_items < len(dataset):
        generator = torch.Generator().manual_seed(0)
        dataset = Subset(dataset, torch.randperm(len(dataset), generator=generator)[:max_items].tolist())
    preds, labels = predict(model, dataset, batch_size, device)
    correct = preds == labels
    per_class = {}
    for index, name in enumerate(class_names):
        mask = labels == index
        if mask.any():
            per_class[name] = round(100.0 * correct[mask].float().mean().item(), 2)
    return {"accuracy": round(100.0 * correct.float().mean().item(), 2), "per_class": per_class, "n": len(labels)}
