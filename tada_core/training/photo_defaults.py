"""The defaults that suit a few hundred photos on a CPU: the pretrained EfficientNet-Lite0.

``tada train --source DIR --target DIR --backbone efficientnet_lite0 --pretrained`` picks them
(and so does the app's Train tab) for every option the user did not set:

    train.frozen_backbone  True   encode each image once, train the rest on the cache
                                  (tada_core/training/feature_cache.py; ``--fine-tune`` turns it off)
    train.iters            300    steps of 32 + 32 cached maps (~1 min on 2 busy CPU cores)
    train.batch_size       32
    train.eval_every       100
    image_size             224    resize 256 → centre crop 224 for the cache (7×7 map, K = 49);
                                  fine-tuning keeps random crop 224 + flip

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
    "image_size": 224,
}


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
    for dotted, value in PHOTO_DEFAULTS.items():
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node.setdefault(leaf, value)
    return data
