"""Probes of the designer-styles pairs on the frozen EfficientNet-Lite0 features: where the gap is.

Usage: OMP_NUM_THREADS=1 python scripts/styles_probes.py OUT.json [CACHE.pt]

For every ordered pair of ``emoji-apple``, ``emoji-google``, ``emoji-twitter`` (built by ``tada data
download emoji``), on the pooled 1280-d features of the frozen backbone (resize 256, centre crop
224, as ``tada train --pretrained`` caches them):
- ``logreg``: a logistic regression trained on all source images, accuracy on all target images;
  ``logreg_domain_std``: the same with each domain standardised by its own mean and std (AdaBN on
  the pooled features);
- ``nn_class``: the class of each target image's nearest source image (cosine), accuracy;
- ``nn_twin``: how often that nearest source image is the same emoji (both styles draw the same
  511 emojis, in the same order);
- ``source_cv``: 5-fold logistic regression within the source style (other emojis of a class:
  how well the classes generalise inside one style).
The pooled features are cached in CACHE.pt (default /tmp/styles_probe_features.pt).
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from tada_core.data import IMAGENET_NORM, load_domain
from tada_core.data.emoji import BENCH_STYLES, DOMAIN_PREFIX
from tada_core.model.lite0 import load_lite0_imagenet


def pooled_features(cache: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if cache.is_file():
        return torch.load(cache, weights_only=False)
    net = load_lite0_imagenet(0).eval()
    out = {}
    for style in BENCH_STYLES:
        domain = load_domain(DOMAIN_PREFIX + style, image_size=224, norm=IMAGENET_NORM, train=False)
        images = torch.stack([domain.dataset[i][0] for i in range(len(domain))])
        with torch.no_grad():
            pooled = torch.cat(
                [net.forward_features(images[i : i + 64]).mean((2, 3)) for i in range(0, len(images), 64)]
            )
        out[style] = (pooled.numpy(), domain.labels.numpy())
    torch.save(out, cache)
    return out


def _logreg(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    model = LogisticRegression(max_iter=2000).fit(train_x, train_y)
    return round(100 * float((model.predict(test_x) == test_y).mean()), 1)


def _standardised(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / (x.std(0) + 1e-5)


def probe_pair(source: tuple[np.ndarray, np.ndarray], target: tuple[np.ndarray, np.ndarray]) -> dict:
    (xs, ys), (xt, yt) = source, target
    unit_s = xs / np.linalg.norm(xs, axis=1, keepdims=True)
    unit_t = xt / np.linalg.norm(xt, axis=1, keepdims=True)
    nearest = (unit_t @ unit_s.T).argmax(1)
    return {
        "logreg": _logreg(xs, ys, xt, yt),
        "logreg_domain_std": _logreg(_standardised(xs), ys, _standardised(xt), yt),
        "nn_class": round(100 * float((ys[nearest] == yt).mean()), 1),
        "nn_twin": round(100 * float((nearest == np.arange(len(xt))).mean()), 1),
    }


def main() -> None:
    out = Path(sys.argv[1])
    features = pooled_features(Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/styles_probe_features.pt"))
    pairs = {f"{a}>{b}": probe_pair(features[a], features[b]) for a, b in itertools.permutations(BENCH_STYLES, 2)}
    within = {
        style: round(100 * float(cross_val_score(LogisticRegression(max_iter=2000), *features[style], cv=5).mean()), 1)
        for style in BENCH_STYLES
    }
    keys = ("logreg", "logreg_domain_std", "nn_class", "nn_twin")
    average = {k: round(float(np.mean([p[k] for p in pairs.values()])), 1) for k in keys}
    result = {"pairs": pairs, "average": average, "source_cv": within}
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
