"""GenerativeModel against closed-form Gaussian answers: sampling, log-likelihood, gradients, bad input."""

import math

import pytest
import torch

from genpolicy.analytic import GaussianOracle
from genpolicy.generative import GenerativeModel
from genpolicy.nets import MLP
from genpolicy.paths import make_path

from .conftest import PATH_NAMES, oracle_model, whitened_normal

ODE_STEPS = {"euler": 300, "midpoint": 60, "heun": 60, "rk4": 30}
OTHER_STEPS = {"dpm1": 300, "dpm2": 60, "dpm3": 30}


def test_every_registered_solver_has_a_closed_form_sampling_test():
    from genpolicy.solvers import SOLVERS

    assert set(SOLVERS) == set(ODE_STEPS) | set(OTHER_STEPS) | {"sde", "euler_maruyama"}, \
        "a new solver needs its step count in ODE_STEPS / OTHER_STEPS (the Gaussian sampling test below)"


def _exact_prior(model, m, cov, n, need):
    """Noise at the start time drawn from the exact marginal N(alpha m, alpha^2 C + sigma^2 I), whitened."""
    t1 = torch.tensor(model._interval(need)[1], dtype=torch.float64)
    a, s = model.path.alpha(t1), model.path.sigma(t1)
    chol = torch.linalg.cholesky(a**2 * cov + s**2 * torch.eye(len(m), dtype=torch.float64))
    return whitened_normal(n, len(m)) @ chol.T + a * m


def _assert_moments(x, m, cov, tol=0.02):
    std = cov.diagonal().sqrt()
    mean_err = ((x.mean(0) - m).abs() / torch.maximum(m.abs(), std)).max()
    std_err = ((x.std(0) - std).abs() / std).max()
    assert mean_err < tol and std_err < tol, (float(mean_err), float(std_err))


@pytest.mark.parametrize("param", ["velocity", "noise", "score", "data"])
@pytest.mark.parametrize("solver", list(ODE_STEPS) + list(OTHER_STEPS))
@pytest.mark.parametrize("path", PATH_NAMES)
def test_sampling_the_exact_field_reproduces_the_gaussian(path, solver, param):
    model, m, cov = oracle_model(path, param)
    steps = {**ODE_STEPS, **OTHER_STEPS}[solver]
    need = "velocity" if solver in ODE_STEPS else "noise"
    x = model.sample(x1=_exact_prior(model, m, cov, 1000, need), solver=solver, steps=steps)
    _assert_moments(x, m, cov)


@pytest.mark.parametrize("path", PATH_NAMES)
def test_sde_sampling_reproduces_the_gaussian(path):
    model, m, cov = oracle_model(path, "score")
    x = model.sample(x1=_exact_prior(model, m, cov, 20000, "noise"), solver="sde", steps=500)
    _assert_moments(x, m, cov)


@pytest.mark.parametrize("path", PATH_NAMES)
def test_default_prior_sampling(path):
    """With the model's own N(0, sigma(1)^2) prior (no exact marginal), sampling still lands on the data."""
    model, m, cov = oracle_model(path, "velocity")
    x = model.sample(n=20000, solver="rk4", steps=50)
    _assert_moments(x, m, cov, tol=0.03)


@pytest.mark.parametrize("param", ["velocity", "noise"])
@pytest.mark.parametrize("path", PATH_NAMES)
def test_exact_log_prob_matches_gaussian_density(path, param):
    model, m, cov = oracle_model(path, param)
    x = torch.distributions.MultivariateNormal(m, cov).sample((500,))
    lp = model.log_prob(x, divergence="exact", solver="rk4", steps=64)
    err = (lp - model.net.log_prob(x)).abs() / 3
    assert err.mean() < 1e-2, float(err.mean())
    # points ~3 sd out are more sensitive to the path's truncation at t_min = 1e-3 (x is read as x_{t_min}) and,
    # for VP-SDE, to its residual alpha(1) = 0.0066 (the prior ignores alpha(1) m)
    tails = m + 3 * torch.randn(50, 3, dtype=torch.float64)
    tail_err = (model.log_prob(tails, steps=64) - model.net.log_prob(tails)).abs() / 3
    assert tail_err.mean() < (5e-2 if path == "vpsde" else 2e-2), float(tail_err.mean())


def test_hutchinson_mean_matches_exact_within_standard_error():
    model, m, cov = oracle_model("gvp", "velocity")
    x = torch.distributions.MultivariateNormal(m, cov).sample((4,))
    exact = model.log_prob(x, divergence="exact", steps=16, solver="euler")
    for probe in ("gaussian", "rademacher"):
        est = torch.stack([model.log_prob(x, divergence="hutchinson", steps=16, solver="euler", probe=probe)
                           for _ in range(100)])
        mean, se = est.mean(0), est.std(0) / math.sqrt(est.shape[0])
        assert bool((se > 0).all()), "Hutchinson estimates must vary for a non-diagonal Jacobian"
        assert bool(((mean - exact).abs() < 3 * se).all()), (probe, mean - exact, se)


def test_sample_with_log_prob_agrees_with_log_prob():
    model, m, cov = oracle_model("linear", "velocity")
    out = model.sample_with_log_prob(n=200, steps=200, solver="rk4")
    torch.testing.assert_close(out.log_prob, model.net.log_prob(out.x), atol=2e-2, rtol=0)
    torch.testing.assert_close(out.log_prob, model.log_prob(out.x, steps=200), atol=2e-2, rtol=0)


def _small_model(cond_dim=0, path="gvp", param="velocity"):
    return GenerativeModel(MLP(2, cond_dim, hidden=(32, 32)), make_path(path), (2,), param=param)


@pytest.mark.parametrize("what", ["sample", "log_prob_exact", "log_prob_hutchinson", "sample_with_log_prob"])
def test_grad_true_gives_parameter_gradients(what):
    model = _small_model(cond_dim=3)
    cond = torch.randn(8, 3)
    if what == "sample":
        out = model.sample(cond, steps=4, grad=True)
    elif what == "sample_with_log_prob":
        out = model.sample_with_log_prob(cond, steps=4, grad=True).log_prob
    else:
        x = torch.randn(8, 2)
        out = model.log_prob(x, cond, divergence=what.split("_")[-1], steps=4, grad=True)
    assert out.requires_grad
    out.sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_log_prob_gradient_wrt_input_flows_when_asked():
    model = _small_model()
    x = torch.randn(5, 2, requires_grad=True)
    model.log_prob(x, steps=4, grad=True).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize("what", ["sample", "log_prob_exact", "log_prob_hutchinson", "sample_with_log_prob"])
def test_grad_false_gives_no_gradients_and_no_graph(what):
    model = _small_model()
    if what == "sample":
        out = model.sample(n=8, steps=4)
    elif what == "sample_with_log_prob":
        out = model.sample_with_log_prob(n=8, steps=4).log_prob
    else:
        out = model.log_prob(torch.randn(8, 2), divergence=what.split("_")[-1], steps=4)
    assert not out.requires_grad and out.grad_fn is None
    assert all(p.grad is None for p in model.parameters())


def test_grad_through_sampling_matches_finite_differences(f64):
    """d/dgain of the sample mean through the Euler solver, against a central difference."""
    model, m, cov = oracle_model("gvp", "velocity")
    x1 = torch.randn(64, 3)
    out = model.sample(x1=x1, steps=10, grad=True).sum()
    (g,) = torch.autograd.grad(out, model.net.gain)
    eps = 1e-6
    with torch.no_grad():
        model.net.gain += eps
        up = model.sample(x1=x1, steps=10).sum()
        model.net.gain -= 2 * eps
        down = model.sample(x1=x1, steps=10).sum()
        model.net.gain += eps
    torch.testing.assert_close(g, (up - down) / (2 * eps), rtol=1e-5, atol=1e-5)


def test_log_prob_parameter_gradient_through_layer_norm_matches_finite_differences(f64):
    """GMPG differentiates the exact divergence (d vector-Jacobian products, then backward again) with respect to
    the weights. On the paper's U-Net (LayerNorm blocks), against central differences in float64. (Forward mode,
    torch.func.jvp under vmap, was tried for the same divergence: 8-25 % slower on CPU, and torch 2.13's
    reverse-over-forward gradient through LayerNorm was off by 2-4 % against these differences.)"""
    from genpolicy.nets import MLPUNet

    torch.manual_seed(0)
    model = GenerativeModel(MLPUNet(3, 4, hidden=(16, 8)), make_path("gvp"), (3,)).double()
    x, cond = torch.randn(6, 3), torch.randn(6, 4)
    norm = [p for n, p in model.named_parameters() if "norm" in n]
    assert norm, "the net must have LayerNorm weights for this test to mean anything"
    params = norm + [next(model.parameters())]
    grads = torch.autograd.grad(model.log_prob(x, cond, steps=3, solver="midpoint", grad=True).sum(), params)
    eps = 1e-6
    for p, g in zip(params, grads):
        i = int(g.abs().flatten().argmax())  # the element with the largest gradient
        with torch.no_grad():
            p.view(-1)[i] += eps
            up = model.log_prob(x, cond, steps=3, solver="midpoint").sum()
            p.view(-1)[i] -= 2 * eps
            down = model.log_prob(x, cond, steps=3, solver="midpoint").sum()
            p.view(-1)[i] += eps
        assert float(g.abs().max()) > 1e-3
        torch.testing.assert_close(g.flatten()[i], (up - down) / (2 * eps), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("divergence", ["exact", "hutchinson"])
def test_functional_log_prob_equals_autograd_values_and_gradients(divergence, f64):
    """functional=True builds the same divergence with torch.func (what a compiled GMPG step traces): values and
    parameter gradients (through LayerNorm, under an outer torch.func.grad) equal the autograd path's."""
    from torch.func import grad_and_value

    from genpolicy.nets import MLPUNet

    torch.manual_seed(0)
    model = GenerativeModel(MLPUNet(3, 4, hidden=(16, 8)), make_path("gvp"), (3,)).double()
    cond = torch.randn(6, 4)
    params = {k: p.detach() for k, p in model.named_parameters()}

    def loss(params, functional):
        torch.manual_seed(1)  # the same prior noise and probe on both paths
        with torch.nn.utils.stateless._reparametrize_module(model, params):
            s = model.sample_with_log_prob(cond, divergence=divergence, steps=3, solver="midpoint", grad=True,
                                           functional=functional)
            lp = model.log_prob(s.x, cond, divergence=divergence, steps=3, solver="midpoint", grad=True,
                                functional=functional)
        return (s.log_prob - lp).sum() + s.x.pow(2).sum()

    g_func, v_func = grad_and_value(loss)(params, True)
    leaves = {k: p.clone().requires_grad_(True) for k, p in params.items()}
    v_ref = loss(leaves, False)
    g_ref = dict(zip(leaves, torch.autograd.grad(v_ref, list(leaves.values()))))
    torch.testing.assert_close(v_func, v_ref.detach(), rtol=1e-10, atol=1e-10)
    assert any("norm" in k and float(g_ref[k].abs().max()) > 1e-3 for k in g_ref)
    for k in g_ref:
        torch.testing.assert_close(g_func[k], g_ref[k], rtol=1e-9, atol=1e-10, msg=k)
    with pytest.raises(ValueError, match="fixed-step"):
        model.log_prob(torch.randn(2, 3), cond[:2], solver="torchdiffeq:dopri5", functional=True)


def test_adjoint_gradient_matches_direct_backprop(f64):
    pytest.importorskip("torchdiffeq")
    model = GenerativeModel(MLP(2, 0, hidden=(16,)), make_path("linear"), (2,)).double()
    x1 = torch.randn(16, 2)

    def grads(solver):
        model.zero_grad()
        model.sample(x1=x1, solver=solver, steps=8, grad=True).pow(2).sum().backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    adjoint, direct = grads("torchdiffeq-adjoint:rk4"), grads("rk4")
    assert float(direct.abs().max()) > 0
    assert float((adjoint - direct).abs().max() / direct.abs().max()) < 1e-3


def test_conditional_shapes_and_tensordict_conditions():
    model = _small_model(cond_dim=5)
    cond = torch.randn(4, 5)
    assert model.sample(cond, steps=2).shape == (4, 2)
    assert model.sample(cond, n=3, steps=2).shape == (4, 3, 2)
    assert model.log_prob(torch.randn(4, 2), cond, steps=2).shape == (4,)
    out = model.sample_with_log_prob(cond, n=3, steps=2)
    assert out.x.shape == (4, 3, 2) and out.log_prob.shape == (4, 3)
    assert model.matching_loss(torch.randn(4, 2), cond).shape == (4,)
    td = pytest.importorskip("tensordict")
    tdc = td.TensorDict({"pos": cond[:, :3], "vel": cond[:, 3:]}, batch_size=[4])
    torch.manual_seed(1)
    a = model.sample(tdc, n=2, steps=2)
    torch.manual_seed(1)
    b = model.sample(cond, n=2, steps=2)
    torch.testing.assert_close(a, b)  # sorted-key concatenation equals the flat condition
    assert model.log_prob(torch.randn(4, 2), tdc, steps=2).shape == (4,)


def test_unconditional_shapes():
    model = _small_model()
    assert model.sample(n=6, steps=2).shape == (6, 2)
    traj = model.sample_trajectory(n=5, steps=7)
    assert traj.xs.shape == (8, 5, 2) and traj.times.shape == (8,)
    assert float(traj.times[0]) == 1.0 and float(traj.times[-1]) == 0.0


class TestBadInput:
    def test_wrong_x_shape(self):
        model = _small_model(cond_dim=3)
        with pytest.raises(ValueError, match=r"x has shape \(4, 3\); wanted \(B, 2\)"):
            model.log_prob(torch.randn(4, 3), torch.randn(4, 3))
        with pytest.raises(ValueError, match="x0 has shape"):
            model.matching_loss(torch.randn(4), torch.randn(4, 3))

    def test_wrong_cond_batch(self):
        model = _small_model(cond_dim=3)
        with pytest.raises(ValueError, match="cond has batch size 5 .* x has batch size 4"):
            model.log_prob(torch.randn(4, 2), torch.randn(5, 3))

    def test_wrong_cond_width(self):
        model = _small_model(cond_dim=3)
        with pytest.raises(ValueError, match="expects a condition of 3 features"):
            model.sample(torch.randn(4, 7), steps=2)
        with pytest.raises(ValueError, match="unconditional"):
            _small_model().sample(torch.randn(4, 7), steps=2)

    def test_t_outside_unit_interval(self):
        model = _small_model()
        with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
            model.velocity(torch.randn(4, 2), torch.full((4,), 1.5))
        with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
            model.matching_loss(torch.randn(4, 2), t=torch.full((4,), -0.1))
        with pytest.raises(ValueError, match="t has shape"):
            model.velocity(torch.randn(4, 2), torch.rand(3))

    def test_unknown_names(self):
        model = _small_model()
        with pytest.raises(ValueError, match="unknown solver"):
            model.sample(n=2, solver="leapfrog")
        with pytest.raises(ValueError, match="need an ODE solver"):
            model.log_prob(torch.randn(2, 2), solver="sde")
        with pytest.raises(ValueError, match="unknown divergence"):
            model.log_prob(torch.randn(2, 2), divergence="trace")
        with pytest.raises(ValueError, match="unknown loss kind"):
            model.matching_loss(torch.randn(2, 2), kind="ddpm")
        with pytest.raises(ValueError, match="unknown parameterization"):
            GenerativeModel(MLP(2), "gvp", (2,), param="eps")

    def test_nan_inputs(self):
        model = _small_model(cond_dim=3)
        x = torch.randn(4, 2)
        x[1, 0] = float("nan")
        with pytest.raises(ValueError, match="x contains 1 non-finite"):
            model.log_prob(x, torch.randn(4, 3))
        c = torch.randn(4, 3)
        c[0, 0] = float("inf")
        with pytest.raises(ValueError, match="cond contains 1 non-finite"):
            model.sample(c, steps=2)
        with pytest.raises(ValueError, match="x0 contains"):
            model.matching_loss(x, torch.randn(4, 3))

    def test_missing_n(self):
        with pytest.raises(ValueError, match="needs n"):
            _small_model().sample()

    def test_score_matching_with_ot_coupling_is_refused(self):
        model = GenerativeModel(MLP(2), "icfm", (2,), coupling="ot")
        with pytest.raises(ValueError, match="independent coupling"):
            model.matching_loss(torch.randn(4, 2), kind="score")


class TestMatchingLoss:
    @pytest.mark.parametrize("path", PATH_NAMES)
    def test_flow_loss_is_minimised_by_the_exact_field(self, path, f64):
        """The true marginal velocity has lower CFM loss than perturbed fields (same draws)."""
        model, m, cov = oracle_model(path, "velocity")
        x0 = torch.distributions.MultivariateNormal(m, cov).sample((20000,))
        t, x1 = torch.rand(20000).clamp(0.01, 0.99), torch.randn(20000, 3)
        losses = {}
        for gain in (0.9, 1.0, 1.1):
            with torch.no_grad():
                model.net.gain.fill_(gain)
                torch.manual_seed(3)
                losses[gain] = float(model.matching_loss(x0, t=t, x1=x1).mean())
        assert losses[1.0] < losses[0.9] and losses[1.0] < losses[1.1], losses

    def test_score_loss_vanilla_and_ml_weights(self, f64):
        net = GaussianOracle(make_path("vpsde"), torch.zeros(2), torch.ones(2), "noise")
        model = GenerativeModel(net, "vpsde", (2,), param="noise")
        x0, x1, t = torch.randn(6, 2), torch.randn(6, 2), torch.rand(6) * 0.9 + 0.05
        path = model.path
        xt = path.alpha(t)[:, None] * x0 + path.sigma(t)[:, None] * x1
        eps_hat = net(xt, t)
        vanilla = 0.5 * ((eps_hat - x1) ** 2).sum(1)
        torch.testing.assert_close(model.matching_loss(x0, kind="score", t=t, x1=x1), vanilla)
        # lambda = g^2: 1/2 g^2 ||s + eps/sigma||^2
        s_hat = -eps_hat / path.sigma(t)[:, None]
        ml = 0.5 * path.diffusion_squared(t) * ((s_hat + x1 / path.sigma(t)[:, None]) ** 2).sum(1)
        torch.testing.assert_close(model.matching_loss(x0, kind="score", weighting="maximum_likelihood", t=t, x1=x1), ml)

    def test_flow_loss_value(self, f64):
        net = MLP(2, 0, hidden=(8,)).double()
        model = GenerativeModel(net, "linear", (2,))
        x0, x1, t = torch.randn(5, 2), torch.randn(5, 2), torch.rand(5)
        xt = (1 - t)[:, None] * x0 + t[:, None] * x1
        expect = 0.5 * ((net(xt, t) - (x1 - x0)) ** 2).sum(1)
        torch.testing.assert_close(model.matching_loss(x0, t=t, x1=x1), expect)


@pytest.mark.parametrize("path", ["gvp", "linear"])
def test_sampling_temperature_scales_the_covariance(path):
    """With alpha(1) = 0 the probability-flow map of N(m, C) is x0 = m + C^(1/2) x1 / sigma(1): noise of scale tau
    gives N(m, tau^2 C), and tau = 0 gives m itself."""
    model, m, cov = oracle_model(path, "velocity")
    torch.manual_seed(0)
    x = model.sample(n=20000, solver="rk4", steps=50, temperature=0.5)
    _assert_moments(x.double(), m, 0.25 * cov, tol=0.03)
    x0 = model.sample(n=10, solver="rk4", steps=50, temperature=0.0)
    torch.testing.assert_close(x0.double(), m.expand(10, -1), atol=2e-3, rtol=0)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(n=2, temperature=-1.0)


def test_a_generator_makes_samples_repeat_and_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    model = GenerativeModel(MLP(2, 3, hidden=(16,)), make_path("vpsde"), (2,), param="noise")
    cond = torch.randn(5, 3)
    state = torch.random.get_rng_state()
    a = model.sample(cond, n=4, steps=3, generator=torch.Generator().manual_seed(7))
    b = model.sample(cond, n=4, steps=3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, model.sample(cond, n=4, steps=3, generator=torch.Generator().manual_seed(8)))


@pytest.mark.parametrize("path_name", PATH_NAMES)
@pytest.mark.parametrize("solver,steps,atol", [("dpm1", 8, 1e-9), ("euler", 1600, 0.01)])
def test_clip_denoised_follows_the_closed_form_flow_of_a_clamped_estimate(path_name, solver, steps, atol):
    # data N(2, 0.001^2): the denoised estimate E[x0 | x_t] stays near 2 > 1 along the whole solve, so clamped at 1
    # it is the constant 1, and the flow dx/dt = alpha' + sigma' (x - alpha) / sigma is solved by
    # x_t = alpha_t + sigma_t (x_1 - alpha_1) / sigma_1 (DDIM = dpm1 is exact for a constant estimate; Euler close)
    path = make_path(path_name)
    oracle = GaussianOracle(path, torch.tensor([2.0], dtype=torch.float64),
                            torch.tensor([1e-6], dtype=torch.float64), "noise")
    model = GenerativeModel(oracle, path, (1,), param="noise")
    t0, t1 = (torch.tensor(t, dtype=torch.float64) for t in model.path.time_interval("noise"))
    x1 = torch.randn(500, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = model.sample(x1=x1, solver=solver, steps=steps, clip_denoised=1.0)
    expected = path.alpha(t0) + path.sigma(t0) * (x1 - path.alpha(t1)) / path.sigma(t1)
    torch.testing.assert_close(x, expected, atol=atol, rtol=0)
    unclipped = model.sample(x1=x1, solver=solver, steps=steps)
    assert abs(unclipped.mean().item() - 2.0) < 0.05  # the clamp is what moved the samples from 2 to 1
    far = model.sample(x1=x1, solver=solver, steps=steps, clip_denoised=1e3)  # a bound never reached: no change
    torch.testing.assert_close(far, unclipped, atol=1e-9, rtol=1e-9)


def test_clip_denoised_must_be_positive():
    model = GenerativeModel(MLP(2, 0, hidden=(8,)), make_path("vpsde"), (2,), param="noise")
    with pytest.raises(ValueError, match="clip_denoised must be > 0"):
        model.sample(n=3, clip_denoised=0.0)


@pytest.mark.parametrize("solver", ["euler", "midpoint", "rk4", "sde", "dpm2"])
def test_solver_times_are_the_times_sample_reads_the_network_at(solver):
    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.seen = MLP(2, 0, hidden=(8,)), set()

        def forward(self, x, t, cond):
            self.seen.update(t.tolist())
            return self.net(x, t, cond)

    rec = Recorder()
    model = GenerativeModel(rec, make_path("vpsde"), (2,), param="noise")
    model.sample(n=4, solver=solver, steps=5)
    times = model.solver_times(solver, 5)
    torch.testing.assert_close(times, torch.tensor(sorted(rec.seen)), rtol=0, atol=1e-6)
    if solver == "euler":  # the starts of the 5 steps of the uniform grid
        t0, t1 = model.path.time_interval("noise")
        torch.testing.assert_close(times, torch.linspace(t1, t0, 6)[:-1].flip(0), rtol=0, atol=1e-6)
