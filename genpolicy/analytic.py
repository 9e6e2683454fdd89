"""Closed-form references: the exact fields of a Gaussian data distribution on any Gaussian path.

For data ``x0 ~ N(m, C)`` and ``x_t = alpha x0 + sigma eps`` the marginal is ``N(alpha m, alpha^2 C + sigma^2 I)``.
With ``P = (alpha^2 C + sigma^2 I)^{-1}`` and ``r = x - alpha m``:

    score    = -P r
    E[eps|x] = sigma P r
    E[x0|x]  = m + alpha C P r
    velocity = alpha' E[x0|x] + sigma' E[eps|x] = alpha' m + (alpha alpha' C + sigma sigma' I) P r

Used by the tests as an "optimally trained network", and useful to check a new path or solver.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .paths import GaussianPath, expand_t

__all__ = ["GaussianOracle", "gaussian_log_prob"]


class GaussianOracle(nn.Module):
    """A network ``net(x, t, cond)`` returning the exact prediction of kind ``param`` for data N(mean, cov).

    Args:
        path: the Gaussian path.
        mean: ``(d,)``. cov: ``(d, d)`` symmetric positive definite (or ``(d,)`` for a diagonal).
        param: ``velocity``, ``score``, ``noise`` or ``data``.
    """

    def __init__(self, path: GaussianPath, mean: Tensor, cov: Tensor, param: str = "velocity"):
        super().__init__()
        cov = torch.diag(cov) if cov.dim() == 1 else cov
        lam, u = torch.linalg.eigh(cov)
        if bool((lam <= 0).any()):
            raise ValueError("cov must be positive definite")
        self.path, self.param = path, param
        self.register_buffer("mean", mean.clone())
        self.register_buffer("lam", lam)
        self.register_buffer("u", u)
        self.register_buffer("cov", cov.clone())
        # a dummy parameter so that grad-flag tests can see gradients flow through an oracle
        self.gain = nn.Parameter(torch.ones((), dtype=mean.dtype))

    def forward(self, x: Tensor, t: Tensor, cond=None) -> Tensor:
        p = self.path
        a, s = expand_t(p.alpha(t), x), expand_t(p.sigma(t), x)
        da, ds = expand_t(p.d_alpha(t), x), expand_t(p.d_sigma(t), x)
        y = (x - a * self.mean) @ self.u  # residual in the eigenbasis
        prec = 1.0 / (a * a * self.lam + s * s)
        if self.param == "score":
            out = -(prec * y)
        elif self.param == "noise":
            out = s * prec * y
        elif self.param == "data":
            out = (a * self.lam * prec * y) @ self.u.T + self.mean
            return self.gain * out
        elif self.param == "velocity":
            out = ((a * da * self.lam + s * ds) * prec * y) @ self.u.T + da * self.mean
            return self.gain * out
        else:
            raise ValueError(f"unknown parameterization {self.param!r}")
        return self.gain * (out @ self.u.T)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact data log-density log N(x; mean, cov), shape ``(B,)``."""
        return gaussian_log_prob(x, self.mean, self.cov)


def gaussian_log_prob(x: Tensor, mean: Tensor, cov: Tensor) -> Tensor:
    """log N(x; mean, cov) for ``x`` ``(B, d)``."""
    d = x.shape[-1]
    chol = torch.linalg.cholesky(cov)
    z = torch.linalg.solve_triangular(chol, (x - mean).T, upper=False).T
    logdet = 2 * torch.log(torch.diagonal(chol)).sum()
    return -0.5 * (z**2).sum(-1) - 0.5 * logdet - 0.5 * d * math.log(2 * math.pi)
