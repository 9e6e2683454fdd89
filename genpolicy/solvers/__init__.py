"""Samplers and integrators: fixed-step ODE solvers, Euler-Maruyama, DPM-Solver, torchdiffeq backend.

Every solver is a :class:`Sampler`: ``sample(predict, path, x1, t_start, t_end, steps, keep_trajectory)``
with ``predict(x, t)`` the model's prediction of the kind the solver names in ``prediction``. ODE solvers
(:class:`ODESolver`) also integrate arbitrary dynamics ``f(t, y)``, which the likelihood module uses.
One registry, :data:`SOLVERS`, serves every caller; :data:`FIXED_STEP` is the part that can be
differentiated through (GMPG).
"""

from __future__ import annotations

from typing import Literal

from .base import ODESolution, Predict, Sampler, TrajectoryRecorder, uniform_grid
from .dpm import DPMSolver
from .ode import RK4, Euler, Heun, Midpoint, ODESolver, TorchDiffEq
from .sde import EulerMaruyama

__all__ = [
    "Sampler", "ODESolution", "TrajectoryRecorder", "Predict", "uniform_grid", "DPMSolver", "RK4", "Euler", "Heun",
    "Midpoint", "ODESolver", "TorchDiffEq", "EulerMaruyama", "make_solver", "SOLVERS", "FIXED_STEP", "SolverName",
    "FixedStepName",
]


#: the fixed-step ODE solvers on a uniform grid, by name
FIXED_STEP: dict[str, type[ODESolver]] = {"euler": Euler, "midpoint": Midpoint, "heun": Heun, "rk4": RK4}
#: every named solver (``torchdiffeq:METHOD`` names are parsed by :func:`make_solver`)
SOLVERS = {
    **FIXED_STEP,
    "sde": EulerMaruyama,
    "euler_maruyama": EulerMaruyama,
    "dpm1": lambda: DPMSolver(1),
    "dpm2": lambda: DPMSolver(2),
    "dpm3": lambda: DPMSolver(3),
}
_TORCHDIFFEQ_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun", "euler", "midpoint", "rk4",
                        "explicit_adams", "implicit_adams", "heun3")
#: names a config may give for sampling (the registry and the torchdiffeq methods)
SolverName = Literal[tuple(SOLVERS) + tuple(f"torchdiffeq:{m}" for m in _TORCHDIFFEQ_METHODS)]
#: names a config may give for differentiable training solves
FixedStepName = Literal[tuple(FIXED_STEP)]


def make_solver(name) -> Sampler:
    """Build a solver from a name, or return a :class:`Sampler` instance unchanged.

    Names: ``euler``, ``midpoint``, ``heun``, ``rk4`` (own fixed-step ODE solvers); ``sde`` (Euler-Maruyama);
    ``dpm1``, ``dpm2``, ``dpm3`` (DPM-Solver); ``torchdiffeq:METHOD`` and ``torchdiffeq-adjoint:METHOD``
    (the torchdiffeq extra, e.g. ``torchdiffeq:dopri5``).
    """
    if not isinstance(name, str):
        if isinstance(name, Sampler):
            return name
        raise TypeError(f"solver must be a name or a Sampler, got {type(name).__name__}")
    key = name.lower()
    if key.startswith("torchdiffeq"):
        backend, _, method = key.partition(":")
        method = method or "dopri5"
        if backend not in ("torchdiffeq", "torchdiffeq-adjoint") or method not in _TORCHDIFFEQ_METHODS:
            raise ValueError(f"unknown torchdiffeq solver {name!r}; use 'torchdiffeq:METHOD' or "
                             f"'torchdiffeq-adjoint:METHOD' with METHOD in {_TORCHDIFFEQ_METHODS}")
        return TorchDiffEq(method=method, adjoint=backend.endswith("adjoint"))
    if key not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; expected one of {sorted(SOLVERS)} or 'torchdiffeq:METHOD'")
    return SOLVERS[key]()
