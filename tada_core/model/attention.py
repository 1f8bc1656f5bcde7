"""Transferable attention: K region discriminators (local) and the entropy-based weights.

Local attention (paper eq. 3–4): each of the K = H·W regions f^k of the feature map has its own
discriminator G_d^k with output d̂^k. The weight of a region is ``w^k = 1 − H₂(d̂^k)`` and the
attended features are the residual ``h^k = (1 + w^k)·f^k``, so every region keeps at least its
own weight. Global attention ``m = 1 + H₂(d̂)`` weights each image's prediction entropy in the
attentive entropy loss.

All entropies here are binary entropies in bits (log base 2, i.e. normalised): H₂ ∈ [0, 1], so
w ∈ [0, 1] and m ∈ [1, 2]. Domain labels: source = 1, target = 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def binary_entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """H₂(σ(z)) = −p·log₂p − (1−p)·log₂(1−p) with p = σ(z), computed stably from logits z.

    Shape: any; output has the input's shape, values in [0, 1].
    """
    p = torch.sigmoid(logits)
    nats = -(p * F.logsigmoid(logits) + (1.0 - p) * F.logsigmoid(-logits))
    return nats / math.log(2.0)


def local_attention(region_logits: torch.Tensor) -> torch.Tensor:
    """w^k = 1 − H₂(d̂^k) for region discriminator logits (B, K); values in [0, 1]."""
    return 1.0 - binary_entropy_from_logits(region_logits)


def global_attention(domain_logits: torch.Tensor) -> torch.Tensor:
    """m = 1 + H₂(d̂) for global discriminator logits (B,); values in [1, 2]."""
    return 1.0 + binary_entropy_from_logits(domain_logits)


class RegionDiscriminators(nn.Module):
    """K independent two-layer discriminators, one per region, run as one batched matmul.

    Region k has its own weights: ``d^k(f) = W2_k · dropout(relu(W1_k f + b1_k)) + b2_k``.
    Parameters are stored as (K, C, hidden) tensors and applied with ``torch.baddbmm``, so there
    is no Python loop over regions. Initialised like ``nn.Linear`` for every region.

    Args:
        num_regions: K.
        in_channels: C, the channels of the feature map.
        hidden: hidden width of each discriminator.
        dropout: dropout probability after the hidden layer.

    Shape:
        - input: (B, K, C) region features
        - output: (B, K) logits (source = 1, target = 0)
    """

    def __init__(self, num_regions: int, in_channels: int, hidden: int = 64, dropout: float = 0.5) -> None:
        super().__init__()
        self.num_regions, self.in_channels, self.hidden = num_regions, in_channels, hidden
        self.weight1 = nn.Parameter(torch.empty(num_regions, in_channels, hidden))
        self.bias1 = nn.Parameter(torch.empty(num_regions, 1, hidden))
        self.weight2 = nn.Parameter(torch.empty(num_regions, hidden, 1))
        self.bias2 = nn.Parameter(torch.empty(num_regions, 1, 1))
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for weight, bias, fan_in in (
            (self.weight1, self.bias1, self.in_channels),
            (self.weight2, self.bias2, self.hidden),
        ):
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(weight, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)

    def forward(self, regions: torch.Tensor) -> torch.Tensor:
        x = regions.transpose(0, 1)  # (K, B, C)
        hidden = torch.relu(torch.baddbmm(self.bias1, x, self.weight1))  # (K, B, hidden)
        logits = torch.baddbmm(self.bias2, self.dropout(hidden), self.weight2)  # (K, B, 1)
        return logits.squeeze(-1).transpose(0, 1)  # (B, K)

    def extra_repr(self) -> str:
        return f"regions={self.num_regions}, in_channels={self.in_channels}, hidden={self.hidden}"


class DomainDiscriminator(nn.Module):
    """Global discriminator G_d: Linear–ReLU–Dropout ×2 then Linear → one logit per image.

    With ``batch_norm`` each hidden Linear is followed by BatchNorm (TLlib's digits discriminator);
    ``dropout=0`` leaves the dropout layers out.

    Shape: (B, D) → (B,).
    """

    def __init__(self, in_features: int, hidden: int = 1024, dropout: float = 0.5, batch_norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width_in in (in_features, hidden):
            layers.append(nn.Linear(width_in, hidden))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(nn.ReLU(inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers, nn.Linear(hidden, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)
