"""How the shift localiser scales with the number of training images (issue 18).

A pair holds 160 + 160 training images; its generator draws another, independent 160 + 160 crops of
the same photos for every other seed. This script fits the default localiser (label-free) or the
supervised reference of ``scripts/localiser_ceiling.py`` on the training maps of seeds 0..S-1
together (160·S images a domain) and scores it on seed 0's 60 held-out targets, like
`tada bench localisation`: does a user with more photos get a better map?

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python scripts/localiser_data_scaling.py OUT.jsonl shift-dust 3 [free|free345|supervised [EPOCHS]]

Maps (the default tap) are cached under /tmp/tada-localiser-maps beside the variant script's.
"""

import sys
import time

import torch

from scripts.localiser_ceiling import cell_labels, fit_supervised
from scripts.localiser_variants import CACHE, TAPS, encode, record, score, taps
from tada_core.bench.localisation import case_for, parse_pair
from tada_core.data.shift_pairs import shift_pair
from tada_core.training.localiser_fit import FitSettings, fit_localiser

KEY = "b23u2"  # the default tap (tap_for("efficientnet_lite0"))


def train_maps(pair: str, seed: int) -> dict:
    """The default tap's maps of seed ``seed``'s training images, with the target cell labels."""
    if seed == 0:
        d = encode(pair, KEY, TAPS[KEY])
        d = {"source": d["source"], "target": d["target"]}
    else:
        path = CACHE / f"{pair}__{KEY}__seed{seed}.pt"
        if path.exists():
            d = torch.load(path)
        else:
            x = case_for(pair, seed).train_x
            d = {
                r: torch.cat([taps(v[i : i + 16], TAPS[KEY]).half() for i in range(0, len(v), 16)])
                for r, v in x.items()
            }
            torch.save(d, path)
    kind, mode, photos = parse_pair(pair)
    masks = shift_pair(kind, mode, photos, seed).target.masks
    return d | {"labels": cell_labels(masks, d["target"].shape[-1])}


def run(pair: str, seeds: int, how: str = "free", epochs: int = 30) -> dict:
    if how not in ("free", "supervised") and not (how.startswith("free") and how[4:].isdigit()):
        raise SystemExit(f"unknown fit {how!r}: free, free<scorer seeds> (e.g. free345) or supervised")
    t0 = time.time()
    parts = [train_maps(pair, s) for s in range(seeds)]
    test = encode(pair, KEY, TAPS[KEY])
    source, target = (torch.cat([p[r] for p in parts]) for r in ("source", "target"))
    t1 = time.time()
    if how.startswith("free"):  # "free": scorer seeds 0, 1, 2 (the default); "free345": 3, 4, 5
        scorers = tuple(int(c) for c in how[4:]) or FitSettings().seeds
        loc = fit_localiser(source, target, FitSettings(seeds=scorers))
        variant = f"data-x{seeds}:ctxk16" + ("" if scorers == FitSettings().seeds else f"s{how[4:]}")
    else:
        loc = fit_supervised(source, target, torch.cat([p["labels"] for p in parts]), epochs=epochs)
        variant = f"data-x{seeds}:supervised-ceiling:{KEY}:e{epochs}"
    t2 = time.time()
    times = {"encode_s": round(t1 - t0, 1), "fit_s": round(t2 - t1, 1)}
    return {"pair": pair, "variant": variant, "images": len(target)} | score(loc, test) | times


if __name__ == "__main__":
    torch.set_num_threads(1)
    out, pairs, seeds = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
    how = sys.argv[4] if len(sys.argv) > 4 else "free"
    epochs = int(sys.argv[5]) if len(sys.argv) > 5 else 30
    for pair in pairs:
        record(out, run(pair, seeds, how, epochs))
