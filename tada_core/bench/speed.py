"""Speed benchmark: the cost of a full train step of each variant on the same backbone and batch.

A step is forward over source+target, all the variant's losses, backward and the SGD step.
Variants are timed round-robin (one step of each per round, after warm-up) so that drift in the
machine's speed hits them all alike; the median over rounds is reported with the ratios
``tada/dann`` and ``tada/source_only``.
"""

from __future__ import annotations

import statistics
import time

import torch

from tada_core.config import VARIANTS, TADAConfig
from tada_core.model import build_model
from tada_core.training.step import build_optimizer, train_step

# (backbone, image size, images per domain) as asked in the project's speed goal
DEFAULT_SETTINGS = (("resnet50", 224, 8), ("lenet", 28, 64))


def _count(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def bench_speed_setting(
    backbone: str,
    image_size: int,
    batch: int,
    *,
    repeats: int = 5,
    warmup: int = 2,
    device: str = "cpu",
    variants: tuple[str, ...] = VARIANTS,
) -> dict:
    """Median seconds per train step for each variant, images/s and the ratios."""
    torch.manual_seed(0)
    x_s = torch.randn(batch, 3, image_size, image_size, device=device)
    x_t = torch.randn(batch, 3, image_size, image_size, device=device)
    y_s = torch.randint(0, 10, (batch,), device=device)
    setups = {}
    for variant in variants:
        config = TADAConfig(variant=variant, backbone=backbone, num_classes=10, image_size=image_size)
        model = build_model(config).to(device)
        setups[variant] = (model, build_optimizer(model, config))
    times: dict[str, list[float]] = {v: [] for v in variants}
    for round_index in range(warmup + repeats):
        for variant, (model, optimizer) in setups.items():
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            train_step(model, optimizer, (x_s, y_s), (x_t, y_s), progress=0.5, lr=0.01)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if round_index >= warmup:
                times[variant].append(time.perf_counter() - start)
    tada_model = setups.get("tada", (None,))[0]
    result = {
        "backbone": backbone,
        "image_size": image_size,
        "batch_per_domain": batch,
        "device": device,
        "repeats": repeats,
        "seconds_per_step": {v: round(statistics.median(t), 4) for v, t in times.items()},
        "images_per_second": {v: round(2 * batch / statistics.median(t), 1) for v, t in times.items()},
    }
    med = result["seconds_per_step"]
    if "tada" in med and "dann" in med:
        result["tada_over_dann"] = round(med["tada"] / med["dann"], 3)
    if "tada" in med and "source_only" in med:
        result["tada_over_source_only"] = round(med["tada"] / med["source_only"], 3)
    if tada_model is not None:
        result["params"] = {
            "backbone": _count(tada_model.backbone),
            "local_discriminators": _count(tada_model.region_discriminators),
            "global_discriminator": _count(tada_model.domain_discriminator),
            "total": _count(tada_model),
        }
    return result


def bench_speed(
    settings: tuple[tuple[str, int, int], ...] = DEFAULT_SETTINGS,
    *,
    repeats: int = 5,
    warmup: int = 2,
    device: str = "cpu",
) -> dict:
    """Run :func:`bench_speed_setting` for each (backbone, image size, batch) setting."""
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "results": [
            bench_speed_setting(b, s, n, repeats=repeats, warmup=warmup, device=device) for b, s, n in settings
        ],
    }
