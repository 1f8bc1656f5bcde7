"""The calibration ladder: the held-out source, augmented at increasing severity s = 1, 2, …

A held-out source that the model classifies perfectly says nothing about how confident it is when
it is wrong (a temperature fitted on it runs to the grid's floor). The ladder supplies labelled
mistakes at several amounts of shift: each rung is ``copies`` augmented copies of every held-out
image at severity s. The augmentations are generic corruptions, fitted to no target:

* ``small`` images (≤ 64 px, digits), in [−1, 1] units: a random affine map (rotation ±8s°, scale
  ±7s %, shift ±5s % of the side; the border is black), a Gaussian blur (σ = 0.35s px), contrast
  ×U(1 − 0.15s, 1), brightness ±0.1s, a tint ×U(1 ± 0.15s) per channel and noise (σ = 0.08s).
* ``large`` images (photos), in [0, 1] units: a random square crop of U(max(0.3, 1 − 0.15s), 1) of
  the side resized back, brightness and contrast ×U(max(0.25, 1 − 0.15s), 1 + 0.15s), saturation
  ×U(max(0, 1 − 0.2s), 1 + 0.2s) or grey with probability 0.15s, a Gaussian blur of σ ~ U(0, 0.8s)
  px, noise σ = 4s/255 and JPEG quality max(10, 90 − 16s).

Every augmented image is drawn from its own generator seeded by (recipe seed, s, copy, image):
the rungs are the same at every evaluation and in every run on a source, whatever the batching,
and the global RNG is never touched (evaluating cannot change training).
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from tada_core.data.transforms import Norm, as_norm, is_deterministic

SEVERITIES = (1, 2, 3, 4, 5)
STOP_ACCURACY = 75.0  # stop after the first rung whose accuracy (%) is below this
MIN_RUNG_IMAGES = 400  # copies per rung: enough for this many images, at most max_copies
LADDER_SEED = 0


@dataclass(frozen=True)
class LadderRecipe:
    """How the rungs are made (stored in the checkpoint beside the temperatures).

    Attributes:
        kind: ``small`` or ``large`` (see the module docstring).
        copies: augmented copies of each held-out image per rung.
        severities: the rungs tried, in order.
        stop_accuracy: the ladder stops after the first rung below this accuracy (%).
        seed: the ladder's seed (not the training seed).
    """

    kind: str
    copies: int
    severities: tuple[int, ...] = SEVERITIES
    stop_accuracy: float = STOP_ACCURACY
    seed: int = LADDER_SEED

    def to_dict(self) -> dict:
        return {**asdict(self), "severities": list(self.severities)}

    @classmethod
    def from_dict(cls, data: dict) -> LadderRecipe:
        return cls(
            kind=str(data["kind"]),
            copies=int(data["copies"]),
            severities=tuple(int(s) for s in data.get("severities", SEVERITIES)),
            stop_accuracy=float(data.get("stop_accuracy", STOP_ACCURACY)),
            seed=int(data.get("seed", LADDER_SEED)),
        )


@dataclass
class Ladder:
    """Rungs made in advance (frozen-backbone mode: encoded once, with the other cached maps)."""

    recipe: LadderRecipe
    rungs: dict[int, Dataset]


def recipe_for(image_size: int, held_out: int, *, max_copies: int = 8) -> LadderRecipe:
    """The recipe for a source of ``image_size`` px with ``held_out`` held-out images: ``small``
    augmentations up to 64 px, ``large`` above; copies = ⌈400 / held_out⌉ clipped to [1, max_copies]."""
    copies = min(max_copies, max(1, math.ceil(MIN_RUNG_IMAGES / max(held_out, 1))))
    return LadderRecipe(kind="small" if is_deterministic(image_size) else "large", copies=copies)


def _uniform(generator: torch.Generator, low: float, high: float, shape: tuple[int, ...] = ()) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64).float()


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (3, H, W) with standard deviation ``sigma`` px (edges replicated)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    out = F.pad(image[None], (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)[0]


def augment_small(image: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """``image`` (3, S, S) in [−1, 1] → the same at ``severity`` (see the module docstring)."""
    s = float(severity)
    angle = math.radians(float(_uniform(generator, -8 * s, 8 * s)))
    scale = float(_uniform(generator, 1 - 0.07 * s, 1 + 0.07 * s))
    shift = _uniform(generator, -0.05 * s, 0.05 * s, (2,))
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    theta = torch.tensor([[cos, -sin, float(shift[0])], [sin, cos, float(shift[1])]])[None]
    grid = F.affine_grid(theta, [1, *image.shape], align_corners=False)
    out = F.grid_sample(image[None] + 1, grid, align_corners=False, padding_mode="zeros")[0] - 1  # black border
    out = _blur(out, 0.35 * s)
    contrast = _uniform(generator, 1 - 0.15 * s, 1.0)
    brightness = _uniform(generator, -0.1 * s, 0.1 * s)
    tint = _uniform(generator, 1 - 0.15 * s, 1 + 0.15 * s, (3,)).view(3, 1, 1)
    out = out * contrast * tint + brightness
    out = out + 0.08 * s * torch.randn(out.shape, generator=generator)
    return out.clamp(-1, 1)


def augment_large(image: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """``image`` (3, H, W) in [0, 1] → the same at ``severity`` (see the module docstring)."""
    s = float(severity)
    _, height, width = image.shape
    side = int(min(height, width) * float(_uniform(generator, max(0.3, 1 - 0.15 * s), 1.0)))
    top = int(torch.randint(0, height - side + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - side + 1, (1,), generator=generator))
    crop = image[:, top : top + side, left : left + side][None]
    out = F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False, antialias=True)[0]
    low, high = max(0.25, 1 - 0.15 * s), 1 + 0.15 * s
    out = out * _uniform(generator, low, high)
    mean = out.mean()
    out = (out - mean) * _uniform(generator, low, high) + mean
    grey = out.mean(dim=0, keepdim=True)
    drop = float(torch.rand((), generator=generator)) < 0.15 * s
    saturation = 0.0 if drop else float(_uniform(generator, max(0.0, 1 - 0.2 * s), 1 + 0.2 * s))
    out = grey + (out - grey) * saturation
    sigma = float(_uniform(generator, 0.0, 0.8 * s))
    if sigma > 0.2:
        out = _blur(out, sigma)
    out = (out + (4 * s / 255) * torch.randn(out.shape, generator=generator)).clamp(0, 1)
    pixels = (out.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(max(10, 90 - 16 * s)))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        back = np.asarray(decoded.convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(back).permute(2, 0, 1).contiguous()


class AugmentedCopies(Dataset):
    """``recipe.copies`` augmented copies at ``severity`` of ``dataset[indices]`` (normalised images).

    Item ``k`` is copy ``k // n`` of image ``indices[k % n]`` with its label; it is made on demand,
    the same every time (its own seeded generator).

    Args:
        dataset: yields ``(image, label)``, image float32 (3, S, S) normalised with ``norm``.
        norm: the ``(mean, std)`` the images are normalised with (undone, augmented, redone).
    """

    def __init__(self, dataset: Dataset, indices: list[int], severity: int, recipe: LadderRecipe, norm: Norm) -> None:
        self.dataset, self.indices, self.severity, self.recipe = dataset, list(indices), int(severity), recipe
        mean, std = as_norm(norm)
        self.mean, self.std = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.indices) * self.recipe.copies

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        image, label = self.dataset[self.indices[k % len(self.indices)]]
        generator = torch.Generator().manual_seed(((self.recipe.seed * 10 + self.severity) << 32) + k)
        unit = image * self.std + self.mean  # [0, 1]
        if self.recipe.kind == "small":
            out = (augment_small(unit * 2 - 1, self.severity, generator) + 1) / 2
        else:
            out = augment_large(unit.clamp(0, 1), self.severity, generator)
        return (out - self.mean) / self.std, int(label)
