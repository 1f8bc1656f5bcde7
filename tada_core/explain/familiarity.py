"""Is an upload like what a checkpoint was trained on? Two checks behind the app's notice.

1. **Feature distance** (pretrained backbones): the distance of the image's pooled, L2-normalised
   backbone features (C,) to the nearest of the checkpoint's training images (deep nearest
   neighbours, Sun et al. 2022), divided by the 99th percentile of the training images' own
   leave-one-out nearest-neighbour distances. Above ``FAR_FACTOR`` the image is unfamiliar. Frozen-backbone training stores the training features in the
   checkpoint (``familiarity.features``, float16 (N, C), nearly free from the cache); for other
   checkpoints they are computed from its domains when those load (:func:`reference_for`).
2. **Input size** (small-input models such as the 28×28 digits ones, whose features do not
   separate photos from digits): an upload whose shorter side is more than ``SHRINK_FACTOR``
   times the model's input side is shrunk so much that it cannot be what the model was trained on.

Measured on the shipped photo model (relative distances): unseen crops of its photos 0.4–0.7; a digit,
scikit-image text, rocket, horse and hubble photos 1.2–1.4 (docs/RESULTS.md).

Example:
    >>> ref = reference_for(model, info, path)
    >>> notes = familiarity_notes(model, info, ref, images)   # one message or None per image
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open

from tada_core.checkpoint import CheckpointInfo
from tada_core.data import load_domain
from tada_core.errors import TadaError
from tada_core.explain.inference import preprocess
from tada_core.model import TADAModel
from tada_core.model.inputs import image_size_for, norm_for

FAR_FACTOR = 1.0  # unfamiliar beyond the 99th percentile of the training images' own distances
SHRINK_FACTOR = 4  # small-input models: an upload more than 4× larger than the input is not theirs
SMALL_INPUT = 64  # input sides up to this are "small" (the digits regime of the transforms)
FEATURES_KEY = "familiarity.features"


@dataclass
class FeatureReference:
    """L2-normalised training features and the 99th percentile of their nearest-neighbour distances."""

    features: np.ndarray  # (N, C), unit rows
    threshold: float

    def distances(self, features: np.ndarray, exclude_self: bool = False) -> np.ndarray:
        """Distance of each row of ``features`` (M, C), normalised, to its nearest training row; (M,)."""
        unit = _normalise(features)
        squared = np.maximum(2.0 - 2.0 * unit @ self.features.T, 0.0)  # (M, N)
        if exclude_self:
            np.fill_diagonal(squared, np.inf)
        return np.sqrt(squared.min(axis=1))

    def relative(self, features: np.ndarray) -> np.ndarray:
        """Distances divided by the training images' 99th percentile (1 ≈ the edge of training)."""
        return self.distances(features) / self.threshold


def _normalise(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-8)


def fit_reference(features: np.ndarray) -> FeatureReference:
    """Fit a :class:`FeatureReference` on training features (N, C), N ≥ 2 (leave-one-out distances)."""
    ref = FeatureReference(_normalise(features), 1.0)
    ref.threshold = float(np.percentile(ref.distances(features, exclude_self=True), 99)) or 1.0
    return ref


@torch.no_grad()
def pooled_features(model: TADAModel, batch: torch.Tensor) -> np.ndarray:
    """Mean over regions of the backbone map: (B, 3, S, S) → (B, C) numpy (eval mode)."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        return model.backbone(batch.to(device)).float().mean(dim=(2, 3)).cpu().numpy()
    finally:
        model.train(was_training)


def stored_features(path: str | Path) -> np.ndarray | None:
    """The training features a checkpoint file carries (frozen-backbone runs), or None."""
    with safe_open(str(path), framework="pt") as handle:
        if FEATURES_KEY not in handle.keys():  # noqa: SIM118
            return None
        return handle.get_tensor(FEATURES_KEY).float().numpy()


def reference_for(
    model: TADAModel, info: CheckpointInfo, path: str | Path, max_points: int = 256
) -> FeatureReference | None:
    """The checkpoint's reference: from its stored features, else from up to ``max_points``
    images of each of its domains when they load; None for small-input models (see check 2)
    and when neither is possible."""
    if image_size_for(info.config) <= SMALL_INPUT:
        return None
    features = stored_features(path)
    if features is None:
        kwargs = {"image_size": image_size_for(info.config), "norm": norm_for(info.config), "train": False}
        try:
            domains = [load_domain(spec, **kwargs) for spec in (info.source, info.target) if spec]
        except TadaError:
            return None
        parts = []
        for domain in domains:
            picks = np.random.default_rng(0).permutation(len(domain))[:max_points].tolist()
            parts.append(pooled_features(model, torch.stack([domain.dataset[i][0] for i in picks])))
        if not parts:
            return None
        features = np.concatenate(parts)
    return fit_reference(features)


def familiarity_notes(
    model: TADAModel, info: CheckpointInfo, ref: FeatureReference | None, images: Sequence[Image.Image]
) -> list[str | None]:
    """One message per image that looks unlike the checkpoint's training images, else None."""
    side = image_size_for(info.config)
    trained = f"{info.source} → {info.target}" if info.source else "its training domains"
    notes: list[str | None] = [None] * len(images)
    if ref is not None and images:
        batch, _ = preprocess(images, info)
        for i, score in enumerate(ref.relative(pooled_features(model, batch))):
            if score > FAR_FACTOR:
                notes[i] = (
                    f"far from what this checkpoint was trained on ({trained}): its nearest training image is "
                    f"{score:.1f}× further away (in backbone features) than for 99% of the training images; the "
                    "prediction means little"
                )
    if side <= SMALL_INPUT:
        for i, image in enumerate(images):
            if min(image.size) > SHRINK_FACTOR * side:
                notes[i] = (
                    f"this checkpoint was trained on {side}×{side} images ({trained}); this {image.width}×"
                    f"{image.height} upload is shrunk {min(image.size) / side:.0f}× to fit, so it is unlike "
                    "anything the model has seen and the prediction means little (for photos pick a photo "
                    "checkpoint, e.g. one trained with efficientnet_lite0)"
                )
    return notes
