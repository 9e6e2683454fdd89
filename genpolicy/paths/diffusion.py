"""Diffusion paths defined directly by alpha(t), sigma(t): VP-SDE (Eq 20), GVP (cos/sin) and Linear (1-t, t)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import GaussianPath

__all__ = ["VPSDE", "GVP", "LinearPath"]


class VPSDE(GaussianPath):
    """Linear variance-preserving SDE (Song et al. 2021), beta(t) = beta0 + (beta1 - beta0) t (Eq 20).

    alpha = exp(-B/2), sigma = sqrt(1 - exp(-B)) with B(t) = int_0^t beta; f = -beta/2, g^2 = beta.
    sigma'(0) is infinite, so training and sampling start at ``t_min = 1e-3`` (as in Song et al.).
    """

    singular_at_one = False
    t_min = 1e-3

    def __init__(self, beta0: float = 0.1, beta1: float = 20.0):
        if not (0 < beta0 < beta1):
            raise ValueError(f"VPSDE needs 0 < beta0 < beta1, got beta0={beta0}, beta1={beta1}")
        self.beta0, self.beta1 = float(beta0), float(beta1)

    def beta(self, t: Tensor) -> Tensor:
        return self.beta0 + (self.beta1 - self.beta0) * t

    def big_b(self, t: Tensor) -> Tensor:
        return self.beta0 * t + 0.5 * (self.beta1 - self.beta0) * t * t

    def alpha(self, t):
        return torch.exp(-0.5 * self.big_b(t))

    def sigma(self, t):
        return torch.sqrt(-torch.expm1(-self.big_b(t)))

    def d_alpha(self, t):
        return -0.5 * self.beta(t) * self.alpha(t)

    def d_sigma(self, t):
        b = self.big_b(t)
        return 0.5 * self.beta(t) * torch.exp(-b) / torch.sqrt(-torch.expm1(-b))

    def drift(self, t):
        return -0.5 * self.beta(t)

    def diffusion_squared(self, t):
        return self.beta(t)

    def log_snr(self, t):
        b = self.big_b(t)
        return -0.5 * b - 0.5 * torch.log(-torch.expm1(-b))

    def t_of_log_snr(self, lam):
        b = torch.nn.functional.softplus(-2.0 * lam)  # B = log(1 + exp(-2 lambda))
        d = self.beta1 - self.beta0
        return (-self.beta0 + torch.sqrt(self.beta0**2 + 2.0 * d * b)) / d

    def __repr__(self):
        return f"VPSDE(beta0={self.beta0}, beta1={self.beta1})"


class GVP(GaussianPath):
    """Generalized VP path (Albergo & Vanden-Eijnden 2023): alpha = cos(pi t/2), sigma = sin(pi t/2) (Eq 20).

    f = -pi/2 tan(pi t/2) and g^2 = pi tan(pi t/2), both infinite at t=1.
    """

    singular_at_one = True

    def alpha(self, t):
        return torch.cos(0.5 * math.pi * t)

    def sigma(self, t):
        return torch.sin(0.5 * math.pi * t)

    def d_alpha(self, t):
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def d_sigma(self, t):
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)

    def drift(self, t):
        return -0.5 * math.pi * torch.tan(0.5 * math.pi * t)

    def diffusion_squared(self, t):
        return math.pi * torch.tan(0.5 * math.pi * t)

    def t_of_log_snr(self, lam):
        return (2.0 / math.pi) * torch.atan(torch.exp(-lam))


class LinearPath(GaussianPath):
    """Linear path (rectified flow / Karras-style interpolation): alpha = 1 - t, sigma = t.

    f = -1/(1-t), g^2 = 2t/(1-t), both infinite at t=1.
    """

    singular_at_one = True

    def alpha(self, t):
        return 1.0 - t

    def sigma(self, t):
        return t

    def d_alpha(self, t):
        return -torch.ones_like(t)

    def d_sigma(self, t):
        return torch.ones_like(t)

    def t_of_log_snr(self, lam):
        return torch.sigmoid(-lam)
