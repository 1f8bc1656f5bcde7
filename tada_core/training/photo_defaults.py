"""The defaults that suit a few hundred photos on a CPU: the pretrained EfficientNet-Lite0.

``tada train --source DIR --target DIR --backbone efficientnet_lite0 --pretrained`` picks them
(and so does the app's Train tab) for every option the user did not set:

    train.frozen_backbone  True   encode each image once, train the rest on the cache
                                  (tada_core/training/feature_cache.py; ``--fine-tune`` turns it off)
    train.iters            300    steps of 32 + 32 cached maps (~1 min on 2 busy CPU cores)
    train.batch_size       32
    train.eval_every       100
    train.eval_max         2000   each evaluation, and the calibration of the accuracy estimate, on at
                                  most 2000 images a domain (class-stratified held-out source, seeded
                                  target sample): thousands of photos evaluate in bounded time; fewer
                                  than 2000 are evaluated exactly as with no cap
    image_size             224    resize 256 → centre crop 224 for the cache (7×7 map, K = 49);
                                  fine-tuning keeps random crop 224 + flip
    pseudo_weight          1      the adaptive variants also fit the target images that have a
                                  mutual-nearest-neighbour pseudo-label (training/pseudo_labels.py);
                                  only with the frozen cache (``--fine-tune`` keeps the paper's 0)

docs/RESULTS.md has the measurement behind them (photos → photos-sketch).

Example:
    >>> with_photo_defaults({"backbone": "efficientnet_lite0", "pretrained": True})["train"]["iters"]
    300
"""

from __future__ import annotations

import copy
from typing import Any

PHOTO_BACKBONES = ("efficientnet_lite0",)
PHOTO_DEFAULTS: dict[str, Any] = {
    "train.frozen_backbone": True,
    "train.iters": 300,
    "train.batch_size": 32,
    "train.eval_every": 100,
    "train.eval_max": 2000,
    "image_size": 224,
    "pseudo_weight": 1.0,
}
NEEDS_CACHE = ("pseudo_weight",)  # set only when the run keeps the frozen cache


def wants_photo_defaults(data: dict[str, Any]) -> bool:
    """Whether a config mapping asks for a pretrained photo backbone."""
    return data.get("backbone") in PHOTO_BACKBONES and bool(data.get("pretrained"))


def with_photo_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a nested config mapping) with :data:`PHOTO_DEFAULTS` filled in where unset.

    Unchanged unless :func:`wants_photo_defaults`; values already present always win.
    """
    if not wants_photo_defaults(data):
        return data
    data = copy.deepcopy(data)
    frozen = data.get("train", {}).get("frozen_backbone", PHOTO_DEFAULTS["train.frozen_backbone"])
    for dotted, value in PHOTO_DEFAULTS.items():
        if dotted in NEEDS_CACHE and not frozen:
            continue
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node.setdefault(leaf, value)
    return data
