"""Research loop of issue 31: the project's model and losses trained on cached emoji maps, quickly.

Usage: OMP_NUM_THREADS=1 python scripts/styles_research.py SPEC_JSON OUT.jsonl [CACHE.pt]

SPEC_JSON, e.g. '{"pairs": [["apple", "twitter"]], "variants": ["tada"], "mode": "partial",
"iters": 300, "cfg": {"gamma": 0.3}, "adabn": true}':
- ``mode``: ``frozen`` (the 1280×7×7 maps, as ``tada train --pretrained`` caches them) or
  ``partial`` (the 192×7×7 ``blocks.5`` maps; ``blocks.6``, ``conv_head`` and ``bn2`` train at 0.1×
  the learning rate, as ``--tune-blocks 1`` does);
- ``cfg``: TADAConfig values; ``adabn``: evaluate with the target's own BatchNorm statistics.
SGD as the product (momentum 0.9 Nesterov, weight decay 5e-4, lr 0.01 · (1 + 10p)^−0.75), 32 + 32
a step, random flips of the cached maps, source and target in separate forwards. Differences from
``tada train``: no held-out source (all source images train), no calibration or selection, the
last step's accuracy on all target images. One JSON line per run.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

from tada_core.config import TADAConfig
from tada_core.data import IMAGENET_NORM, load_domain
from tada_core.data.emoji import BENCH_STYLES, DOMAIN_PREFIX
from tada_core.model import build_model
from tada_core.model.lite0 import load_lite0_imagenet


def cached_maps(path: Path) -> dict:
    if path.is_file():
        return torch.load(path)
    net = load_lite0_imagenet(0).eval()
    lower, upper = (
        nn.Sequential(net.conv_stem, net.bn1, *net.blocks[:6]),
        nn.Sequential(net.blocks[6], net.conv_head, net.bn2),
    )
    out = {}
    for style in BENCH_STYLES:
        domain = load_domain(DOMAIN_PREFIX + style, image_size=224, norm=IMAGENET_NORM, train=False)
        images = torch.stack([domain.dataset[i][0] for i in range(len(domain))])
        with torch.no_grad():
            b5 = torch.cat([lower(images[i : i + 64]) for i in range(0, len(images), 64)])
            head = torch.cat([upper(b5[i : i + 64]) for i in range(0, len(b5), 64)])
        out[style] = {"b5": b5.half(), "head": head.half(), "labels": domain.labels}
    torch.save(out, path)
    return out


def _accuracy(model, upper, maps, labels) -> float:
    with torch.no_grad():
        logits = torch.cat(
            [model.forward_map(upper(maps[k : k + 128].float())).logits for k in range(0, len(maps), 128)]
        )
    return round(100 * (logits.argmax(1) == labels).float().mean().item(), 2)


def mutual_neighbours(source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per target image: its nearest source image (cosine, each domain centred) and whether it is mutual."""
    a = nn.functional.normalize(source - source.mean(0), dim=1)
    b = nn.functional.normalize(target - target.mean(0), dim=1)
    sim = b @ a.T
    nearest_source, nearest_target = sim.argmax(1), sim.argmax(0)
    return nearest_source, nearest_target[nearest_source] == torch.arange(len(b))


def run(
    cache, src, tgt, variant, seed, mode="frozen", iters=300, lr=0.01, bs=32, cfg=None, adabn=False, pl=None
) -> dict:
    torch.manual_seed(seed)
    config = TADAConfig(
        variant=variant, backbone="efficientnet_lite0", pretrained=True, num_classes=16, image_size=224, **(cfg or {})
    )
    model = build_model(config)
    net = model.backbone.net
    upper = nn.Sequential(net.blocks[6], net.conv_head, net.bn2) if mode == "partial" else nn.Identity()
    key = "b5" if mode == "partial" else "head"
    xs, ys, xt, yt = cache[src][key], cache[src]["labels"], cache[tgt][key], cache[tgt]["labels"]
    tuned = list(upper.parameters())
    pseudo = None
    if pl and variant in pl.get("variants", ["dann", "tada"]):
        nearest, mutual = mutual_neighbours(
            cache[src]["head"].float().mean((2, 3)), cache[tgt]["head"].float().mean((2, 3))
        )
        pseudo = torch.where(mutual, ys[nearest], torch.full_like(ys[nearest], -100))
    backbone = {id(p) for p in model.backbone.parameters()}
    rest = [p for p in model.parameters() if id(p) not in backbone]
    groups = [{"params": tuned, "mult": 0.1}, {"params": rest, "mult": 1.0}]
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    for p in tuned:
        p.requires_grad_(True)
    model.train()
    upper.train()
    g = torch.Generator().manual_seed(seed)
    for step in range(iters):
        progress = step / iters
        for group in optimizer.param_groups:
            group["lr"] = lr * group["mult"] * (1 + 10 * progress) ** -0.75
        i, j = torch.randint(len(xs), (bs,), generator=g), torch.randint(len(xt), (bs,), generator=g)
        a, b = xs[i].float(), xt[j].float()
        for batch in (a, b):
            flip = torch.rand(bs, generator=g) < 0.5
            batch[flip] = batch[flip].flip(-1)
        out = model.forward_map(torch.cat([upper(a), upper(b)]), split=bs)
        loss = model.losses(out, ys[i], progress)["total"]
        if pseudo is not None and (pseudo[j] >= 0).any():
            weight = pl["weight"] * (min(1.0, progress / pl["warmup"]) if pl.get("warmup") else 1.0)
            per_row = nn.functional.cross_entropy(out.logits[bs:], pseudo[j], ignore_index=-100, reduction="none")
            if pl.get("attend") and out.global_attention is not None:  # TADA: m weights it as L_h
                per_row = per_row * out.global_attention[bs:].detach()  # m in [1, 2]
            loss = loss + weight * per_row.sum() / (pseudo[j] >= 0).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    upper.eval()
    if adabn:  # the target's own statistics in every trained BatchNorm
        layers = [m for m in [*model.modules(), *upper.modules()] if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        layers = [
            m
            for m in layers
            if not any(m is b for b in model.backbone.modules()) or any(m is u for u in upper.modules())
        ]
        for m in layers:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        with torch.no_grad():
            order = torch.randperm(len(xt), generator=torch.Generator().manual_seed(0))
            for k in range(0, len(xt) - 1, 64):
                model.forward_map(upper(xt[order[k : k + 64]].float()))
        for m in layers:
            m.eval()
    return {"acc": _accuracy(model, upper, xt, yt), "src_acc": _accuracy(model, upper, xs, ys)}


def main() -> None:
    spec, out = json.loads(sys.argv[1]), Path(sys.argv[2])
    cache = cached_maps(Path(sys.argv[3] if len(sys.argv) > 3 else "/tmp/styles_research_maps.pt"))
    pairs, variants, seeds = spec.pop("pairs"), spec.pop("variants"), spec.pop("seeds", [0])
    for (source, target), variant, seed in itertools.product(pairs, variants, seeds):
        started = time.time()
        record = {"source": source, "target": target, "variant": variant, "seed": seed, **spec}
        record |= run(cache, source, target, variant, seed, **spec)
        record["seconds"] = round(time.time() - started, 1)
        print(json.dumps(record), flush=True)
        with open(out, "a") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
