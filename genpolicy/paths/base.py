"""Gaussian conditional probability paths with ONE time convention: t=0 is data, t=1 is noise.

Every path here is a *Gaussian path*: conditioned on a data point ``x0`` the state at time ``t`` is

    x_t = alpha(t) * x0 + sigma(t) * eps,       eps ~ N(0, I)                      (paper Eq 17)

Diffusion paths (VP-SDE, GVP, Linear) are defined this way directly. The flow paths I-CFM and the SF2M
bridge are written as ``x_t = (1-t) x0 + t x1 + c(t) xi`` with ``x1 ~ N(0, I)`` (Eq 27); with an
independent coupling their marginal given ``x0`` is Gaussian with ``alpha = 1-t`` and
``sigma^2 = t^2 + c(t)^2``, and the marginal velocity field of their conditional flow matching target
equals that Gaussian path's field. So all conversions (score / noise / velocity / data) below hold for
every path. Only their flow-matching *targets* differ (see :meth:`GaussianPath.sample`).

The drift and diffusion of the equivalent linear SDE ``dx = f(t) x dt + g(t) dw`` are (Eq 18, 19)

    f(t)   = d log alpha / dt
    g^2(t) = d sigma^2 / dt - 2 f(t) sigma^2(t)

and the probability-flow ODE velocity is ``v = f x - 1/2 g^2 score`` (Eq 21). With the noise prediction
``eps = -sigma * score`` this is Eq 43: ``v = f x + g^2 / (2 sigma) * eps``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["GaussianPath", "PathSample", "PARAMETERIZATIONS", "expand_t"]

PARAMETERIZATIONS = ("velocity", "score", "noise", "data")


def expand_t(t: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-sample time ``(B,)`` (or scalar) so that it broadcasts against ``x`` of shape ``(B, *)``."""
    if t.dim() == 0:
        return t
    return t.reshape(t.shape[0], *([1] * (x.dim() - 1)))


@dataclass
class PathSample:
    """One draw from a conditional path (shapes ``(B, *x_shape)`` unless noted).

    Attributes:
        x0: data points.
        x1: noise points (the end of the path at t=1).
        t: times, shape ``(B,)``.
        x_t: points on the path at time t.
        eps: the standard-normal noise such that ``x_t = alpha x0 + sigma eps`` (DSM target, Eq 23).
        velocity: conditional velocity target ``d x_t / dt`` (CFM target, Eq 26/28).
    """

    x0: Tensor
    x1: Tensor
    t: Tensor
    x_t: Tensor
    eps: Tensor
    velocity: Tensor


class GaussianPath(ABC):
    """A Gaussian path ``x_t = alpha(t) x0 + sigma(t) eps``; subclasses give alpha, sigma and derivatives.

    Attributes:
        t_min: smallest time used for training and sampling (0 unless the path is singular at t=0).
        singular_at_one: True where ``alpha(1) = 0``, so that ``f`` and ``g^2`` blow up at t=1 and
            score/noise/data parameterizations must stop short of it.
        is_diffusion: True for the diffusion paths (VP-SDE, GVP, Linear).
    """

    t_min: float = 0.0
    singular_at_one: bool = False
    is_diffusion: bool = True
    #: distance kept from a singular end of the interval for non-velocity parameterizations.
    eps: float = 1e-3

    # --- the four functions a path defines -------------------------------------------------------
    @abstractmethod
    def alpha(self, t: Tensor) -> Tensor:
        """Scale of the data, alpha(t) (Eq 17)."""

    @abstractmethod
    def sigma(self, t: Tensor) -> Tensor:
        """Standard deviation of the noise, sigma(t) (Eq 17)."""

    @abstractmethod
    def d_alpha(self, t: Tensor) -> Tensor:
        """d alpha / dt."""

    @abstractmethod
    def d_sigma(self, t: Tensor) -> Tensor:
        """d sigma / dt."""

    # --- derived quantities ----------------------------------------------------------------------
    def drift(self, t: Tensor) -> Tensor:
        """f(t) = d log alpha / dt (Eq 18)."""
        return self.d_alpha(t) / self.alpha(t)

    def diffusion_squared(self, t: Tensor) -> Tensor:
        """g^2(t) = d sigma^2/dt - 2 f(t) sigma^2(t) (Eq 19)."""
        s = self.sigma(t)
        return 2.0 * s * self.d_sigma(t) - 2.0 * self.drift(t) * s * s

    def log_snr(self, t: Tensor) -> Tensor:
        """lambda(t) = log(alpha / sigma), the half log signal-to-noise ratio used by DPM-Solver."""
        return torch.log(self.alpha(t)) - torch.log(self.sigma(t))

    def t_of_log_snr(self, lam: Tensor) -> Tensor:
        """Inverse of :meth:`log_snr` (decreasing in t); generic bisection, overridden where closed-form."""
        lo = torch.full_like(lam, self.t_min)
        hi = torch.full_like(lam, 1.0 - (self.eps if self.singular_at_one else 0.0))
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            go_right = self.log_snr(mid) > lam
            lo = torch.where(go_right, mid, lo)
            hi = torch.where(go_right, hi, mid)
        return 0.5 * (lo + hi)

    def time_interval(self, param: str) -> tuple[float, float]:
        """The interval [t0, t1] on which a model of parameterization ``param`` is trained and integrated.

        A velocity model is finite everywhere; score/noise/data conversions divide by sigma (zero at t=0)
        or by alpha (zero at t=1 on singular paths), so those keep ``eps`` away from the singular ends.
        """
        if param not in PARAMETERIZATIONS:
            raise ValueError(f"unknown parameterization {param!r}; expected one of {PARAMETERIZATIONS}")
        if param == "velocity":
            return self.t_min, 1.0
        return max(self.t_min, self.eps), 1.0 - (self.eps if self.singular_at_one else 0.0)

    def prior_std(self, t1: float) -> float:
        """Standard deviation of the Gaussian prior N(0, std^2 I) used at the noise end t1."""
        return float(self.sigma(torch.tensor(t1, dtype=torch.float64, device="cpu")))  # (a host value, also when
        # the model is built on the meta device to check a file's sizes)

    # --- sampling the conditional path ------------------------------------------------------------
    def sample(self, x0: Tensor, x1: Tensor, t: Tensor) -> PathSample:
        """Draw x_t given data ``x0``, noise ``x1`` (both ``(B, *)``) and times ``t`` ``(B,)``.

        For diffusion paths the noise is ``x1`` itself: ``x_t = alpha x0 + sigma x1``, velocity target
        ``alpha' x0 + sigma' x1``.
        """
        a, s = expand_t(self.alpha(t), x0), expand_t(self.sigma(t), x0)
        da, ds = expand_t(self.d_alpha(t), x0), expand_t(self.d_sigma(t), x0)
        return PathSample(x0=x0, x1=x1, t=t, x_t=a * x0 + s * x1, eps=x1, velocity=da * x0 + ds * x1)

    # --- conversions between predictions (Eq 21, 43) ---------------------------------------------
    def _coeffs(self, x: Tensor, t: Tensor):
        return (expand_t(self.alpha(t), x), expand_t(self.sigma(t), x), expand_t(self.d_alpha(t), x),
                expand_t(self.d_sigma(t), x))

    def noise_to_score(self, eps: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """score = -eps / sigma."""
        return -eps / expand_t(self.sigma(t), x)

    def score_to_noise(self, score: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """eps = -sigma * score."""
        return -expand_t(self.sigma(t), x) * score

    def noise_to_data(self, eps: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """x0 = (x - sigma eps) / alpha."""
        a, s, _, _ = self._coeffs(x, t)
        return (x - s * eps) / a

    def data_to_noise(self, x0: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """eps = (x - alpha x0) / sigma."""
        a, s, _, _ = self._coeffs(x, t)
        return (x - a * x0) / s

    def noise_to_velocity(self, eps: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """v = f x + g^2 / (2 sigma) eps  (Eq 43), computed as alpha' x0 + sigma' eps for stability."""
        a, s, da, ds = self._coeffs(x, t)
        return da / a * (x - s * eps) + ds * eps

    def velocity_to_noise(self, v: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """eps = (v - f x) / (sigma' - f sigma) = 2 sigma (v - f x) / g^2 (inverse of Eq 43)."""
        a, s, da, ds = self._coeffs(x, t)
        f = da / a
        return (v - f * x) / (ds - f * s)

    def score_to_velocity(self, score: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """v = f x - 1/2 g^2 score (Eq 21)."""
        return self.noise_to_velocity(self.score_to_noise(score, x, t), x, t)

    def convert(self, pred: Tensor, x: Tensor, t: Tensor, src: str, dst: str) -> Tensor:
        """Convert a prediction of kind ``src`` into kind ``dst`` (each in velocity, score, noise, data)."""
        for name in (src, dst):
            if name not in PARAMETERIZATIONS:
                raise ValueError(f"unknown parameterization {name!r}; expected one of {PARAMETERIZATIONS}")
        if src == dst:
            return pred
        to_noise = {
            "noise": lambda p: p,
            "score": lambda p: self.score_to_noise(p, x, t),
            "data": lambda p: self.data_to_noise(p, x, t),
            "velocity": lambda p: self.velocity_to_noise(p, x, t),
        }
        if src == "velocity" and dst == "data":  # avoid dividing by sigma twice
            a, s, da, ds = self._coeffs(x, t)
            return (ds * x - s * pred) / (ds * a - s * da)
        eps = to_noise[src](pred)
        from_noise = {
            "noise": lambda e: e,
            "score": lambda e: self.noise_to_score(e, x, t),
            "data": lambda e: self.noise_to_data(e, x, t),
            "velocity": lambda e: self.noise_to_velocity(e, x, t),
        }
        return from_noise[dst](eps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
