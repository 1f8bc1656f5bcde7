"""Is the shorter t-SNE schedule as good? openTSNE's default 250 + 500 iterations against ours.

    PYTHONPATH=. .venv/bin/python scripts/tsne_schedule.py [--out docs/bench/tsne_schedule.json]

For each shipped digits checkpoint: bottleneck features of 1,000 MNIST + 1,000 MNIST-M images (what
the Features tab plots, with the same BatchNorm statistics), embedded by :func:`tada_core.explain.features.tsne_embed`'s recipe (PCA to 50, PCA
initialisation, perplexity 30, one thread) with openTSNE's default schedule and with ours, the
two interleaved. Reports seconds, trustworthiness@10 (sklearn: how many of each point's
embedded neighbours are true neighbours in feature space) and the 10-NN class accuracy in the
embedding (5-fold). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from openTSNE import TSNE
from sklearn.decomposition import PCA
from sklearn.manifold import trustworthiness
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from tada_core.checkpoint import load_checkpoint
from tada_core.data import load_domain
from tada_core.explain.domain_stats import resolve
from tada_core.explain.features import EARLY_EXAGGERATION_ITER, ITERATIONS, collect_features
from tada_core.model.inputs import image_size_for, norm_for

ROOT = Path(__file__).resolve().parents[1]
SCHEDULES = {"opentsne_default_250_500": (250, 500), f"ours_{EARLY_EXAGGERATION_ITER}_{ITERATIONS}": None}


def features(path: Path, points: int) -> tuple[np.ndarray, np.ndarray]:
    model, info = load_checkpoint(path)
    kwargs = {"image_size": image_size_for(info.config), "norm": norm_for(info.config), "train": False}
    options = {"max_points": points, "seed": 0, "domain_statistics": resolve("auto", info.config) == "domain"}
    src = collect_features(model, load_domain("mnist", **kwargs), **options)
    tgt = collect_features(model, load_domain("mnistm", **kwargs), **options)
    return np.concatenate([src.features, tgt.features]).astype(np.float64), np.r_[src.labels, tgt.labels]


def embed(x: np.ndarray, schedule: tuple[int, int]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    reduced = PCA(n_components=50, svd_solver="full", random_state=0).fit_transform(x)
    early, late = schedule
    tsne = TSNE(perplexity=30, initialization="pca", early_exaggeration_iter=early, n_iter=late, random_state=0)
    xy = np.asarray(tsne.fit(reduced))
    return xy, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench" / "tsne_schedule.json"))
    parser.add_argument("--points", type=int, default=1000, help="images per domain")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    report = {"machine_load_average_before": [round(v, 2) for v in os.getloadavg()], "threads": 1, "checkpoints": {}}
    for path in sorted((ROOT / "checkpoints").glob("*_mnist_mnistm.safetensors")):
        x, labels = features(path, args.points)
        rows = {}
        with threadpool_limits(1):
            for name, schedule in SCHEDULES.items():
                xy, seconds = embed(x, schedule or (EARLY_EXAGGERATION_ITER, ITERATIONS))
                rows[name] = {
                    "seconds": round(seconds, 2),
                    "trustworthiness10": round(float(trustworthiness(x, xy, n_neighbors=10)), 4),
                    "knn10_class_accuracy": round(
                        float(cross_val_score(KNeighborsClassifier(10), xy, labels).mean()), 4
                    ),
                }
        first, second = rows.values()
        rows["time_ratio_ours_over_default"] = round(second["seconds"] / first["seconds"], 2)
        report["checkpoints"][path.stem] = rows
        print(path.stem, json.dumps(rows))
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
