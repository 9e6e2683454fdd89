"""Fixed-step ODE solvers on a precomputed time grid, and an optional torchdiffeq backend.

States are tuples of tensors so that the same integrator carries ``(x, log-det)`` for likelihoods.
The loop indexes a grid tensor that lives on the state's device: no host synchronisation per step.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Callable, Sequence

import torch
from torch import Tensor

from .base import ODESolution, Predict, Sampler, State, TrajectoryRecorder, uniform_grid

Dynamics = Callable[[Tensor, State], State]

__all__ = ["ODESolver", "Euler", "Midpoint", "Heun", "RK4", "TorchDiffEq"]


def _axpy(y: State, dt: Tensor, *terms: tuple[float, State]) -> State:
    """y + dt * sum_k c_k * k_k, element-wise over the tuple."""
    out = []
    for i, yi in enumerate(y):
        acc = None
        for c, k in terms:
            v = k[i] if c == 1.0 else c * k[i]
            acc = v if acc is None else acc + v
        out.append(yi + dt * acc)
    return tuple(out)


class ODESolver(Sampler):
    """Integrates ``dy/dt = f(t, y)`` over a grid; as a sampler, the probability-flow ODE (the velocity).
    Fixed-step subclasses implement :meth:`step` and name their ``torchdiffeq_method`` (the same scheme in
    torchdiffeq, used by the adjoint mode; None when torchdiffeq has none)."""

    prediction = "velocity"
    torchdiffeq_method: str | None = None

    def integrate(self, f: Dynamics, y0: State | Tensor, grid: Tensor, keep_trajectory: bool = False,
                  params: Sequence[torch.nn.Parameter] = ()) -> ODESolution:
        """Integrate from ``grid[0]`` to ``grid[-1]`` (either direction).

        Args:
            f: dynamics ``f(t, y) -> dy/dt`` with ``t`` a 0-dim tensor and ``y`` a tuple of tensors.
            y0: initial state (a tensor or tuple of tensors).
            grid: times, shape ``(N + 1,)``, monotone.
            keep_trajectory: also return every intermediate state.
            params: parameters ``f`` depends on (only adjoint methods need them).
        """
        y = (y0,) if isinstance(y0, Tensor) else tuple(y0)
        rec = TrajectoryRecorder(keep_trajectory, y)
        dts = grid[1:] - grid[:-1]
        for i in range(grid.shape[0] - 1):
            y = self.step(f, grid[i], dts[i], y)
            rec.add(y)
        return rec.solution(y, grid)

    def sample(self, predict: Predict, path, x1: Tensor, t_start: float, t_end: float, steps: int,
               keep_trajectory: bool = False, params: Sequence[torch.nn.Parameter] = ()) -> ODESolution:
        """Integrate the probability-flow ODE ``dx/dt = predict(x, t)`` from noise ``x1`` at ``t_start``."""
        grid = uniform_grid(t_start, t_end, steps, x1)
        return self.integrate(lambda t, y: (predict(y[0], t),), (x1,), grid, keep_trajectory, params)

    @abstractmethod
    def step(self, f: Dynamics, t: Tensor, dt: Tensor, y: State) -> State:
        """Advance the state ``y`` at time ``t`` by ``dt``."""


class Euler(ODESolver):
    """Explicit Euler, first order."""

    name, order, torchdiffeq_method = "euler", 1, "euler"

    def step(self, f, t, dt, y):
        return _axpy(y, dt, (1.0, f(t, y)))


class Midpoint(ODESolver):
    """Explicit midpoint rule, second order."""

    name, order, torchdiffeq_method = "midpoint", 2, "midpoint"

    def step(self, f, t, dt, y):
        k1 = f(t, y)
        k2 = f(t + 0.5 * dt, _axpy(y, 0.5 * dt, (1.0, k1)))
        return _axpy(y, dt, (1.0, k2))


class Heun(ODESolver):
    """Heun's method (explicit trapezoid), second order."""

    name, order = "heun", 2

    def step(self, f, t, dt, y):
        k1 = f(t, y)
        k2 = f(t + dt, _axpy(y, dt, (1.0, k1)))
        return _axpy(y, dt, (0.5, k1), (0.5, k2))


class RK4(ODESolver):
    """Classical fourth-order Runge-Kutta, 3/8 rule (as torchdiffeq's ``rk4``)."""

    name, order, torchdiffeq_method = "rk4", 4, "rk4"

    def step(self, f, t, dt, y):
        third = dt / 3.0
        k1 = f(t, y)
        k2 = f(t + third, _axpy(y, third, (1.0, k1)))
        k3 = f(t + 2.0 * third, _axpy(y, dt, (-1.0 / 3.0, k1), (1.0, k2)))
        k4 = f(t + dt, _axpy(y, dt, (1.0, k1), (-1.0, k2), (1.0, k3)))
        return _axpy(y, dt, (0.125, k1), (0.375, k2), (0.375, k3), (0.125, k4))


class _TorchDiffEqFunc(torch.nn.Module):
    """Wraps dynamics as an nn.Module so the adjoint method knows which parameters to differentiate."""

    def __init__(self, f: Dynamics, params: Sequence[torch.nn.Parameter]):
        super().__init__()
        self.f = f
        self.params = torch.nn.ParameterList(list(params))

    def forward(self, t, y):
        return self.f(t, y)


class TorchDiffEq(ODESolver):
    """The torchdiffeq backend (extra ``genpolicy[torchdiffeq]``): adaptive methods and the adjoint.

    Args:
        method: any torchdiffeq method, e.g. ``dopri5`` (adaptive), ``euler``, ``rk4``.
        rtol, atol: tolerances for adaptive methods.
        adjoint: use ``odeint_adjoint`` (memory O(1) in the number of steps).
    """

    name = "torchdiffeq"
    needs_params = True

    def __init__(self, method: str = "dopri5", rtol: float = 1e-5, atol: float = 1e-5, adjoint: bool = False):
        try:
            import torchdiffeq  # noqa: F401
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("the torchdiffeq backend needs the extra: pip install 'genpolicy[torchdiffeq]'") from e
        self.method, self.rtol, self.atol, self.adjoint = method, rtol, atol, adjoint

    def step(self, f, t, dt, y):  # pragma: no cover - integrate is overridden
        raise NotImplementedError("TorchDiffEq integrates whole grids; call integrate()")

    def integrate(self, f, y0, grid, keep_trajectory=False, params=()):
        import torchdiffeq

        y0 = (y0,) if isinstance(y0, Tensor) else tuple(y0)
        func = _TorchDiffEqFunc(f, params)
        kw = dict(rtol=self.rtol, atol=self.atol, method=self.method)
        if self.adjoint:
            # adjoint_params must be given explicitly since the dynamics are a closure over the model
            sol = torchdiffeq.odeint_adjoint(func, y0, grid, adjoint_params=tuple(params), **kw)
        else:
            sol = torchdiffeq.odeint(func, y0, grid, **kw)
        y = tuple(s[-1] for s in sol)
        return ODESolution(y=y, trajectory=tuple(sol) if keep_trajectory else None, times=grid)

    def __repr__(self):
        return f"TorchDiffEq(method={self.method!r}, adjoint={self.adjoint})"
