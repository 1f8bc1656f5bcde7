"""Store the label-free accuracy estimate (and its calibration) in a checkpoint written before
estimates existed (the shipped models), so the app shows it without computing anything.

Usage: python scripts/attach_estimate.py CKPT [CKPT ...]

Computes it as ``tada estimate --checkpoint CKPT --domain <its training target>`` would (the
calibration from the checkpoint's own source, the target read unlabelled; the target's labels, when
it has them, only give the measured accuracy beside the estimate), then adds ``calibration`` and
``estimate`` (marked ``attached``, with the computation's notes) to the file's metadata atomically.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tada_core.checkpoint import add_to_checkpoint, load_checkpoint
from tada_core.explain.estimate import calibration_of, estimate_accuracy


def attach(path: Path) -> None:
    started = time.time()
    model, info = load_checkpoint(path)
    if isinstance(info.extra.get("estimate"), dict):
        print(f"{path}: already stores an estimate")
        return
    calibration, _ = calibration_of(model, info)
    result = estimate_accuracy(model, info, info.target)
    measured = result.measured_accuracy
    estimate = result.to_dict() | {"attached": True, "measured_accuracy": None}
    add_to_checkpoint(path, {}, {"calibration": calibration.to_dict(), "estimate": estimate})
    print(
        f"{path}: estimated {result.estimated_accuracy:.1f}% (interval {result.interval[0]:.1f}–{result.interval[1]:.1f}), "
        f"measured {measured if measured is None else round(measured, 1)}%, in {time.time() - started:.0f} s"
    )


if __name__ == "__main__":
    for name in sys.argv[1:]:
        attach(Path(name))
