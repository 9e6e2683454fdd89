"""Matching losses of a Gaussian path, per sample (paper Eq 23-26).

``flow``: conditional flow matching (Eq 26), ``1/2 ||v_theta(x_t) - v(x_t | x0, x1)||^2``.
``score``: denoising score matching (Eq 23), ``1/2 lambda(t) ||s_theta(x_t) + eps / sigma||^2`` with
``vanilla`` (lambda = sigma^2) or ``maximum_likelihood`` (lambda = g^2, Eq 24) weighting.
"""

from __future__ import annotations

from typing import Callable, Literal

from torch import Tensor

from .paths import GaussianPath

__all__ = ["matching_loss", "LOSS_KINDS", "WEIGHTINGS", "LossKind", "Weighting"]

LOSS_KINDS = ("flow", "score")
WEIGHTINGS = ("vanilla", "maximum_likelihood")
LossKind = Literal[LOSS_KINDS]
Weighting = Literal[WEIGHTINGS]


def matching_loss(predict: Callable[[Tensor, Tensor, str], Tensor], path: GaussianPath, x0: Tensor, x1: Tensor,
                  t: Tensor, kind: LossKind = "flow", weighting: Weighting = "vanilla") -> Tensor:
    """Per-sample loss ``(B,)`` of ``predict(x_t, t, kind) -> prediction`` at ``x_t`` between data ``x0`` and
    (already coupled) noise ``x1`` at times ``t`` ``(B,)``."""
    ps = path.sample(x0, x1, t)
    dims = tuple(range(1, x0.dim()))
    if kind == "flow":
        v = predict(ps.x_t, t, "velocity")
        return 0.5 * ((v - ps.velocity) ** 2).sum(dims)
    eps_hat = predict(ps.x_t, t, "noise")
    err = 0.5 * ((eps_hat - ps.eps) ** 2).sum(dims)  # = 1/2 sigma^2 ||s_theta + eps/sigma||^2
    if weighting == "maximum_likelihood":
        err = err * path.diffusion_squared(t) / path.sigma(t) ** 2
    return err
