"""Flow paths written as interpolants ``x_t = (1-t) x0 + t x1 + c(t) xi`` (Eq 27): I-CFM and the SF2M bridge.

With an independent coupling their marginal given ``x0`` is the Gaussian path alpha = 1-t, sigma^2 = t^2 + c(t)^2,
so every conversion of :class:`~genpolicy.paths.base.GaussianPath` applies; only the flow-matching targets differ.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from .base import GaussianPath, PathSample, expand_t

__all__ = ["ICFM", "SF2M"]


class _InterpolantFlow(GaussianPath):
    """x_t = (1-t) x0 + t x1 + c(t) xi with xi ~ N(0, I) independent (Eq 27); subclasses give c(t), c'(t).

    Conditional flow-matching target: d x_t/dt = x1 - x0 + c'(t) xi (Eq 28 when c is constant).
    Marginal view: alpha = 1-t, sigma^2 = t^2 + c(t)^2.
    """

    singular_at_one = True
    is_diffusion = False

    def __init__(self, sigma: float):
        if sigma < 0:
            raise ValueError(f"{type(self).__name__} needs sigma >= 0, got {sigma}")
        self.sigma_c = float(sigma)

    @abstractmethod
    def c(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def d_c(self, t: Tensor) -> Tensor: ...

    def alpha(self, t):
        return 1.0 - t

    def d_alpha(self, t):
        return -torch.ones_like(t)

    def sigma(self, t):
        return torch.sqrt(t * t + self.c(t) ** 2)

    def d_sigma(self, t):
        s = self.sigma(t)
        # at sigma = 0 (t = 0 with c(0) = 0) the one-sided limit of (t + c c') / sigma is 1
        return torch.where(s > 0, (t + self.c(t) * self.d_c(t)) / s.clamp_min(1e-30), torch.ones_like(t))

    def sample(self, x0: Tensor, x1: Tensor, t: Tensor) -> PathSample:
        """x_t = (1-t) x0 + t x1 + c(t) xi; target x1 - x0 + c'(t) xi; eps is the equivalent total noise."""
        te = expand_t(t, x0)
        xi = torch.randn_like(x0) if self.sigma_c > 0 else torch.zeros_like(x0)
        c, dc = expand_t(self.c(t), x0), expand_t(self.d_c(t), x0)
        noise = te * x1 + c * xi
        x_t = (1.0 - te) * x0 + noise
        eps = noise / expand_t(self.sigma(t), x0).clamp_min(1e-12)
        return PathSample(x0=x0, x1=x1, t=t, x_t=x_t, eps=eps, velocity=x1 - x0 + dc * xi)

    def __repr__(self):
        return f"{type(self).__name__}(sigma={self.sigma_c})"


class ICFM(_InterpolantFlow):
    """Independent conditional flow matching (Tong et al. 2024): constant noise c(t) = sigma (Eq 27-28)."""

    def __init__(self, sigma: float = 0.0):
        super().__init__(sigma)
        if self.sigma_c == 0.0:
            self.t_min = 0.0

    def c(self, t):
        return torch.full_like(t, self.sigma_c)

    def d_c(self, t):
        return torch.zeros_like(t)


class SF2M(_InterpolantFlow):
    """Schrödinger-bridge flow matching path (Tong et al. 2023): Brownian-bridge noise c(t) = sigma sqrt(t(1-t)).

    c'(t) is infinite at t=0 and t=1, so training and sampling keep 1e-3 away from both ends.
    Use with :class:`genpolicy.couplings.OTCoupling` for the (minibatch) bridge between data and noise.
    """

    t_min = 1e-3

    def __init__(self, sigma: float = 1.0):
        super().__init__(sigma)

    def c(self, t):
        return self.sigma_c * torch.sqrt(t * (1.0 - t))

    def d_c(self, t):
        return self.sigma_c * (1.0 - 2.0 * t) / (2.0 * torch.sqrt(t * (1.0 - t)))

    def time_interval(self, param):
        t0, t1 = super().time_interval(param)
        return t0, min(t1, 1.0 - self.eps)
