"""Samplers and integrators: fixed-step ODE solvers, Euler-Maruyama, DPM-Solver, torchdiffeq backend.

Every solver has ``sample(model, x1, cond, t_start, t_end, steps, keep_trajectory) -> ODESolution`` and a
``prediction`` attribute naming what it needs from the model. ODE solvers (:class:`ODESolver`) also
integrate arbitrary dynamics, which ``GenerativeModel.log_prob`` uses.
"""

from __future__ import annotations

from .dpm import DPMSolver
from .ode import RK4, Euler, Heun, Midpoint, ODESolution, ODESolver, TorchDiffEq, uniform_grid
from .sde import EulerMaruyama

__all__ = [
    "DPMSolver", "RK4", "Euler", "Heun", "Midpoint", "ODESolution", "ODESolver", "TorchDiffEq",
    "EulerMaruyama", "make_solver", "SOLVERS", "uniform_grid",
]

SOLVERS = {
    "euler": Euler,
    "midpoint": Midpoint,
    "heun": Heun,
    "rk4": RK4,
    "sde": EulerMaruyama,
    "euler_maruyama": EulerMaruyama,
    "dpm1": lambda: DPMSolver(1),
    "dpm2": lambda: DPMSolver(2),
    "dpm3": lambda: DPMSolver(3),
}
_TORCHDIFFEQ_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun", "euler", "midpoint", "rk4",
                        "explicit_adams", "implicit_adams", "heun3")


def make_solver(name):
    """Build a solver from a name, or return a solver instance unchanged.

    Names: ``euler``, ``midpoint``, ``heun``, ``rk4`` (own fixed-step ODE solvers); ``sde`` (Euler-Maruyama);
    ``dpm1``, ``dpm2``, ``dpm3`` (DPM-Solver); ``torchdiffeq:METHOD`` and ``torchdiffeq-adjoint:METHOD``
    (the torchdiffeq extra, e.g. ``torchdiffeq:dopri5``).
    """
    if not isinstance(name, str):
        if hasattr(name, "sample") and hasattr(name, "prediction"):
            return name
        raise TypeError(f"solver must be a name or a solver object, got {type(name).__name__}")
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
