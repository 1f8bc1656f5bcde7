"""Copy a run's checkpoint into ``checkpoints/`` for shipping: weights in float16, no resume state.

Usage: python scripts/ship_checkpoint.py RUN/last.safetensors checkpoints/NAME.safetensors

Keeps the metadata and the ``model.*``, ``familiarity.*`` and ``localiser.*`` (the shift view's
scorer) tensors (floating ones stored as
float16, which halves the file; loading copies them into the float32 model); drops the optimizer
and RNG state that only ``--resume`` needs. The copy is checked to load and to predict like the
original on random inputs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import save_file

from tada_core.checkpoint import METADATA_KEY, atomic_write, load_checkpoint, read_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source", type=Path)
    parser.add_argument("destination", type=Path)
    args = parser.parse_args()
    info, tensors = read_checkpoint(args.source)
    kept = {
        key: (value.half() if value.is_floating_point() else value).contiguous()
        for key, value in tensors.items()
        if key.startswith(("model.", "familiarity.", "localiser."))
    }
    atomic_write(args.destination, lambda tmp: save_file(kept, tmp, metadata={METADATA_KEY: info.to_json()}))
    original, _ = load_checkpoint(args.source)
    shipped, _ = load_checkpoint(args.destination)
    size = shipped.image_size
    x = torch.randn(8, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        same = (original(x).logits.argmax(1) == shipped(x).logits.argmax(1)).float().mean().item()
    print(f"{args.destination}: {args.destination.stat().st_size / 2**20:.1f} MiB, same predictions {same:.0%}")


if __name__ == "__main__":
    main()
