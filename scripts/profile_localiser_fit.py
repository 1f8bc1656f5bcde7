"""Time the shift localiser's fitting step, the loop before its speed-up against today's, on one machine in one run.

Random float16 tap maps of Lite0's shape (default 160 + 160 maps of 120 × 56 × 56, the localisation
bench pairs' size) are fitted with one seed by the reference loop (tests/localiser_reference.py: every
batch standardised, cloned and flipped, NCHW maps as encode_taps stored them before) and by
:func:`fit_localiser` on the channels_last maps encode_taps stores now (standardised once up front,
flipped in place), and by :func:`fit_localiser` with the per-batch standardisation that fits above
``STANDARDISED_BYTES`` use. A step is timed from one optimiser step to the next (a global
optimiser hook: batch, forward, backward, update), the first step of each fit left out with the
one-off costs (channel statistics, standardising up front), which are reported on their own. Times
are the process's CPU seconds (with one thread, waits for a core taken by another job are not
counted); the variants are interleaved, ``--reps`` fits each, and the median step kept: the machine
may be shared.

Float tolerance: the logits of the last fits on a few held-out maps are compared with
the reference's, with the reference run on 2 threads, and with the same loop run in float64 (the
exact fit both float32 loops round away from; ``--no-exact`` skips it, it takes minutes). Training
the 3 seeds' scorers as one grouped convolution was tried and is slower on this CPU (0.47 s a seed
for 32 maps against 0.32 s for plain NCHW, 0.24 s channels_last), so the seeds are fitted in turn.

    nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python scripts/profile_localiser_fit.py
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

import tada_core.training.localiser_fit as fit_module
from tada_core.training.localiser_fit import FitSettings, channel_stats, fit_localiser
from tests.localiser_reference import reference_fit

OUT = Path("docs/bench/localiser_fit_speed.json")


def _timed_fit(fit, source, target, epochs: int) -> tuple[float, list[float], torch.nn.Module]:
    """CPU seconds (this process's: waits for a busy core are not counted) up to the end of the
    fit's first optimiser step, the seconds of each later step, and the fitted localiser."""
    ends = [time.process_time()]
    hook = register_optimizer_step_post_hook(lambda *args: ends.append(time.process_time()))
    try:
        localiser = fit(source, target, FitSettings(seeds=(0,), epochs=epochs))
    finally:
        hook.remove()
    return ends[1] - ends[0], [b - a for a, b in itertools.pairwise(ends[1:])], localiser


def _new_per_batch(source, target, settings):
    saved, fit_module.STANDARDISED_BYTES = fit_module.STANDARDISED_BYTES, 0
    try:
        return fit_localiser(source, target, settings)
    finally:
        fit_module.STANDARDISED_BYTES = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=160, help="maps a domain")
    parser.add_argument("--shape", type=int, nargs=3, default=(120, 56, 56), metavar=("C", "H", "W"))
    parser.add_argument("--epochs", type=int, default=3, help="epochs a fit (one seed)")
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--no-exact", action="store_true", help="skip the float64 fit")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    source = torch.randn(args.images, *args.shape, generator=generator).half()
    target = (torch.randn(args.images, *args.shape, generator=generator) + 0.1).half()
    held = torch.randn(4, *args.shape, generator=generator)
    steps = math.ceil(args.images / FitSettings().batch_size)
    variants = {"reference": reference_fit, "new": fit_localiser, "new_per_batch": _new_per_batch}
    stored = [m.contiguous(memory_format=torch.channels_last) for m in (source, target)]  # as encode_taps stores
    maps = {name: stored if name.startswith("new") else [source, target] for name in variants}
    load = [os.getloadavg()[0]]
    per_step: dict[str, list[float]] = {name: [] for name in variants}
    first: dict[str, list[float]] = {name: [] for name in variants}
    fitted = {}
    for _ in range(args.reps):
        for name, fit in variants.items():
            until_first, later, fitted[name] = _timed_fit(fit, *maps[name], args.epochs)
            per_step[name] += later
            first[name].append(until_first)
        load.append(os.getloadavg()[0])
    start = time.process_time()
    channel_stats(source, target)
    stats_seconds = time.process_time() - start
    torch.set_num_threads(2)  # the float tolerance of the reference itself: the same fit on 2 threads
    fitted["reference_2_threads"] = reference_fit(source, target, FitSettings(seeds=(0,), epochs=args.epochs))
    torch.set_num_threads(args.threads)
    if not args.no_exact:
        settings = FitSettings(seeds=(0,), epochs=args.epochs)
        fitted["reference_float64"] = reference_fit(source, target, settings, dtype=torch.float64)
    with torch.no_grad():
        logits = {name: localiser(held) for name, localiser in fitted.items()}
    step = {name: statistics.median(times) for name, times in per_step.items()}
    quartiles = {name: statistics.quantiles(times, n=4) for name, times in per_step.items()}
    one_off = {name: statistics.median(first[name]) - step[name] for name in variants}
    default_steps = len(FitSettings().seeds) * FitSettings().epochs * steps
    record = {
        "command": "nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python scripts/profile_localiser_fit.py",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_average_1min": [round(v, 2) for v in load],
        },
        "maps": {"images_a_domain": args.images, "shape": list(args.shape), "dtype": "float16"},
        "steps_an_epoch": steps,
        "reps": args.reps,
        "seconds_a_step": {name: round(value, 4) for name, value in step.items()},
        "steps_timed": {name: len(times) for name, times in per_step.items()},
        "seconds_a_step_quartiles": {name: [round(q[0], 4), round(q[2], 4)] for name, q in quartiles.items()},
        "speed_up": {name: round(step["reference"] / step[name], 2) for name in variants},
        "one_off_seconds": {name: round(value, 2) for name, value in one_off.items()},
        "channel_stats_seconds": round(stats_seconds, 2),
        "default_fit_seconds": {  # 3 seeds × 15 epochs, encoding not included
            name: round(default_steps * step[name] + one_off[name], 1) for name in variants
        },
        "max_abs_logit_difference_vs_reference": {
            name: float((logits[name] - logits["reference"]).abs().max()) for name in logits if name != "reference"
        },
        "max_abs_logit_difference_vs_float64": {
            name: float((logits[name] - logits["reference_float64"]).abs().max())
            for name in logits
            if "reference_float64" in logits and name != "reference_float64"
        },
        "logit_range": [float(logits["reference"].min()), float(logits["reference"].max())],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
