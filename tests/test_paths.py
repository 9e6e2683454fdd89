"""Paths: closed-form coefficients (Eq 17-20), f and g^2 (Eq 18-19), conversions (Eq 21, 43)."""

import math

import pytest
import torch

from genpolicy.paths import GVP, ICFM, SF2M, VPSDE, LinearPath, make_path

from .conftest import DIFFUSION_PATHS, PATH_NAMES


def _ts(path, n=64):
    lo, hi = path.time_interval("noise")
    return torch.linspace(max(lo, 0.02), min(hi, 0.98), n, dtype=torch.float64)


@pytest.mark.parametrize("name", PATH_NAMES)
def test_derivatives_match_autograd(name):
    path = make_path(name)
    t = _ts(path).requires_grad_(True)
    for fn, dfn in [(path.alpha, path.d_alpha), (path.sigma, path.d_sigma)]:
        (g,) = torch.autograd.grad(fn(t).sum(), t)
        torch.testing.assert_close(dfn(t.detach()), g, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", PATH_NAMES)
def test_drift_and_diffusion_follow_eq_18_19(name):
    path = make_path(name)
    t = _ts(path).requires_grad_(True)
    (dlog_a,) = torch.autograd.grad(torch.log(path.alpha(t)).sum(), t)
    (dsig2,) = torch.autograd.grad((path.sigma(t) ** 2).sum(), t)
    t = t.detach()
    torch.testing.assert_close(path.drift(t), dlog_a, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(path.diffusion_squared(t), dsig2 - 2 * dlog_a * path.sigma(t) ** 2, rtol=1e-8, atol=1e-8)


def test_closed_forms_of_the_paper():
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    vp = VPSDE()
    beta = 0.1 + 19.9 * t
    torch.testing.assert_close(vp.drift(t), -0.5 * beta)
    torch.testing.assert_close(vp.diffusion_squared(t), beta)
    big_b = 0.1 * t + 0.5 * 19.9 * t**2
    torch.testing.assert_close(vp.alpha(t), torch.exp(-0.5 * big_b))
    torch.testing.assert_close(vp.sigma(t), torch.sqrt(1 - torch.exp(-big_b)))
    gvp = GVP()
    torch.testing.assert_close(gvp.alpha(t), torch.cos(math.pi * t / 2))
    torch.testing.assert_close(gvp.diffusion_squared(t), math.pi * torch.tan(math.pi * t / 2))
    lin = LinearPath()
    torch.testing.assert_close(lin.diffusion_squared(t), 2 * t / (1 - t))
    torch.testing.assert_close(ICFM(0.0).sigma(t), t)
    torch.testing.assert_close(ICFM(0.1).sigma(t), torch.sqrt(t**2 + 0.01))
    torch.testing.assert_close(SF2M(1.0).sigma(t), torch.sqrt(t**2 + t * (1 - t)))


@pytest.mark.parametrize("name", DIFFUSION_PATHS)
def test_noise_score_velocity_noise_is_identity(name, f64):
    path = make_path(name)
    x = torch.randn(256, 4)
    eps = torch.randn(256, 4)
    t = 0.01 + 0.98 * torch.rand(256)
    score = path.noise_to_score(eps, x, t)
    v = path.score_to_velocity(score, x, t)
    back = path.velocity_to_noise(v, x, t)
    torch.testing.assert_close(back, eps, rtol=1e-5, atol=1e-5)
    # and every pair of kinds round-trips through convert()
    for src in ("velocity", "score", "noise", "data"):
        for dst in ("velocity", "score", "noise", "data"):
            p = path.convert(eps, x, t, "noise", src)
            torch.testing.assert_close(path.convert(path.convert(p, x, t, src, dst), x, t, dst, src), p,
                                       rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", DIFFUSION_PATHS)
def test_velocity_equals_eq_21(name, f64):
    """v = f x - g^2/2 score, written out with the path's f and g^2."""
    path = make_path(name)
    x, s = torch.randn(64, 2), torch.randn(64, 2)
    t = 0.05 + 0.9 * torch.rand(64)
    expect = path.drift(t)[:, None] * x - 0.5 * path.diffusion_squared(t)[:, None] * s
    torch.testing.assert_close(path.score_to_velocity(s, x, t), expect)


@pytest.mark.parametrize("name", PATH_NAMES)
def test_log_snr_inverse(name, f64):
    path = make_path(name)
    t = _ts(path)
    torch.testing.assert_close(path.t_of_log_snr(path.log_snr(t)), t, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("name", PATH_NAMES)
def test_conditional_path_sample(name, f64):
    path = make_path(name, **({"sigma": 0.2} if name in ("icfm", "sf2m") else {}))
    x0, x1 = torch.randn(20000, 2), torch.randn(20000, 2)
    t = torch.full((20000,), 0.4)
    ps = path.sample(x0, x1, t)
    a, s = path.alpha(t[:1]), path.sigma(t[:1])
    # x_t given x0 is N(alpha x0, sigma^2): check the residual's moments
    r = (ps.x_t - a * x0) / s
    assert abs(float(r.mean())) < 0.02 and abs(float(r.std()) - 1) < 0.02
    torch.testing.assert_close(ps.x_t, a * x0 + s * ps.eps)
    if name in ("vpsde", "gvp", "linear"):
        torch.testing.assert_close(ps.velocity, path.d_alpha(t)[:, None] * x0 + path.d_sigma(t)[:, None] * x1)


def test_icfm_target_is_x1_minus_x0():
    x0, x1 = torch.randn(8, 3), torch.randn(8, 3)
    ps = ICFM(0.0).sample(x0, x1, torch.rand(8))
    torch.testing.assert_close(ps.velocity, x1 - x0)


def test_bad_path_arguments():
    with pytest.raises(ValueError, match="unknown path"):
        make_path("ddpm")
    with pytest.raises(ValueError, match="beta0"):
        VPSDE(beta0=5, beta1=1)
    with pytest.raises(ValueError, match="sigma"):
        ICFM(-1.0)
    with pytest.raises(ValueError, match="parameterization"):
        GVP().time_interval("epsilon")
