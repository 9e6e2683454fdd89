"""Log-likelihoods of a probability-flow ODE by the instantaneous change of variables (paper Eq 44-45).

    d/dt [x, delta] = [v(x, t), div v(x, t)]

integrated data -> noise gives ``log p(x) = log p_1(x_1) + delta``; integrated noise -> data from a prior
sample it gives the sample and ``log p = log p_1(x_1) - delta`` on the same solve. The divergence is exact (d
vector-Jacobian products in one batched pass) or Hutchinson's estimate with one probe per solve.

``estimator="paper"`` computes the gradient as GenerativeRL's ``compute_likelihood`` does (its GMPG's KL term): the
drift's state input is detached at every evaluation, so nothing flows back along the trajectory. Through the solve,
``d log p / d x0`` is then exactly ``d log p_1 / d x_1`` (the prior's score at the solve's noise end, ``-x_1`` for a
standard prior) and the parameters get ``sum_k h_k [s_1 . dv/dtheta + d div/dtheta](x_k, t_k)``: what its
``odeint_adjoint`` returns, its adjoint state never evolving, here on the forward trajectory (the adjoint re-solves
it backwards; with ``gradient=adjoint`` that too). A Hutchinson probe is then drawn at every drift evaluation, as
GenerativeRL draws one. The value of ``log p`` is unchanged (the exact estimator's, or with per-evaluation probes).

Everything here works on a velocity function ``velocity(x, t) -> v`` (``t`` a 0-dim time) and an ODE solver;
:class:`~genpolicy.generative.GenerativeModel` checks inputs and calls these functions.
"""

from __future__ import annotations

import math
from typing import Callable, Literal, Sequence

import torch
from torch import Tensor

from .solvers import ODESolver, make_solver

__all__ = ["exact_divergence", "hutchinson_divergence", "functional_divergence", "make_probe", "augmented_dynamics",
           "gaussian_prior_log_prob", "ode_solver", "log_prob_from_data", "sample_with_log_prob", "DIVERGENCES",
           "PROBES", "ESTIMATORS", "Divergence", "Probe"]

DIVERGENCES = ("exact", "hutchinson")
ESTIMATORS = ("exact", "paper")
PROBES = ("gaussian", "rademacher")
Divergence = Literal[DIVERGENCES]
Probe = Literal[PROBES]
Velocity = Callable[[Tensor, Tensor], Tensor]


def exact_divergence(v: Tensor, x: Tensor, create_graph: bool) -> Tensor:
    """Trace of dv/dx per sample: the d vector-Jacobian products in one batched backward pass (vmap).

    Shapes: v, x ``(B, *event)`` -> ``(B,)``. One batched pass is 1.2-2.3x faster than d separate passes on CPU.
    Forward mode (d Jacobian-vector products, ``torch.func.jvp`` under ``vmap``) was measured against it for GMPG's
    use: 8-25 % slower on CPU (batch 256, d = 3 and 6, mlp and U-Net), and torch 2.13's gradient of it through
    LayerNorm was off by 2-4 % (tests/test_generative.py checks this one against finite differences).
    """
    b = x.shape[0]
    d = v[0].numel()
    eye = torch.eye(d, dtype=v.dtype, device=v.device).unsqueeze(1).expand(d, b, d).reshape(d, *v.shape)
    g = torch.autograd.grad(v, x, grad_outputs=eye, is_grads_batched=True, create_graph=create_graph,
                            retain_graph=True)[0]
    return torch.diagonal(g.reshape(d, b, d), dim1=0, dim2=2).sum(-1)


def hutchinson_divergence(v: Tensor, x: Tensor, probe: Tensor, create_graph: bool) -> Tensor:
    """Hutchinson estimate ``eps^T (dv/dx) eps`` per sample (Eq 45). Shapes: ``(B, *event)`` -> ``(B,)``."""
    g = torch.autograd.grad(v, x, grad_outputs=probe, create_graph=create_graph, retain_graph=create_graph)[0]
    return (g * probe).reshape(x.shape[0], -1).sum(1)


def functional_divergence(velocity_of_x: Callable[[Tensor], Tensor], x: Tensor,
                          probe: Tensor | None) -> tuple[Tensor, Tensor]:
    """``(v, div v)`` at ``x`` by ``torch.func`` (``vjp``, and ``vmap`` over the d basis vectors for the exact
    trace; one vector-Jacobian product with ``probe`` for Hutchinson): the same products as
    :func:`exact_divergence` / :func:`hutchinson_divergence`, written so that an outer ``torch.func.grad`` and
    ``torch.compile(fullgraph=True)`` can trace them (``torch.autograd.grad`` inside either breaks the graph)."""
    v, vjp_fn = torch.func.vjp(velocity_of_x, x)
    b = x.shape[0]
    if probe is not None:
        return v, (vjp_fn(probe)[0] * probe).reshape(b, -1).sum(1)
    d = v[0].numel()
    eye = torch.eye(d, dtype=v.dtype, device=v.device).unsqueeze(1).expand(d, b, d).reshape(d, *v.shape)
    g = torch.func.vmap(vjp_fn)(eye)[0]
    return v, torch.diagonal(g.reshape(d, b, d), dim1=0, dim2=2).sum(-1)


def make_probe(divergence: str, probe: str, like: Tensor, estimator: str = "exact"):
    """The Hutchinson probe shaped like ``like`` (None for the exact divergence); checks the names. With
    ``estimator="paper"``: a function that draws a new probe shaped like its argument (one per drift evaluation)."""
    if divergence not in DIVERGENCES:
        raise ValueError(f"unknown divergence {divergence!r}; expected one of {DIVERGENCES}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown likelihood gradient estimator {estimator!r}; expected one of {ESTIMATORS}")
    if divergence == "exact":
        return None
    if estimator == "paper" and probe in PROBES:
        return lambda x: make_probe(divergence, probe, x)
    if probe == "gaussian":
        return torch.randn_like(like)
    if probe == "rademacher":
        return torch.randint_like(like, 0, 2) * 2 - 1
    raise ValueError(f"unknown probe {probe!r}; expected 'gaussian' or 'rademacher'")


def augmented_dynamics(velocity: Velocity, probe, grad: bool, functional: bool = False, detach_state: bool = False):
    """``f(t, (x, delta)) = (v(x, t), div v(x, t))``: exact divergence when ``probe`` is None, else Hutchinson
    (``probe`` a tensor, or a function of ``x`` drawing one per evaluation). ``functional``: the divergence by
    :func:`functional_divergence` (for callers under ``torch.func.grad`` or ``torch.compile``; always
    differentiable). ``detach_state``: no gradient along the state (``estimator="paper"``, see the module)."""

    def functional_dyn(t: Tensor, y):
        x = y[0].detach() if detach_state else y[0]
        return functional_divergence(lambda x: velocity(x, t), x, probe(x) if callable(probe) else probe)

    if functional:
        return functional_dyn

    def dyn(t: Tensor, y):
        x = y[0]
        outer_grad = torch.is_grad_enabled()
        with torch.enable_grad():
            # under no_grad (e.g. the adjoint's forward pass) x may be a no-grad view that autograd cannot
            # differentiate through; a fresh leaf is right there, and nothing outside needs the graph
            if detach_state or not x.requires_grad or not outer_grad:
                x = x.detach().requires_grad_(True)
            v = velocity(x, t)
            p = probe(x) if callable(probe) else probe
            if p is None:
                div = exact_divergence(v, x, create_graph=grad)
            else:
                div = hutchinson_divergence(v, x, p, create_graph=grad)
        if not grad:
            v, div = v.detach(), div.detach()
        return v, div

    return dyn


def gaussian_prior_log_prob(x: Tensor, std: float) -> Tensor:
    """``log N(x; 0, std^2 I)`` per row of ``x`` ``(B, *event)``."""
    d = math.prod(x.shape[1:])
    sq = (x.reshape(x.shape[0], -1) ** 2).sum(1)
    return -0.5 * sq / std**2 - 0.5 * d * math.log(2 * math.pi * std**2)


def ode_solver(solver) -> ODESolver:
    """``make_solver(solver)``, which must be an ODE solver (likelihoods integrate the velocity field)."""
    solver = make_solver(solver)
    if not isinstance(solver, ODESolver):
        raise ValueError(f"log-likelihoods need an ODE solver (euler, midpoint, heun, rk4, torchdiffeq:...), "
                         f"got {solver!r}")
    return solver


def log_prob_from_data(velocity: Velocity, x: Tensor, grid: Tensor, prior_std: float, solver: ODESolver,
                       probe, grad: bool, params: Sequence[torch.nn.Parameter] = (),
                       functional: bool = False, detach_state: bool = False) -> Tensor:
    """``log p(x)`` ``(B,)`` by integrating ``x`` over ``grid`` (data -> noise) with the augmented dynamics
    (``functional``, ``detach_state``: see :func:`augmented_dynamics`)."""
    dyn = augmented_dynamics(velocity, probe, grad, functional, detach_state)
    with torch.set_grad_enabled(grad or functional):
        x_end, delta = solver.integrate(dyn, (x, x.new_zeros(x.shape[0])), grid, params=params).y
        return gaussian_prior_log_prob(x_end, prior_std) + delta


def sample_with_log_prob(velocity: Velocity, x1: Tensor, grid: Tensor, prior_std: float, solver: ODESolver,
                         probe: Tensor | None, grad: bool,
                         params: Sequence[torch.nn.Parameter] = (),
                         functional: bool = False) -> tuple[Tensor, Tensor]:
    """Samples and their log-densities ``(x0, log p(x0))`` from prior noise ``x1`` over ``grid`` (noise -> data;
    ``functional``: see :func:`augmented_dynamics`)."""
    dyn = augmented_dynamics(velocity, probe, grad, functional)
    with torch.set_grad_enabled(grad or functional):
        x0, delta = solver.integrate(dyn, (x1, x1.new_zeros(x1.shape[0])), grid, params=params).y
        return x0, gaussian_prior_log_prob(x1, prior_std) - delta
