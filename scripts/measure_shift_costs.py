"""Measure the costs behind `shift_status().seconds` (tada_core/explain/shift.py) on this machine.

One thread, as the app fits (app/main.py INFERENCE_THREADS): seconds to encode one image at each
backbone's tap, and seconds per fitting step (16 + 16 maps) for tap maps of several (C, h, w), to
which a + h·w·(b + c·C) is fitted by least squares.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python scripts/measure_shift_costs.py

Run it on a quiet machine (nothing else on the cores).
"""

import json
import time

import numpy as np
import torch

from tada_core.model.backbones import build_backbone
from tada_core.model.localiser import tap_features, tap_for
from tada_core.training.localiser_fit import FitSettings, fit_localiser

SHAPES = [(32, 14, 14), (32, 28, 28), (40, 56, 56), (120, 56, 56), (128, 56, 56), (120, 28, 28)]
STEPS = 12


def step_seconds(c: int, h: int, w: int) -> float:
    """(time of 2·STEPS steps − time of STEPS steps) / STEPS: the per-fit costs (statistics) cancel."""
    maps = torch.randn(32 * STEPS, c, h, w).half()
    settings = FitSettings(seeds=(0,), epochs=1)
    fit_localiser(maps[:32], maps[:32], settings)  # warm-up
    times = []
    for n in (16 * STEPS, 32 * STEPS):
        t0 = time.perf_counter()
        fit_localiser(maps[:n], maps[:n], settings)
        times.append(time.perf_counter() - t0)
    return (times[1] - times[0]) / STEPS


def encode_seconds(name: str, size: int, n: int = 32) -> float:
    backbone = build_backbone(name, pretrained=False).eval()
    tap, x = tap_for(name), torch.randn(16, 3, size, size)
    with torch.no_grad():
        tap_features(backbone, tap, x[:2])
        t0 = time.perf_counter()
        for _ in range(n // 16):
            tap_features(backbone, tap, x)
    return (time.perf_counter() - t0) / n


if __name__ == "__main__":
    torch.set_num_threads(1)
    steps = {shape: step_seconds(*shape) for shape in SHAPES}
    design = np.array([[1.0, h * w, h * w * c] for c, h, w in SHAPES])
    seconds = np.array([steps[s] for s in SHAPES])
    (a, b, c), *_ = np.linalg.lstsq(design, seconds, rcond=None)
    if a < 0:  # no fixed cost to speak of: fit through the origin
        a, ((b, c), *_) = 0.0, np.linalg.lstsq(design[:, 1:], seconds, rcond=None)
    fitted = design @ np.array([a, b, c])
    print(
        json.dumps(
            {
                "step_seconds": {f"{c}x{h}x{w}": round(s, 4) for (c, h, w), s in steps.items()},
                "fit": {"a": round(a, 5), "b_per_position": f"{b:.3g}", "c_per_value": f"{c:.3g}"},
                "fitted_step_seconds": [round(v, 4) for v in fitted],
                "encode_seconds": {
                    "lenet@28": round(encode_seconds("lenet", 28), 5),
                    "efficientnet_lite0@224": round(encode_seconds("efficientnet_lite0", 224), 4),
                    "resnet18@224": round(encode_seconds("resnet18", 224), 4),
                    "resnet50@224": round(encode_seconds("resnet50", 224), 4),
                },
            },
            indent=1,
        )
    )
