"""Photo benchmark: the pretrained EfficientNet-Lite0 with the photo defaults, wall time and accuracy.

Each run is exactly what ``tada train --source S --target T --backbone efficientnet_lite0
--pretrained --variant V --seed N`` does (frozen cached backbone, 300 steps of 32 + 32): the wall
time includes encoding every image once. Reports the last checkpoint's target accuracy of each
run, mean ± std per variant, and the slowest run's minutes (the goal: ≤ 3 on 2 CPU cores for
4 classes × 40 photos per domain).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence

from tada_core.config import TADAConfig
from tada_core.photo_defaults import PHOTO_DEFAULTS, with_photo_defaults
from tada_core.train import Callback, train


def bench_photos(
    *,
    source: str = "photos",
    target: str = "photos-sketch",
    variants: Sequence[str] = ("source_only", "tada"),
    seeds: int = 1,
    settings: dict | None = None,
    callbacks: Callable[[], Sequence[Callback]] = tuple,
    on_result: Callable[[dict], None] | None = None,
) -> dict:
    """Train every variant × seed one after the other in this process.

    Args:
        settings: extra config values by dotted key (``{"train.iters": 500}``), over the defaults.
        callbacks: makes the callbacks of each run (e.g. a progress bar).
        on_result: called with each run's record as soon as it finishes.
    """
    runs = []
    for variant in variants:
        for seed in range(seeds):
            data: dict = {"variant": variant, "backbone": "efficientnet_lite0", "pretrained": True}
            data["train"] = {"source": source, "target": target, "seed": seed}
            for dotted, value in (settings or {}).items():
                *parents, leaf = dotted.split(".")
                node = data
                for key in parents:
                    node = node.setdefault(key, {})
                node[leaf] = value
            started = time.time()
            with tempfile.TemporaryDirectory(prefix="tada-bench-photos-") as out:
                data["train"]["out"] = out
                config = TADAConfig.from_dict(with_photo_defaults(data))
                result = train(config, callbacks=callbacks())
            record = {
                "variant": variant,
                "seed": seed,
                "target_accuracy": result.final["target_accuracy"],
                "source_accuracy": result.final["source_accuracy"],
                "steps": result.steps,
                "seconds": round(time.time() - started, 1),
            }
            runs.append(record)
            if on_result is not None:
                on_result(record)
    table = {}
    for variant in variants:
        accs = [r["target_accuracy"] for r in runs if r["variant"] == variant]
        table[variant] = {
            "mean": round(statistics.fmean(accs), 2),
            "std": round(statistics.stdev(accs), 2) if len(accs) > 1 else 0.0,
            "runs": accs,
        }
    return {
        "source": source,
        "target": target,
        "settings": {**PHOTO_DEFAULTS, **(settings or {})},
        "table": table,
        "runs": runs,
        "max_minutes": round(max(r["seconds"] for r in runs) / 60, 2),
    }
