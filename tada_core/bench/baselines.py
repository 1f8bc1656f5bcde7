"""The maps the shift view is measured against: a domain classifier's Grad-CAM, Grad-CAM++ and
occlusion, and two trivial maps (a centre prior and the Sobel edge magnitude).

The domain classifier tells source (0) from target (1) images; it is trained on the pair's
training images only (photos: ImageNet EfficientNet-Lite0 with a 2-way head, fine-tuned with
Adam 3e-4 for 4 epochs of 32 with flips; digits: the LeNet trunk from scratch, 3 epochs). Its maps
of a held-out target image for the class "target":

* Grad-CAM / Grad-CAM++ (pytorch-grad-cam, the PyPI package ``grad-cam``) at its last
  convolution (Lite0 ``conv_head``, 7×7; LeNet's second conv block, 14×14), upsampled to the image;
* occlusion: each cell of the 7×7 grid set to the image's mean colour in turn; the map is the drop
  of the target-vs-source logit difference.

Trivial maps, which a useful view must beat: ``centre`` = −(distance of the cell to the image
centre)², ``sobel`` = the mean Sobel gradient magnitude of the cell's pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tada_core.errors import TadaError
from tada_core.model.backbones import LeNet
from tada_core.model.lite0 import load_lite0_imagenet

GRADCAM_PACKAGE = "grad-cam"


class BaselineError(TadaError):
    """A baseline of the localisation benchmark cannot run (an optional package is missing)."""


class _LeNetDomain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = LeNet()
        self.head = nn.Linear(64, 2)
        for module in self.trunk.modules():
            if isinstance(module, nn.ReLU):
                module.inplace = False  # Grad-CAM keeps the activation it reads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x).mean(dim=(2, 3)))


def domain_classifier(
    kind: str, source: torch.Tensor, target: torch.Tensor, *, epochs: int | None = None, seed: int = 0
) -> tuple[nn.Module, nn.Module]:
    """Train a source-vs-target classifier (``kind`` ``photos`` or ``digits``) on normalised images.

    Returns:
        ``(network in eval mode, the layer Grad-CAM reads)``.
    """
    torch.manual_seed(seed)
    if kind == "photos":
        net = load_lite0_imagenet(1000)
        net.classifier = nn.Linear(net.classifier.in_features, 2)
        layer, lr, epochs = net.conv_head, 3e-4, epochs or 4
    else:
        net = _LeNetDomain()
        layer, lr, epochs = net.trunk.features[6], 1e-3, epochs or 3
    x = torch.cat([source, target])
    y = torch.cat([torch.zeros(len(source)), torch.ones(len(target))]).long()
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 32):
            idx = order[start : start + 32]
            batch = x[idx].clone()
            flip = torch.rand(len(idx)) < 0.5
            batch[flip] = batch[flip].flip(-1)
            loss = F.cross_entropy(net(batch), y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return net.eval(), layer


def domain_accuracy(net: nn.Module, source: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Held-out accuracy of the domain classifier on each domain."""
    with torch.no_grad():
        return {
            "source": round(float((net(source).argmax(1) == 0).float().mean()), 4),
            "target": round(float((net(target).argmax(1) == 1).float().mean()), 4),
        }


def grad_cam(net: nn.Module, layer: nn.Module, images: torch.Tensor, method: str = "gradcam") -> np.ndarray:
    """Grad-CAM (``gradcam``) or Grad-CAM++ (``gradcampp``) maps for the class "target", (N, S, S) in [0, 1].

    Raises:
        BaselineError: the package ``grad-cam`` is not installed.
    """
    try:
        from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError:
        raise BaselineError(
            f"the Grad-CAM baselines need the package {GRADCAM_PACKAGE} (pip install {GRADCAM_PACKAGE}, "
            "it is in requirements-dev.txt); or leave them out with --baselines occlusion,centre,sobel"
        ) from None
    cls = {"gradcam": GradCAM, "gradcampp": GradCAMPlusPlus}[method]
    maps = []
    with cls(model=net, target_layers=[layer]) as cam:
        for start in range(0, len(images), 16):
            batch = images[start : start + 16]
            maps.append(cam(input_tensor=batch, targets=[ClassifierOutputTarget(1)] * len(batch)))
    return np.concatenate(maps).astype(np.float32)


@torch.no_grad()
def occlusion(net: nn.Module, images: torch.Tensor, grid: int = 7) -> np.ndarray:
    """Drop of the target-vs-source logit difference when each cell is set to the image's mean, (N, grid, grid)."""
    side = images.shape[-1]
    cell = side // grid
    out = np.zeros((len(images), grid, grid), np.float32)
    for i, image in enumerate(images):
        logits = net(image[None])[0]
        base = float(logits[1] - logits[0])
        batch = image[None].repeat(grid * grid, 1, 1, 1)
        mean = image.mean(dim=(1, 2), keepdim=True)
        for k in range(grid * grid):
            r, c = divmod(k, grid)
            batch[k, :, r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = mean
        occluded = net(batch)
        out[i] = (base - (occluded[:, 1] - occluded[:, 0])).reshape(grid, grid).numpy()
    return out


def centre_prior(n: int, grid: int) -> np.ndarray:
    """−(squared distance of each cell to the image centre), (n, grid, grid)."""
    r = (np.arange(grid) - (grid - 1) / 2) ** 2
    return np.broadcast_to(-(r[:, None] + r[None]), (n, grid, grid)).astype(np.float32).copy()


def sobel(images: np.ndarray, grid: int) -> np.ndarray:
    """Mean Sobel gradient magnitude per cell of uint8 images (N, S, S, 3) RGB or (N, S, S), (N, grid, grid)."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    x = x.mean(-1) if x.ndim == 4 else x  # grey
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    weight = torch.stack([kx, kx.T])[:, None]  # (2, 1, 3, 3)
    gradients = F.conv2d(x[:, None], weight, padding=1)  # (N, 2, S, S)
    magnitude = gradients.pow(2).sum(1, keepdim=True).sqrt()
    return F.adaptive_avg_pool2d(magnitude, grid)[:, 0].numpy()
