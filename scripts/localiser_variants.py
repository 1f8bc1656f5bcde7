"""Localiser variants on frozen EfficientNet-Lite0 tap maps, without training TADA (issue 18).

The shift view of a frozen-backbone checkpoint depends only on the pretrained backbone and the
pair's images, so each variant is fitted on cached tap maps and scored like `tada bench localisation`
(7x7 cell ROC-AUC, pointing; its `base` variant reproduces the bench's shift numbers exactly).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python scripts/localiser_variants.py OUT.jsonl base,ctx,k16 shift-text,shift-dust

Maps are cached under /tmp/tada-localiser-maps (about 100 MB a pair and tap).
"""

import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from tada_core.bench.localisation import case_for
from tada_core.bench.scoring import evaluate_map
from tada_core.model.backbones import build_backbone
from tada_core.training.localiser_fit import FitSettings, fit_localiser, sample_indices

CACHE = Path("/tmp/tada-localiser-maps")
_backbone = None


def backbone():
    global _backbone
    if _backbone is None:
        _backbone = build_backbone("efficientnet_lite0", pretrained=True).eval()
    return _backbone


class _Stop(Exception):
    pass


@torch.no_grad()
def taps(x, modules, up, size):
    """maps of several modules, each resized to `size` (bilinear) and concatenated."""
    if up != 1:
        x = F.interpolate(x, scale_factor=up, mode="bilinear", align_corners=False)
    net = backbone()
    got = {}
    hs = []
    for m in modules:

        def hook(mod, a, out, m=m):
            got[m] = out
            if len(got) == len(modules):
                raise _Stop

        hs.append(net.get_submodule(m).register_forward_hook(hook))
    try:
        net(x)
    except _Stop:
        pass
    finally:
        for h in hs:
            h.remove()
    outs = [
        got[m]
        if got[m].shape[-1] == size
        else F.interpolate(got[m], size=(size, size), mode="bilinear", align_corners=False)
        for m in modules
    ]
    return torch.cat(outs, 1)


def encode(pair, key, modules, up, size):
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{pair}__{key}.pt"
    if path.exists():
        return torch.load(path)
    case = case_for(pair)
    out = {}
    for role, ds in (("source", case.data.source_eval.dataset), ("target", case.data.target_eval.dataset)):
        sub = Subset(ds, sample_indices(len(ds), 500))
        out[role] = torch.cat([taps(x, modules, up, size).half() for x, _ in DataLoader(sub, batch_size=16)])
    x = case.test_x["target"]
    out["test"] = torch.cat([taps(x[i : i + 16], modules, up, size).half() for i in range(0, len(x), 16)])
    out["masks"] = torch.as_tensor(case.masks)
    torch.save(out, path)
    return out


TAPS = {
    "b2u2": (["net.blocks.2"], 2, 56),
    "b2u3": (["net.blocks.2"], 3, 84),
    "b1u1": (["net.blocks.1"], 1, 56),
    "b1u2": (["net.blocks.1"], 2, 112),
    "b23u2": (["net.blocks.2", "net.blocks.3"], 2, 56),
    "b12u2": (["net.blocks.1", "net.blocks.2"], 2, 56),
}
VARIANTS = {
    "base": ("b2u2", {}),
    "u3": ("b2u3", {}),
    "b1u1": ("b1u1", {}),
    "b1u2": ("b1u2", {}),
    "ctx": ("b23u2", {}),
    "b12": ("b12u2", {}),
    "k1": ("b2u2", {"top_k": 1}),
    "k5": ("b2u2", {"top_k": 5}),
    "e30": ("b2u2", {"epochs": 30}),
    "s5": ("b2u2", {"seeds": (0, 1, 2, 3, 4)}),
    "k16": ("b2u2", {"top_k": 16}),
    "k32": ("b2u2", {"top_k": 32}),
    "ctxk16": ("b23u2", {"top_k": 16}),
}


def run(pair, variant):
    key, kw = VARIANTS[variant]
    modules, up, size = TAPS[key]
    t0 = time.time()
    d = encode(pair, key, modules, up, size)
    t1 = time.time()
    loc = fit_localiser(d["source"], d["target"], FitSettings(**kw))
    t2 = time.time()
    with torch.no_grad():
        z = torch.cat([loc(d["test"][i : i + 16]) for i in range(0, len(d["test"]), 16)]).numpy()
    m = evaluate_map(z, d["masks"].numpy(), "high", (7, 14))
    return {
        "pair": pair,
        "variant": variant,
        "g7": m["g7"],
        "g14": m.get("g14"),
        "encode_s": round(t1 - t0, 1),
        "fit_s": round(t2 - t1, 1),
    }


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = sys.argv[1]
    variants = sys.argv[2].split(",")
    pairs = sys.argv[3].split(",")
    for variant in variants:
        for pair in pairs:
            r = run(pair, variant)
            print(json.dumps(r), flush=True)
            with open(out, "a") as f:
                f.write(json.dumps(r) + "\n")
