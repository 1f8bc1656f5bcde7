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
from torch.utils.data import DataLoader, Subset

from tada_core.bench.localisation import case_for
from tada_core.bench.scoring import evaluate_map
from tada_core.model.backbones import build_backbone
from tada_core.model.localiser import Tap, tap_features
from tada_core.training.localiser_fit import FitSettings, fit_localiser, sample_indices

CACHE = Path("/tmp/tada-localiser-maps")
_backbone = None


def backbone():
    global _backbone
    if _backbone is None:
        _backbone = build_backbone("efficientnet_lite0", pretrained=True).eval()
    return _backbone


@torch.no_grad()
def taps(x: torch.Tensor, tap: Tap) -> torch.Tensor:
    return tap_features(backbone(), tap, x)


def encode(pair, key, tap):
    return _cached(pair, key, lambda x: taps(x, tap))


def _cached(pair, key, maps_of):
    """``maps_of`` (float16) of the pair's sampled source / target images and held-out targets, with
    the held-out masks, cached under CACHE as ``{pair}__{key}.pt``."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{pair}__{key}.pt"
    if path.exists():
        return torch.load(path)
    case = case_for(pair)
    out = {}
    for role, ds in (("source", case.data.source_eval.dataset), ("target", case.data.target_eval.dataset)):
        sub = Subset(ds, sample_indices(len(ds), 500))
        out[role] = torch.cat([maps_of(x).half() for x, _ in DataLoader(sub, batch_size=16)])
    x = case.test_x["target"]
    out["test"] = torch.cat([maps_of(x[i : i + 16]).half() for i in range(0, len(x), 16)])
    out["masks"] = torch.as_tensor(case.masks)
    torch.save(out, path)
    return out


TAPS = {  # (module, input scale, context): maps of 56, 84 or 112 positions a side at 224 px
    "b2u2": Tap("net.blocks.2", 2),  # the default tap before context
    "b2u3": Tap("net.blocks.2", 3),
    "b1u1": Tap("net.blocks.1", 1),
    "b1u2": Tap("net.blocks.1", 2),
    "b23u2": Tap("net.blocks.2", 2, "net.blocks.3"),  # the default tap (tap_for("efficientnet_lite0"))
    "b12u2": Tap("net.blocks.1", 2, "net.blocks.2"),
    "b12u1": Tap("net.blocks.1", 1, "net.blocks.2"),
    "b23u3": Tap("net.blocks.2", 3, "net.blocks.3"),
    "b24u2": Tap("net.blocks.2", 2, "net.blocks.4"),  # stride-16 context one stage deeper (112 ch)
    "b25u2": Tap("net.blocks.2", 2, "net.blocks.5"),  # stride-32 context (192 ch)
}
VARIANTS = {  # top_k: 3 was the default before ctx + k16 (None: FitSettings' default, h*w/196)
    "base": ("b2u2", {"top_k": 3}),
    "u3": ("b2u3", {"top_k": 3}),
    "b1u1": ("b1u1", {"top_k": 3}),
    "b1u2": ("b1u2", {"top_k": 3}),
    "ctx": ("b23u2", {"top_k": 3}),
    "b12": ("b12u2", {"top_k": 3}),
    "k1": ("b2u2", {"top_k": 1}),
    "k5": ("b2u2", {"top_k": 5}),
    "e30": ("b2u2", {"epochs": 30, "top_k": 3}),
    "s5": ("b2u2", {"seeds": (0, 1, 2, 3, 4), "top_k": 3}),
    "k16": ("b2u2", {"top_k": 16}),
    "k32": ("b2u2", {"top_k": 32}),
    "ctxk16": ("b23u2", {"top_k": 16}),  # today's default (tap_for("efficientnet_lite0"), FitSettings())
    "ctxk16s345": ("b23u2", {"top_k": 16, "seeds": (3, 4, 5)}),  # the same, other scorer seeds
    "ctxk32": ("b23u2", {"top_k": 32}),  # the default tap with a bag of 32 positions
    "ctxk64": ("b23u2", {"top_k": 64}),  # the default tap with a bag of 64 positions
    "ctxk32s345": ("b23u2", {"top_k": 32, "seeds": (3, 4, 5)}),  # ctxk32 with scorer seeds 3, 4, 5
    "bases345": ("b2u2", {"seeds": (3, 4, 5), "top_k": 3}),
    "b12u1": ("b12u1", {}),  # stride-4 blocks.1 with blocks.2 as context, at 1x: 56x56, bag 16
    "ctxu3": ("b23u3", {}),  # the default tap at 3x: 84x84, bag 36
    "ctxs6": ("b23u2", {"seeds": (0, 1, 2, 3, 4, 5)}),  # the default with 6 scorers averaged
    "ctx4": ("b24u2", {}),  # blocks.4 as the context: a larger receptive field at stride 16
    "ctx5": ("b25u2", {}),  # blocks.5 as the context: stride 32
    "h16": ("b23u2", {"hidden": 16}),  # the default with 16 hidden channels a scorer instead of 64
    "wd2": ("b23u2", {"weight_decay": 1e-2}),  # the default with 100x the weight decay
    "e5": ("b23u2", {"epochs": 5}),  # the default with 5 epochs instead of 15
    "ce30": ("b23u2", {"epochs": 30}),  # the default with 30 epochs instead of 15
    "trim25": ("b23u2", {"trim": 0.25}),  # the default, the worst-explained quarter of target bags left out
    "trim25s345": ("b23u2", {"trim": 0.25, "seeds": (3, 4, 5)}),  # trim25 with scorer seeds 3, 4, 5
    # the default + 7 photometric channels (log-luminance, its band-pass, chroma, local contrast)
    "ctxph": ("b23u2", {"photometric": True}),
}


def photometric(x: torch.Tensor, size: int) -> torch.Tensor:
    """Log-luminance, its band-pass at 3 scales, chroma and local contrast, at ``size`` positions."""
    import torch.nn.functional as F
    from torchvision.transforms.functional import gaussian_blur

    from tada_core.data.transforms import IMAGENET_NORM

    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGENET_NORM)
    raw = (x.float() * std + mean).clamp(0, 1)
    log_rgb = torch.log(raw + 0.02)
    lum = log_rgb.mean(1, keepdim=True)
    l0 = F.adaptive_avg_pool2d(lum, size)
    chans = [l0]
    for sigma in (2.0, 4.0, 8.0):
        k = int(2 * round(3 * sigma) + 1)
        chans.append(l0 - gaussian_blur(l0, [k, k], [sigma, sigma]))
    chroma = F.adaptive_avg_pool2d(log_rgb - lum, size)
    chans += [chroma[:, 0:1], chroma[:, 2:3]]
    chans.append((F.adaptive_avg_pool2d(lum**2, size) - l0**2).clamp_min(0).sqrt())
    return torch.cat(chans, 1)


def encode_photometric(pair, size):
    return _cached(pair, f"photo{size}", lambda x: photometric(x, size))


def run(pair, variant):
    key, kw = VARIANTS[variant]
    kw = dict(kw)
    extra = kw.pop("photometric", False)
    t0 = time.time()
    d = encode(pair, key, TAPS[key])
    if extra:
        p = encode_photometric(pair, d["test"].shape[-1])
        d = {r: torch.cat([d[r], p[r]], 1) for r in ("source", "target", "test")} | {"masks": d["masks"]}
    t1 = time.time()
    loc = fit_localiser(d["source"], d["target"], FitSettings(**kw))
    t2 = time.time()
    times = {"encode_s": round(t1 - t0, 1), "fit_s": round(t2 - t1, 1)}
    return {"pair": pair, "variant": variant} | score(loc, d) | times


@torch.no_grad()
def score(loc, d: dict) -> dict:
    """``{"g7", "g14"}``: the localiser's maps of the held-out targets ``d["test"]`` scored against
    ``d["masks"]`` like `tada bench localisation` (7×7 and 14×14 cells)."""
    z = torch.cat([loc(d["test"][i : i + 16]) for i in range(0, len(d["test"]), 16)]).numpy()
    m = evaluate_map(z, d["masks"].numpy(), "high", (7, 14))
    return {"g7": m["g7"], "g14": m.get("g14")}


def record(out: str, line: dict) -> None:
    """Print one result line and append it to the JSON-lines file ``out``."""
    print(json.dumps(line), flush=True)
    with open(out, "a") as f:
        f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = sys.argv[1]
    variants = sys.argv[2].split(",")
    pairs = sys.argv[3].split(",")
    for variant in variants:
        for pair in pairs:
            record(out, run(pair, variant))
