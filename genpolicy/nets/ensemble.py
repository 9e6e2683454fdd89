"""N independent MLPs evaluated as one: stacked weights, one batched matmul per layer.

An :class:`EnsembleMLP` is built *from* N ordinary ``nn.Sequential`` MLPs (:func:`genpolicy.nets.mlp`), copying their
weights, so that an ensemble starts exactly where the separate networks would (same seed, same initialization) and
its members compute the same functions: ``EnsembleMLP.stack([q1, q2])(x)[i] == q_i(x)`` up to the rounding of a
batched matmul. Inputs are ``(B, in)`` (every member sees the same rows) or ``(N, B, in)``; outputs ``(N, B, out)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["EnsembleLinear", "EnsembleLayerNorm", "EnsembleMLP"]


class EnsembleLinear(nn.Module):
    """N linear maps ``x_i W_i + b_i`` as one ``baddbmm``: weight ``(N, in, out)``, bias ``(N, 1, out)``."""

    def __init__(self, weight: Tensor, bias: Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    @classmethod
    def stack(cls, layers: list[nn.Linear]) -> "EnsembleLinear":
        return cls(torch.stack([m.weight.detach().T for m in layers]).contiguous(),
                   torch.stack([m.bias.detach()[None] for m in layers]).contiguous())

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleLayerNorm(nn.Module):
    """N LayerNorms with their own affine parameters ``(N, 1, h)``."""

    def __init__(self, weight: Tensor, bias: Tensor, eps: float):
        super().__init__()
        self.weight, self.bias, self.eps = nn.Parameter(weight), nn.Parameter(bias), eps

    @classmethod
    def stack(cls, layers: list[nn.LayerNorm]) -> "EnsembleLayerNorm":
        return cls(torch.stack([m.weight.detach()[None] for m in layers]).contiguous(),
                   torch.stack([m.bias.detach()[None] for m in layers]).contiguous(), layers[0].eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, x.shape[-1:], eps=self.eps) * self.weight + self.bias


class EnsembleMLP(nn.Module):
    """N MLPs of one architecture as one module (see the module docstring)."""

    def __init__(self, layers: list[nn.Module], members: int):
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.members = members

    @classmethod
    def stack(cls, mlps: list[nn.Sequential]) -> "EnsembleMLP":
        """Stack N ``nn.Sequential`` MLPs of the same shape (Linear / LayerNorm / parameter-free activations)."""
        if len(mlps) < 1 or len({len(m) for m in mlps}) != 1:
            raise ValueError("EnsembleMLP.stack takes one or more MLPs of the same depth")
        layers: list[nn.Module] = []
        for parts in zip(*mlps):
            first = parts[0]
            if any(type(p) is not type(first) for p in parts):
                raise ValueError(f"EnsembleMLP.stack: layers differ in type ({[type(p).__name__ for p in parts]})")
            if isinstance(first, nn.Linear):
                layers.append(EnsembleLinear.stack(list(parts)))
            elif isinstance(first, nn.LayerNorm):
                layers.append(EnsembleLayerNorm.stack(list(parts)))
            elif not any(True for _ in first.parameters()):
                layers.append(first)  # an activation: shared, it has no parameters
            else:
                raise ValueError(f"EnsembleMLP.stack: cannot stack a {type(first).__name__}")
        return cls(layers, len(mlps))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.expand(self.members, *x.shape)
        return self.layers(x)
