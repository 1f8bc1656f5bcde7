"""Store the shift localiser inside a checkpoint that has none (the shipped models trained before it existed).

Usage: python scripts/attach_localiser.py [--refit] CKPT [CKPT ...]

Fits it as the shift view would on first use (:func:`tada_core.explain.shift.checkpoint_localiser`:
the checkpoint's own domains, the default fit settings), then adds the ``localiser.*`` tensors and the
fit's description to the file (atomically; every other tensor and field kept) and removes the sidecar
cache the fit wrote. The app then answers the shift view of the checkpoint without fitting anything.
``--refit`` replaces a stored localiser with one fitted now on today's tap and settings.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from tada_core.checkpoint import add_to_checkpoint, read_info
from tada_core.explain.shift import MAX_IMAGES, checkpoint_localiser, fit_checkpoint_localiser, sidecar_paths
from tada_core.training.localiser_fit import FitSettings


def attach(path: Path, refit: bool = False) -> None:
    started = time.time()
    found = fit_checkpoint_localiser(path) if refit else checkpoint_localiser(path)
    if found.origin == "stored":
        print(f"{path}: already stores a localiser")
        return
    dtype = torch.float16 if read_info(path).config.pretrained else torch.float32
    seconds = round(time.time() - started, 1)
    description = {"tap": found.tap.to_dict(), "fit": FitSettings(max_images=MAX_IMAGES).to_dict(), "seconds": seconds}
    add_to_checkpoint(path, found.localiser.to_tensors(dtype), {"localiser": description})
    for sidecar in sidecar_paths(path):
        sidecar.unlink(missing_ok=True)
    print(f"{path}: localiser fitted in {seconds} s and stored")


if __name__ == "__main__":
    args = sys.argv[1:]
    refit = "--refit" in args
    for name in (a for a in args if a != "--refit"):
        attach(Path(name), refit)
