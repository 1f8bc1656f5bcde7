"""Attention inference on a list of images: what the CLI's ``tada attention`` and the app call.

Images of any size and mode (grey, palette, RGBA, 16-bit, …) go through the checkpoint's own test
transform (:func:`tada_core.data.build_transform` at the model's input size, with its backbone's
normalisation) and through the model in batches, without gradients, in eval mode.

Example:
    >>> model, info = load_checkpoint("runs/latest/best.safetensors")
    >>> [result] = predict_attention(model, info, [Image.open("digit.png")])
    >>> result.grid.shape, result.predicted, result.global_attention
    ((7, 7), '3', 1.62)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from tada_core.checkpoint import CheckpointInfo
from tada_core.data import build_transform, load_image
from tada_core.data.images import to_rgb
from tada_core.explain.gap import RegionProbes
from tada_core.explain.geometry import InputGeometry, fits, input_geometry
from tada_core.explain.result import AttentionResult
from tada_core.explain.shift import CheckpointLocaliser
from tada_core.model import TADAModel
from tada_core.model.inputs import image_size_for, norm_for
from tada_core.model.localiser import join_tap, tap_features

ImageInput = Image.Image | str | os.PathLike | bytes


def input_spec(info_or_model: CheckpointInfo | TADAModel) -> tuple[int, tuple]:
    """The input side S and the ``(mean, std)`` normalisation a checkpoint or model expects."""
    config = info_or_model.config
    size = info_or_model.image_size if isinstance(info_or_model, TADAModel) else image_size_for(config)
    return size, norm_for(config)


def _as_pil(image: ImageInput) -> Image.Image:
    if isinstance(image, Image.Image):
        return to_rgb(image)
    return load_image(image)


def preprocess(
    images: Sequence[ImageInput], info_or_model: CheckpointInfo | TADAModel
) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Turn images into the model's input batch and the matching display arrays.

    Args:
        images: PIL images of any size and mode, or paths / encoded bytes (read with
            :func:`tada_core.data.load_image`, which raises ``DataError`` for bad files).
        info_or_model: a :class:`CheckpointInfo` or the model, to read the input size and norm.

    Returns:
        ``(batch, displays)``: float32 tensor (B, 3, S, S) normalised, and B uint8 (S, S, 3) RGB
        arrays of exactly those pixels un-normalised.
    """
    size, norm = input_spec(info_or_model)
    transform = build_transform(size, norm, train=False)
    if not images:
        return torch.empty(0, 3, size, size), []
    batch = torch.stack([transform(_as_pil(image)) for image in images])  # (B, 3, S, S)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in norm)
    pixels = (batch * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
    return batch, list(pixels.permute(0, 2, 3, 1).numpy())


def _original(image: Image.Image, image_size: int) -> tuple[np.ndarray, InputGeometry]:
    """The user's image (at most 1024 px on its long side) and where the model's input lies in it, in
    the pixels of the image as given (:meth:`InputGeometry.scaled` maps it onto the kept copy)."""
    width, height = fits(*image.size)
    kept = image if (width, height) == image.size else image.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(kept), input_geometry(*image.size, image_size)


@torch.no_grad()
def _forward(
    model: TADAModel, batch: torch.Tensor, probes: RegionProbes | None, localiser: CheckpointLocaliser | None
) -> dict[str, torch.Tensor | np.ndarray | None]:
    """One forward pass; the backbone's map (for the probes) and, for a localiser reading the input
    at 1×, its tap map are captured by hooks on the way. A tap on the upsampled input is one more
    forward of the backbone's first stages."""
    device = next(model.parameters()).device
    captured: dict[str, torch.Tensor] = {}
    hooks = [model.backbone.register_forward_hook(lambda module, args, output: captured.setdefault("f", output))]
    same_input = localiser is not None and localiser.tap.upsample == 1
    taps: dict[str, torch.Tensor] = {}
    if same_input:
        for name in filter(None, (localiser.tap.module, localiser.tap.context)):
            hooks.append(
                model.backbone.get_submodule(name).register_forward_hook(
                    lambda module, args, output, name=name: taps.setdefault(name, output)
                )
            )
    try:
        x = batch.to(device)
        out = model(x)
        if localiser is not None:
            captured["tap"] = (
                join_tap(localiser.tap, taps) if same_input else tap_features(model.backbone, localiser.tap, x)
            )
    finally:
        for hook in hooks:
            hook.remove()
    shift = None
    if localiser is not None:
        shift = torch.sigmoid(localiser.localiser(captured["tap"].float().cpu())).numpy()  # (B, h', w')
    return {
        "gap": probes.p_target(captured["f"]) if probes is not None else None,  # (B, h, w)
        "shift": shift,
        "probs": out.logits.float().softmax(dim=1).cpu(),
        "grid": out.local_attention.float().cpu() if out.local_attention is not None else None,
        "m": out.global_attention.float().cpu() if out.global_attention is not None else None,
        "domain_prob": out.domain_logits.float().sigmoid().cpu() if out.domain_logits is not None else None,
    }


def predict_attention(
    model: TADAModel,
    info: CheckpointInfo,
    images: Sequence[ImageInput],
    top_k: int = 5,
    batch_size: int = 64,
    probes: RegionProbes | None = None,
    localiser: CheckpointLocaliser | None = None,
) -> list[AttentionResult]:
    """Local attention grid, prediction, global attention m and P(source) for each image.

    Runs without gradients in eval mode (the model's mode is restored afterwards), ``batch_size``
    images per forward pass. With ``probes`` (fitted on this model's region features, e.g. by
    :func:`tada_core.explain.gap.checkpoint_gap`) each result also carries the domain-gap grid, from the
    same forward pass; with ``localiser`` (:func:`tada_core.explain.shift.checkpoint_localiser`) the
    shift view, from the same pass for digits and one partial pass on the 2× input for photos.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    names = info.class_names
    size, _ = input_spec(info)
    k = max(1, min(top_k, len(names)))
    was_training = model.training
    model.eval()
    results: list[AttentionResult] = []
    try:
        for start in range(0, len(images), batch_size):
            pils = [_as_pil(image) for image in images[start : start + batch_size]]
            batch, displays = preprocess(pils, info)
            out = _forward(model, batch, probes, localiser)
            for i, display in enumerate(displays):
                original, geometry = _original(pils[i], size)
                probs = out["probs"][i].numpy()
                order = np.argsort(-probs, kind="stable")[:k]
                results.append(
                    AttentionResult(
                        image=display,
                        grid=out["grid"][i].numpy() if out["grid"] is not None else None,
                        probs=probs,
                        top_k=[(names[j], float(probs[j])) for j in order],
                        predicted=names[order[0]],
                        global_attention=float(out["m"][i]) if out["m"] is not None else None,
                        domain_prob=float(out["domain_prob"][i]) if out["domain_prob"] is not None else None,
                        gap=out["gap"][i] if out["gap"] is not None else None,
                        shift=out["shift"][i] if out["shift"] is not None else None,
                        original=original,
                        geometry=geometry,
                        shift_fitted_on=localiser.localiser.fitted_on if localiser is not None else None,
                    )
                )
    finally:
        model.train(was_training)
    return results
