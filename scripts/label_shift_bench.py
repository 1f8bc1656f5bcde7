"""The label-shift benchmark of the accuracy estimate over the shipped checkpoints (no training).

Usage: OMP_NUM_THREADS=1 python scripts/label_shift_bench.py [--out docs/bench/label_shift.json]
       [--case CKPT:TARGET ...]

Prints one line per case as it finishes, then the markdown table (:mod:`tada_core.bench.label_shift`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from tada_core.bench.label_shift import SHIPPED, bench_label_shift, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/bench/label_shift.json"))
    parser.add_argument("--case", action="append", help="CHECKPOINT:TARGET (default: the shipped checkpoints)")
    args = parser.parse_args()
    cases = [tuple(case.rsplit(":", 1)) for case in args.case] if args.case else SHIPPED
    started = time.time()

    def report(case: dict) -> None:
        s = case["summary"]["shifted"]
        print(
            f"{case['checkpoint']} → {case['target']}: MAE {s['mae']} worst {s['worst']} ({case['seconds']} s)",
            flush=True,
        )

    result = bench_label_shift(cases, on_case=report)
    result |= {
        "command": "OMP_NUM_THREADS=1 python scripts/label_shift_bench.py",
        "machine": f"{os.cpu_count()}-core {platform.machine()} CPU, torch threads {torch.get_num_threads()}",
        "seconds": round(time.time() - started, 1),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(table(result)))


if __name__ == "__main__":
    main()
