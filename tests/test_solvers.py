"""Solvers: convergence orders on an analytic ODE, torchdiffeq equivalence, registry errors."""

import math

import pytest
import torch

from genpolicy.solvers import RK4, Euler, Heun, Midpoint, make_solver, uniform_grid

from .conftest import oracle_model, whitened_normal


def _dynamics(t, y):
    # dy/dt = y cos t  -> y = exp(sin t);  dz/dt = -2 t z -> z = exp(-t^2)
    return (y[0] * torch.cos(t), -2.0 * t * y[1])


def _error(solver, steps):
    y0 = (torch.ones(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64))
    grid = uniform_grid(0.0, 2.0, steps, y0[0])
    y = solver.integrate(_dynamics, y0, grid).y
    return max(abs(float(y[0]) - math.exp(math.sin(2.0))), abs(float(y[1]) - math.exp(-4.0)))


@pytest.mark.parametrize("solver,expected,steps", [(Euler(), 2, 64), (Midpoint(), 4, 32), (Heun(), 4, 32),
                                                   (RK4(), 16, 32)])
def test_halving_the_step_reduces_error_by_order(solver, expected, steps):
    ratio = _error(solver, steps) / _error(solver, 2 * steps)
    assert expected * 0.85 < ratio < expected * 1.15, ratio


def test_integration_backwards_and_trajectory():
    y0 = torch.tensor([math.exp(math.sin(2.0))], dtype=torch.float64)
    grid = uniform_grid(2.0, 0.0, 64, y0)
    sol = RK4().integrate(lambda t, y: (y[0] * torch.cos(t),), y0, grid, keep_trajectory=True)
    assert abs(float(sol.y[0]) - 1.0) < 1e-6
    assert sol.trajectory[0].shape == (65, 1)
    torch.testing.assert_close(sol.trajectory[0][:, 0], torch.exp(torch.sin(grid)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_own_fixed_step_solvers_match_torchdiffeq(method):
    pytest.importorskip("torchdiffeq")
    model, _, _ = oracle_model("gvp", "velocity")
    x1 = torch.randn(128, 3, dtype=torch.float64)
    ours = model.sample(x1=x1, solver=method, steps=20)
    ref = model.sample(x1=x1, solver=f"torchdiffeq:{method}", steps=20)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_torchdiffeq_adaptive_matches_fine_rk4():
    pytest.importorskip("torchdiffeq")
    model, _, _ = oracle_model("linear", "velocity")
    x1 = torch.randn(64, 3, dtype=torch.float64)
    ref = model.sample(x1=x1, solver="rk4", steps=200)
    torch.testing.assert_close(model.sample(x1=x1, solver="torchdiffeq:dopri5", steps=1), ref, rtol=1e-4, atol=1e-4)


def test_dpm_solver_orders():
    """DPM-Solver-k converges at order k on the exact Gaussian noise predictor."""
    model, m, cov = oracle_model("gvp", "noise")
    z = whitened_normal(2000, 3)
    t0, t1 = model.path.time_interval("noise")
    a1, s1 = model.path.alpha(torch.tensor(t1)), model.path.sigma(torch.tensor(t1))
    x1 = z @ torch.linalg.cholesky(a1**2 * cov + s1**2 * torch.eye(3)).T + a1 * m
    ref = model.sample(x1=x1, solver="rk4", steps=400)

    def err(order, steps):
        return float((model.sample(x1=x1, solver=f"dpm{order}", steps=steps) - ref).abs().max())

    for order, (lo, hi) in {1: (1.6, 2.4), 2: (3.2, 5.0), 3: (6.0, 14.0)}.items():
        ratio = err(order, 20) / err(order, 40)
        assert lo < ratio < hi, (order, ratio)


def test_unknown_solver_names():
    with pytest.raises(ValueError, match="unknown solver 'rk5'"):
        make_solver("rk5")
    with pytest.raises(ValueError, match="torchdiffeq"):
        make_solver("torchdiffeq:nonsense")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        uniform_grid(0.0, 1.0, 0, torch.zeros(1))
    with pytest.raises(TypeError):
        make_solver(3)
