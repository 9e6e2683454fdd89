"""The policy-gradient terms of a generative policy against a behaviour model (GMPG, paper Eq 8 and 42): the
dynamic estimate through a differentiable solve, the static one on the behaviour's samples, and the settings they
resolve (divergence, training solver, KL units)."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from ..generative import GenerativeModel
from ..likelihood import DIVERGENCES
from ..solvers import FIXED_STEP

__all__ = ["resolve_divergence", "grad_solver", "kl_weight", "gmpg_terms", "gmpg_static_terms",
           "saved_bytes_per_row_step", "GRADIENTS", "LOG_PI_SOLVES"]

GRADIENTS = ("direct", "adjoint")
#: where the dynamic variant's log pi_theta(a|s) comes from (see gmpg_terms)
LOG_PI_SOLVES = ("forward", "reverse")


def resolve_divergence(divergence: str, act_dim: int) -> str:
    """``auto`` becomes exact up to 32 action dimensions, Hutchinson above."""
    if divergence == "auto":
        return "exact" if act_dim <= 32 else "hutchinson"
    if divergence not in DIVERGENCES:
        raise ValueError(f"unknown divergence {divergence!r}; expected auto or one of {DIVERGENCES}")
    return divergence


def grad_solver(solver: str, gradient: str) -> str:
    """The solver name that :meth:`GenerativeModel.sample_with_log_prob` gets for a gradient mode: the fixed-step
    solver itself (direct) or the same scheme in torchdiffeq's adjoint (its ``torchdiffeq_method``)."""
    if gradient not in GRADIENTS:
        raise ValueError(f"unknown gradient mode {gradient!r}; expected one of {GRADIENTS}")
    if solver not in FIXED_STEP:
        raise ValueError(f"GMPG trains with a fixed-step solver ({sorted(FIXED_STEP)}), got {solver!r}")
    if gradient == "direct":
        return solver
    method = FIXED_STEP[solver].torchdiffeq_method
    if method is None:
        with_adjoint = sorted(n for n, c in FIXED_STEP.items() if c.torchdiffeq_method)
        raise ValueError(f"the adjoint mode has no {solver} method; use one of {with_adjoint}")
    return f"torchdiffeq-adjoint:{method}"


def kl_weight(kl_unit: str, act_dim: int) -> float:
    """The factor on log pi - log mu (in nats per action) that expresses it in ``kl_unit``: 1 for nat, 1 / (act_dim
    ln 2) for bit_per_dim (GenerativeRL's ``log_p / bits_ratio``)."""
    if kl_unit == "nat":
        return 1.0
    if kl_unit == "bit_per_dim":
        return 1.0 / (act_dim * math.log(2.0))
    raise ValueError(f"unknown kl_unit {kl_unit!r}; expected nat or bit_per_dim")


def gmpg_terms(policy: GenerativeModel, behaviour: GenerativeModel, q_fn: Callable[[Any, Tensor], Tensor],
               cond: Any, beta: float, solver: str = "midpoint", steps: int = 32, divergence: str = "exact",
               probe: str = "gaussian", n: int | None = None, functional: bool = False,
               kl_scale: float = 1.0, log_pi: str = "forward", estimator: str = "exact") -> dict[str, Tensor]:
    """Per-sample terms of Eq 8 with the graph to ``policy``'s parameters.

    Samples ``a ~ pi_theta(.|cond)`` (noise -> data, with gradient), then ``log mu(a|cond)`` by integrating ``a``
    back to noise under ``behaviour`` on the same grid (gradient flows through ``a``; mu's own parameters should be
    frozen). ``log pi_theta(a|cond)`` comes from the sampling solve itself (``log_pi="forward"``, one solve fewer)
    or, as GenerativeRL's ``policy_gradient_loss`` computes it, by integrating ``a`` back to noise under
    ``pi_theta`` exactly as ``log mu`` is (``log_pi="reverse"``): then both log-densities carry the same
    discretization scheme, and the KL estimate is exactly 0 while pi_theta = mu.

    Args:
        q_fn: ``q_fn(cond, a) -> (rows,)``; must be differentiable in ``a``.
        cond: condition with batch B, or None (then ``n`` is the number of samples).
        functional: build the graph with ``torch.func`` (for a caller under ``torch.func.grad`` /
            ``torch.compile``; the sampled actions are not checked for finiteness).
        kl_scale: factor on log pi - log mu in the loss (:func:`kl_weight`); the returned ``kl`` stays in nats.
        log_pi: ``forward`` or ``reverse`` (above; :data:`LOG_PI_SOLVES`).
        estimator: the gradient of both likelihood solves (``log mu``, and ``log pi`` with ``reverse``): ``exact`` or
            ``paper`` (GenerativeRL's, :mod:`genpolicy.likelihood`; needs ``reverse``).

    Returns:
        ``loss`` (-beta Q + kl_scale (log pi - log mu)), ``q``, ``log_pi``, ``log_mu``, ``kl`` (log pi - log mu),
        and the actions ``a``; every per-sample term has shape ``(rows,)``.
    """
    kw = dict(divergence=divergence, steps=steps, solver=solver, grad=True, probe=probe, check=not functional,
              functional=functional)
    n = None if cond is not None else n
    if estimator != "exact" and log_pi != "reverse":
        raise ValueError(f"estimator={estimator!r} is a likelihood solve's gradient: use log_pi='reverse'")
    if log_pi == "forward":
        s = policy.sample_with_log_prob(cond, n=n, **kw)
        a, log_p = s.x, s.log_prob
    elif log_pi == "reverse":
        a = policy.sample(cond, n=n, solver=solver, steps=steps, grad=True, check=not functional)
        log_p = policy.log_prob(a, cond, **kw, estimator=estimator)  # reaches theta directly and through a
    else:
        raise ValueError(f"unknown log_pi {log_pi!r}; expected one of {LOG_PI_SOLVES}")
    log_mu = behaviour.log_prob(a, cond, **kw, estimator=estimator)
    q = q_fn(cond, a)
    kl = log_p - log_mu
    return {"loss": -beta * q + kl_scale * kl, "q": q, "log_pi": log_p, "log_mu": log_mu, "kl": kl, "a": a}


def gmpg_static_terms(policy: GenerativeModel, actions: Tensor, cond: Any, weights: Tensor, q: Tensor,
                      log_mu: Tensor, beta: float, solver: str = "midpoint", steps: int = 32,
                      divergence: str = "exact", probe: str = "gaussian",
                      functional: bool = False, kl_scale: float = 1.0, estimator: str = "exact") -> dict[str, Tensor]:
    """Per-sample surrogate of GMPG-static (Eq 42) for actions drawn from the frozen behaviour model.

    Its gradient is ``weights * (-beta Q + c (log pi - log mu)) * c grad log pi`` with ``c = kl_scale`` (both
    log-densities in the unit of :func:`kl_weight`, as GenerativeRL's REINFORCE losses have them): the coefficient
    is held constant and only ``log pi_theta(a|s)`` (data -> noise solve, with gradient) carries the graph.
    """
    log_pi = policy.log_prob(actions, cond, divergence=divergence, steps=steps, solver=solver, grad=True, probe=probe,
                             check=not functional, functional=functional, estimator=estimator)
    # kl_scale on each log-density rather than on their difference: at 1.0 this is the nat surrogate bit for bit
    coef = (-beta * q + kl_scale * log_pi.detach() - kl_scale * log_mu).detach()
    return {"loss": weights * coef * (kl_scale * log_pi), "q": q, "log_pi": log_pi, "log_mu": log_mu,
            "kl": log_pi.detach() - log_mu}


def saved_bytes_per_row_step(fn: Callable[[int, int], Tensor], rows: int = 8, steps: int = 2) -> float:
    """Autograd memory of ``fn(rows, steps)`` per row and solver step, measured by the saved-tensor hooks.

    Shared storages are counted once per save (an over-estimate, which is the safe side for chunking).
    """
    total = [0]

    def pack(t: Tensor):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(rows, steps)
    del out
    return total[0] / (rows * steps)
