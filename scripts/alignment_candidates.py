"""Which alignment measure tells an adapted model from a source-only one? The candidates, measured.

    PYTHONPATH=. .venv/bin/python scripts/alignment_candidates.py \\
        --checkpoint checkpoints/tada_mnist_mnistm.safetensors \\
        --checkpoint checkpoints/source_only_mnist_mnistm.safetensors \\
        --source mnist --target mnistm --sizes 100,300,1000 [--json FILE]

For each checkpoint and BatchNorm view (each domain's own statistics; the running ones), the
bottleneck features of ``max(sizes)`` images a domain are computed once; each size is a seeded
random subset of them. Candidates (:mod:`tada_core.explain.alignment`), each with its 95 % interval:
class-conditional MMD with the target's classes from its labels and from the model's predictions,
source-neighbour accuracy and agreement with the model, the measured target accuracy, and the
global proxy A-distance (mean, [min, max] over 5 splits). Prints one table per size and view,
checkpoints side by side, with the seconds the measures took. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tada_core.checkpoint import load_checkpoint
from tada_core.data import load_domain
from tada_core.explain.alignment import a_distance_spread, class_mmd, pair_alignment
from tada_core.explain.features import collect_features
from tada_core.model.inputs import image_size_for, norm_for


def candidates(source, target, n: int, seed: int = 0) -> tuple[list[dict], float]:
    rng = np.random.default_rng(seed)
    i = rng.choice(len(source), min(n, len(source)), replace=False)
    j = rng.choice(len(target), min(n, len(target)), replace=False)
    zs, ys = source.features[i], source.labels[i]
    zt, yt, pt = target.features[j], target.labels[j], target.predictions[j]
    start = time.perf_counter()
    measures = pair_alignment(zs, ys, zt, yt, pt, seed=seed)
    measures.insert(1, class_mmd(zs, ys, zt, pt, seed=seed, name="class-conditional MMD (target predictions)"))
    measures.append(a_distance_spread(zs, zt, seed=seed))
    return [m.to_dict() for m in measures], time.perf_counter() - start


def _name(ckpt: Path) -> str:
    """The file's stem, or run/stem for a run directory's ``last`` / ``best``."""
    return f"{ckpt.parent.name}/{ckpt.stem}" if ckpt.stem in ("last", "best") else ckpt.stem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, action="append", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--sizes", default="100,300,1000", help="images per domain, comma-separated")
    parser.add_argument("--json", type=Path, default=None, help="write every number here")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    results: dict = {}
    for ckpt in args.checkpoint:
        model, info = load_checkpoint(ckpt)
        kwargs = {"image_size": image_size_for(info.config), "norm": norm_for(info.config), "train": False}
        source, target = load_domain(args.source, **kwargs), load_domain(args.target, **kwargs)
        for view in ("domain", "running"):
            options = {"max_points": max(sizes), "seed": 0, "domain_statistics": view == "domain"}
            src, tgt = collect_features(model, source, **options), collect_features(model, target, **options)
            for n in sizes:
                results.setdefault(f"{n} {view}", {})[_name(ckpt)] = candidates(src, tgt, n)
    for key, by_checkpoint in results.items():
        n, view = key.split()
        print(f"\n{n} images a domain, {view} BatchNorm statistics: {' | '.join(by_checkpoint)}")
        names = [m["measure"] for m in next(iter(by_checkpoint.values()))[0]]
        for row, name in enumerate(names):
            cells = []
            for measures, _ in by_checkpoint.values():
                m = measures[row]
                cells.append(f"{m['value']:.3f} [{m['interval'][0]:.3f}, {m['interval'][1]:.3f}]")
            print(f"  {name:45s} {' | '.join(cells)}")
        print(f"  {'seconds (all measures)':45s} {' | '.join(f'{s:.2f}' for _, s in by_checkpoint.values())}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
