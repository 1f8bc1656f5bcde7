"""Gradient reversal layer (Ganin & Lempitsky, 2015) and the λ_p schedule of METHOD.md.

Forward is the identity; backward multiplies the incoming gradient by −λ. Placed in front of a
discriminator, the discriminator minimises its loss while the features below maximise it.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, source: _Coefficient) -> torch.Tensor:  # type: ignore[override]
        ctx.source = source
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return -ctx.source.coeff * grad, None


class _Coefficient:
    def __init__(self, coeff: float) -> None:
        self.coeff = coeff


def reverse_gradient(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Identity in the forward pass; gradient times ``-coeff`` in the backward pass."""
    return _ReverseGrad.apply(x, _Coefficient(coeff))


def grl_coefficient(progress: float, alpha: float = 10.0, max_value: float = 1.0) -> float:
    """λ_p = max_value · (2 / (1 + exp(−alpha·p)) − 1), p ∈ [0, 1] the training progress.

    Starts at 0 (discriminators not trusted yet) and rises to ≈ max_value.
    """
    p = min(max(float(progress), 0.0), 1.0)
    return max_value * (2.0 / (1.0 + math.exp(-alpha * p)) - 1.0)


class GradientReversal(nn.Module):
    """Module form of :func:`reverse_gradient`.

    ``coeff`` is read when the gradient flows back, not when the forward runs, so it may be set
    between the two: ``TADAModel.losses(out, y, progress=p)`` sets λ_p for the step it builds.
    """

    def __init__(self, coeff: float = 1.0) -> None:
        super().__init__()
        self._coefficient = _Coefficient(coeff)

    @property
    def coeff(self) -> float:
        return self._coefficient.coeff

    @coeff.setter
    def coeff(self, value: float) -> None:
        self._coefficient.coeff = float(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ReverseGrad.apply(x, self._coefficient)

    def extra_repr(self) -> str:
        return f"coeff={self.coeff:.4f}"
