"""The Attention tab's "this upload is unlike the checkpoint's training images" notice.

Wraps :mod:`tada_core.explain.familiarity` with a small cache of references keyed by checkpoint file and
modification time (fitting one can take seconds when it is computed from the domains).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from tada_core.checkpoint import CheckpointInfo
from tada_core.explain.familiarity import FeatureReference, familiarity_notes, reference_for
from tada_core.model import TADAModel

CACHE_SIZE = 4
_CACHE: OrderedDict[tuple[str, int], FeatureReference | None] = OrderedDict()
_LOCK = threading.Lock()


def cached_reference(path: Path, model: TADAModel, info: CheckpointInfo) -> FeatureReference | None:
    """The checkpoint's :class:`FeatureReference`, fitted once per file version."""
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = reference_for(model, info, path)
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
        _CACHE.move_to_end(key)
        return _CACHE[key]


def upload_notes(path: Path, model: TADAModel, info: CheckpointInfo, images: Sequence[Image.Image]) -> list[str | None]:
    """One notice per image that is far from what the checkpoint at ``path`` was trained on, else None."""
    return familiarity_notes(model, info, cached_reference(path, model, info), images)
