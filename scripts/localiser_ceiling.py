"""A supervised ceiling for the shift localiser on cached tap maps (issue 18).

The shift view's scorer is fitted without any mask: target images are bags, source images clean.
This script fits the *same* scorer (one, standardised tap map → Conv3×3 → ReLU → Conv1×1) with the
ground-truth masks of the training targets (a position is positive when its 4-px cell touches the
artefact; source positions are negative) and scores it like `tada bench localisation` on the held-out
targets: a reference the label-free fit should not be expected to beat (one seed, and it still gains
from more epochs, so a floor of the true ceiling). It separates "the features do not show the mark"
from "the label-free fit does not find it".

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python scripts/localiser_ceiling.py OUT.jsonl shift-dust,shift-watermark [TAP[+ph] [EPOCHS [N]]]

Reads the maps `scripts/localiser_variants.py` caches (TAP one of its TAPS keys, default b23u2, the
default tap; ``+ph`` appends its photometric channels), encoding them if absent; N: fit on the first N
images of each domain only (all by default).
"""

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from scripts.localiser_variants import TAPS, encode, encode_photometric, record, score
from tada_core.bench.localisation import parse_pair
from tada_core.data.shift_pairs import WINDOW, shift_pair
from tada_core.model.localiser import Localiser
from tada_core.training.localiser_fit import channel_stats, sample_indices


def cell_labels(masks: np.ndarray, side: int) -> torch.Tensor:
    """(N, 256, 256) pixel masks → (N, side, side) 0/1: the cell of the 224-px window touches the mark."""
    x0, y0, s = WINDOW
    window = torch.as_tensor(masks[:, y0 : y0 + s, x0 : x0 + s]).float()[:, None]
    return (F.adaptive_max_pool2d(window, side)[:, 0] > 0).float()


def fit_supervised(source, target, labels, epochs=10, seed=0, batch=16):
    torch.manual_seed(seed)
    loc = Localiser(source.shape[1], seeds=1)
    mean, std = channel_stats(source, target)
    loc.mean.copy_(mean)
    loc.std.copy_(std)
    maps = torch.cat([source, target])
    y = torch.cat([torch.zeros(len(source), *labels.shape[1:]), labels])
    pos = y.mean().item()
    weight = torch.tensor((1 - pos) / max(pos, 1e-6))
    opt = torch.optim.AdamW(loc.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(epochs):
        for idx in torch.randperm(len(maps)).split(batch):
            loss = F.binary_cross_entropy_with_logits(loc(maps[idx]), y[idx], pos_weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return loc.eval()


def run(pair, key="b23u2", epochs=10, n=None):
    kind, mode, photos = parse_pair(pair)
    t0 = time.time()
    tap, _, extra = key.partition("+")
    d = encode(pair, tap, TAPS[tap])
    if extra == "ph":
        p = encode_photometric(pair, d["test"].shape[-1])
        d = {r: torch.cat([d[r], p[r]], 1) for r in ("source", "target", "test")} | {"masks": d["masks"]}
    masks = shift_pair(kind, mode, photos, 0).target.masks
    idx = sample_indices(len(masks), 500)  # the targets encode() sampled, in its order
    labels = cell_labels(masks[idx], d["target"].shape[-1])
    t1 = time.time()
    loc = fit_supervised(d["source"][:n], d["target"][:n], labels[:n], epochs=epochs)
    variant = f"supervised-ceiling:{key}:e{epochs}" + (f":n{n}" if n else "")
    t2 = time.time()
    times = {"encode_s": round(t1 - t0, 1), "fit_s": round(t2 - t1, 1)}
    return {"pair": pair, "variant": variant} | score(loc, d) | times


if __name__ == "__main__":
    torch.set_num_threads(1)
    key = sys.argv[3] if len(sys.argv) > 3 else "b23u2"
    epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    n = int(sys.argv[5]) if len(sys.argv) > 5 else None
    for pair in sys.argv[2].split(","):
        record(sys.argv[1], run(pair, key, epochs, n))
