"""Image transforms: PIL image in, normalised float tensor ``(3, S, S)`` out.

Two regimes, chosen by the image size ``S``:

* ``S <= 64`` (digits): resize to ``S×S``, scale to [0, 1], normalise. No augmentation, even for
  training, so the whole domain can be precomputed once (:func:`arrays_to_tensor`).
* ``S > 64`` (ImageNet-style, e.g. 224): resize to a ``R×R`` square with ``R = round(256·S/224)``
  (the ``ResizeImage(256)`` of the TADA/CDAN code and TLlib), then a random ``S×S`` crop and a
  random horizontal flip for training, or the centre ``S×S`` crop for evaluation.

Colour order is always RGB; values are ``(x / 255 - mean) / std`` per channel.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms as T

Norm = tuple[tuple[float, float, float], tuple[float, float, float]]

DIGITS_NORM: Norm = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
"""Mean and std that map [0, 1] to [-1, 1]; used for the digit domains."""

IMAGENET_NORM: Norm = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
"""ImageNet mean and std (RGB order), for ImageNet-pretrained backbones."""

SMALL_IMAGE_MAX = 64
"""Largest image size treated as "digits": deterministic resize only, no augmentation."""


def as_norm(norm: Norm) -> Norm:
    """Return ``norm`` as a hashable pair of float 3-tuples; raise ``ValueError`` if malformed."""
    mean, std = (tuple(float(v) for v in part) for part in norm)
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"norm must be ((m, m, m), (s, s, s)) with s > 0, got {norm!r}")
    return mean, std  # type: ignore[return-value]


def is_deterministic(image_size: int) -> bool:
    """Whether :func:`build_transform` is the same for train and test (no random augmentation)."""
    return image_size <= SMALL_IMAGE_MAX


def _to_rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def build_transform(image_size: int, norm: Norm, train: bool) -> T.Compose:
    """Build the transform for one domain.

    Args:
        image_size: side ``S`` of the square output.
        norm: ``(mean, std)`` per RGB channel, e.g. :data:`DIGITS_NORM` or :data:`IMAGENET_NORM`.
        train: add random crop and flip (only when ``S > 64``).

    Returns:
        A callable taking a PIL image (any mode; converted to RGB) and returning a float32 tensor
        of shape ``(3, S, S)``, RGB order, values ``(x / 255 - mean) / std``.
    """
    mean, std = as_norm(norm)
    if is_deterministic(image_size):
        geometry = [T.Resize((image_size, image_size), antialias=True)]
    else:
        resize = round(256 * image_size / 224)
        geometry = [T.Resize((resize, resize), antialias=True)]
        if train:
            geometry += [T.RandomCrop(image_size), T.RandomHorizontalFlip()]
        else:
            geometry += [T.CenterCrop(image_size)]
    return T.Compose([T.Lambda(_to_rgb), *geometry, T.ToTensor(), T.Normalize(mean, std)])


def arrays_to_tensor(images: np.ndarray, image_size: int, norm: Norm) -> torch.Tensor:
    """Resize and normalise a whole stack of uint8 images at once (the digits fast path).

    Args:
        images: uint8 array ``(N, H, W)`` (grey) or ``(N, H, W, 3)`` (RGB), values 0..255.
        image_size: output side ``S`` (bilinear, antialiased when shrinking).
        norm: ``(mean, std)`` per RGB channel.

    Returns:
        float32 tensor ``(N, C, S, S)``: ``C = 1`` for grey input when ``norm`` is the same for all
        three channels (expand it to 3 channels when indexing), else ``C = 3``, RGB order.
    """
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in as_norm(norm))
    x = torch.from_numpy(np.array(images, dtype=np.uint8))  # a writable copy
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
    x = x.float().div_(255)
    if tuple(x.shape[-2:]) != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True).clamp_(0, 1)
    if x.shape[1] == 1 and bool((mean == mean[0, 0]).all() and (std == std[0, 0]).all()):
        mean, std = mean[:, :1], std[:, :1]
    elif x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return x.sub_(mean).div_(std)
