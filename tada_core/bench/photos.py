"""Photo benchmark: the pretrained EfficientNet-Lite0 with the photo defaults, wall time and accuracy.

Each run is what ``tada train --source S --target T --backbone efficientnet_lite0 --pretrained
--variant V --seed N`` does (frozen cached backbone, 300 steps of 32 + 32). The images are encoded
once and the cache is shared by all runs (the backbone is the same pretrained one for all), so a
run's wall time as ``tada train`` sees it is ``encode_seconds + its train seconds``. Reports the
last checkpoint's target accuracy of each run, mean ± std per variant, and the slowest run's
minutes (the goal: ≤ 3 on 2 CPU cores for 4 classes × 40 photos per domain). Like the accuracy
benchmark, each run keeps its evaluation records and grades the label-free choices (the estimate
at the last and the selected checkpoint, the regret of each selection criterion:
:mod:`tada_core.bench.label_free`), summed up in ``selection`` and ``estimation``.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from tada_core.bench.accuracy import label_free_summary, run_record
from tada_core.config import TADAConfig
from tada_core.model import build_model
from tada_core.training.feature_cache import cache_run_data
from tada_core.training.loop import Callback, train
from tada_core.training.photo_defaults import PHOTO_DEFAULTS, with_photo_defaults
from tada_core.training.run_data import load_run_data


def _config(variant: str, source: str, target: str, seed: int, settings: dict, out: str) -> TADAConfig:
    data: dict = {"variant": variant, "backbone": "efficientnet_lite0", "pretrained": True}
    data["train"] = {"source": source, "target": target, "seed": seed, "out": out}
    for dotted, value in settings.items():
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return TADAConfig.from_dict(with_photo_defaults(data))


def bench_photos(
    *,
    source: str = "photos",
    target: str = "photos-sketch",
    variants: Sequence[str] = ("source_only", "tada"),
    seeds: int = 1,
    settings: dict | None = None,
    callbacks: Callable[[], Sequence[Callback]] = tuple,
    on_result: Callable[[dict], None] | None = None,
    memo: dict | None = None,
) -> dict:
    """Encode both domains once, then train every variant × seed one after the other.

    Args:
        settings: extra config values by dotted key (``{"train.iters": 500}``), over the defaults.
        callbacks: makes the callbacks of each run (e.g. a progress bar).
        on_result: called with each run's record as soon as it finishes.
        memo: maps already encoded by earlier calls (see :func:`cache_run_data`), reused by name.
    """
    settings = settings or {}
    started = time.time()
    config = _config(variants[0], source, target, 0, settings, "unused")
    data = load_run_data(config)
    encoder = build_model(config.replace(num_classes=len(data.class_names)))
    cached = cache_run_data(encoder, data, memo=memo)
    encode_seconds = round(time.time() - started, 1)
    runs = []
    for variant in variants:
        for seed in range(seeds):
            started = time.time()
            with tempfile.TemporaryDirectory(prefix="tada-bench-photos-") as out:
                result = train(
                    _config(variant, source, target, seed, settings, out), data=cached, callbacks=callbacks()
                )
                history = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
            seconds = round(time.time() - started, 1)
            job = {"variant": variant, "source": source, "target": target, "seed": seed}
            record = {
                **run_record(job, history, result.best_step, seconds),
                "steps": result.steps,
                "train_seconds": seconds,
                "seconds": round(encode_seconds + seconds, 1),
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
        "images": {"source": len(data.source_eval), "target": len(data.target_eval)},
        "settings": {**PHOTO_DEFAULTS, **settings},
        "threads": torch.get_num_threads(),
        "encode_seconds": encode_seconds,
        "table": table,
        **label_free_summary(runs),
        "runs": runs,
        "max_minutes": round(max(r["seconds"] for r in runs) / 60, 2),
    }
