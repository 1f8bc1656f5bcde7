"""What the shift view costs per request, and the first request on a photo checkpoint.

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python scripts/profile_shift.py [--out docs/bench/shift_speed.json]

For the shipped digits model (``tada_mnist_mnistm``: its localiser is fitted once from mnist →
mnistm and cached beside a copy of it) and the shipped text-stamp photo model
(``tada_photos_text``: stored), with one thread: the median time of ``predict_attention`` on two
example images (one source, one target) without the shift view (attention w and the gap probes,
the request before this issue) and with it, and the ratio; for the photo model also the first
request of a fresh process (loading the checkpoint, reading its localiser, the request). A
benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from tada_core.checkpoint import load_checkpoint
from tada_core.explain.gap import checkpoint_gap
from tada_core.explain.inference import predict_attention
from tada_core.explain.shift import checkpoint_localiser

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "digits": ("tada_mnist_mnistm", ["source_mnist_3.png", "target_mnistm_3.png"]),
    "photos": ("tada_photos_text", ["shift/source_cat.png", "shift/target_cat.png"]),
}


def _median(run, repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def profile(name: str, repeats: int, folder: Path) -> dict:
    checkpoint, examples = CASES[name]
    path = folder / f"{checkpoint}.safetensors"
    shutil.copy(ROOT / "checkpoints" / path.name, path)  # the sidecar cache goes next to the copy
    images = [Image.open(ROOT / "app" / "examples" / e).convert("RGB") for e in examples]
    started = time.perf_counter()
    model, info = load_checkpoint(path)
    localiser = checkpoint_localiser(path)
    [result] = predict_attention(model, info, images[1:], localiser=localiser)
    first = time.perf_counter() - started
    probes = checkpoint_gap(path)
    before = _median(lambda: predict_attention(model, info, images, probes=probes), repeats)
    after = _median(lambda: predict_attention(model, info, images, probes=probes, localiser=localiser), repeats)
    return {
        "checkpoint": checkpoint,
        "localiser": localiser.origin,
        "shift_grid": list(result.shift.shape),
        "first_request_seconds": round(first, 3),
        "request_seconds_without_shift": round(before, 4),
        "request_seconds_with_shift": round(after, 4),
        "ratio": round(after / before, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "shift_speed.json")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        result = {name: profile(name, args.repeats, Path(folder)) for name in CASES}
    result["threads"] = torch.get_num_threads()
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
