"""GMPG (Eq 8, 42): closed-form optimum on a 1-D Gaussian, zero KL after the copy, adjoint == direct gradients,
finite gradients near t=0 on every path, non-finite steps skipped, chunking, CLI smoke."""

import json
import warnings
from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from genpolicy.cli import main
from genpolicy.generative import GenerativeModel
from genpolicy.nets import MLP
from genpolicy.optim import ensure_adam_state
from genpolicy.paths import expand_t, make_path
from genpolicy.policy import load_policy
from genpolicy.rl.algos.gmpg import GMPG, GMPGConfig
from genpolicy.rl.policy_gradient import (gmpg_static_terms, gmpg_terms, grad_solver, kl_weight, resolve_divergence,
                                          saved_bytes_per_row_step)
from genpolicy.rl.data import Batch

from .conftest import PATH_NAMES
from .test_train_cli import TINY, bandit_file  # noqa: F401  (fixture)


class GaussianVelocity(nn.Module):
    """The exact velocity field of data N(mean, diag(std^2)) on ``path``, with mean and log-std learnable.

    A policy family that contains both mu and the optimum of Eq 8, so the optimum can be checked exactly.
    """

    def __init__(self, path, mean, std):
        super().__init__()
        self.path = path
        self.mean = nn.Parameter(torch.tensor(mean))
        self.log_std = nn.Parameter(torch.tensor(std).log())

    def forward(self, x, t, cond=None):
        p = self.path
        a, s = expand_t(p.alpha(t), x), expand_t(p.sigma(t), x)
        da, ds = expand_t(p.d_alpha(t), x), expand_t(p.d_sigma(t), x)
        lam = torch.exp(2 * self.log_std)
        return (a * da * lam + s * ds) / (a * a * lam + s * s) * (x - a * self.mean) + da * self.mean


M0, S0, SLOPE, BETA = 0.3, 0.5, 2.0, 1.0
TARGET_SHIFT = BETA * SLOPE * S0**2  # pi* ~ mu exp(beta k a) = N(m + beta k s^2, s^2)


def _gaussian_pair(path_name="linear"):
    path = make_path(path_name)
    mu = GenerativeModel(GaussianVelocity(path, [M0], [S0]), path, (1,)).requires_grad_(False)
    pi = GenerativeModel(GaussianVelocity(path, [M0], [S0]), path, (1,))
    return mu, pi


@pytest.mark.parametrize("divergence,log_pi", [("exact", "forward"), ("hutchinson", "forward"),
                                               ("exact", "reverse"), ("hutchinson", "reverse")])
def test_gmpg_reaches_the_shifted_gaussian(divergence, log_pi):
    """Q(a) = k a and mu = N(m, s^2): Eq 8's optimum is N(m + beta k s^2, s^2); reached within 10%, with log pi
    from the sampling solve or from the reverse solve."""
    torch.manual_seed(0)
    mu, pi = _gaussian_pair()
    opt = torch.optim.Adam(pi.parameters(), lr=0.04)
    for _ in range(120):
        tr = gmpg_terms(pi, mu, lambda c, a: SLOPE * a.sum(-1), None, BETA, "midpoint", 8, divergence, n=256,
                        log_pi=log_pi)
        opt.zero_grad()
        tr["loss"].mean().backward()
        opt.step()
    shift = pi.net.mean.item() - M0
    assert abs(shift - TARGET_SHIFT) < 0.1 * TARGET_SHIFT, shift
    assert abs(pi.net.log_std.exp().item() - S0) < 0.1 * S0
    # the KL at the optimum is shift^2 / (2 s^2) = 0.5 nats
    assert abs(tr["kl"].mean().item() - TARGET_SHIFT**2 / (2 * S0**2)) < 0.15


def test_gmpg_static_reaches_the_shifted_gaussian():
    """Eq 42 with actions from mu and self-normalized weights exp(beta Q)/Z: same optimum."""
    torch.manual_seed(0)
    mu, pi = _gaussian_pair()
    opt = torch.optim.Adam(pi.parameters(), lr=0.04)
    for _ in range(150):
        with torch.no_grad():
            s = mu.sample_with_log_prob(None, n=512, solver="midpoint", steps=8)
            q = SLOPE * s.x.sum(-1)
            w = torch.softmax(BETA * q, 0) * q.shape[0]
        tr = gmpg_static_terms(pi, s.x, None, w, q, s.log_prob, BETA, "midpoint", 8, "exact")
        opt.zero_grad()
        tr["loss"].mean().backward()
        opt.step()
    shift = pi.net.mean.item() - M0
    assert abs(shift - TARGET_SHIFT) < 0.1 * TARGET_SHIFT, shift


def test_gmpg_in_bits_per_dimension_reaches_its_shifted_gaussian():
    """kl_unit=bit_per_dim (GenerativeRL's log p / (act_dim ln 2)) on a 1-D action: Eq 8 with the KL divided by
    ln 2, whose optimum is mu exp(beta ln2 k a) = N(m + beta ln2 k s^2, s^2); reached within 10%."""
    torch.manual_seed(0)
    mu, pi = _gaussian_pair()
    c = kl_weight("bit_per_dim", 1)
    assert c == pytest.approx(1 / np.log(2.0), rel=1e-12)
    opt = torch.optim.Adam(pi.parameters(), lr=0.04)
    for _ in range(120):
        tr = gmpg_terms(pi, mu, lambda c_, a: SLOPE * a.sum(-1), None, BETA, "midpoint", 8, "exact", n=256,
                        kl_scale=c)
        opt.zero_grad()
        tr["loss"].mean().backward()
        opt.step()
    target = BETA * np.log(2.0) * SLOPE * S0**2
    shift = pi.net.mean.item() - M0
    assert abs(shift - target) < 0.1 * target, (shift, target)
    assert abs(pi.net.log_std.exp().item() - S0) < 0.1 * S0


def _mlp_pair_near_copy():
    """A frozen 2-D MLP behaviour model mu, a policy pi = mu + small noise, 16 states, and a Q that depends on both."""
    torch.manual_seed(0)
    path = make_path("gvp")
    mu = GenerativeModel(MLP(2, 3, hidden=(16, 16), emb_dim=8), path, (2,)).requires_grad_(False)
    pi = GenerativeModel(MLP(2, 3, hidden=(16, 16), emb_dim=8), path, (2,))
    pi.load_state_dict(mu.state_dict())
    with torch.no_grad():
        for p in pi.parameters():
            p.add_(0.05 * torch.randn_like(p))
    q_fn = lambda c, a: -(a**2).sum(-1) + c[:, :2].mul(a).sum(-1)  # noqa: E731
    return mu, pi, torch.randn(16, 3), q_fn


def test_kl_unit_is_a_rescaled_beta():
    """The loss in bits per dimension is c (-(beta / c) Q + KL) with c = 1 / (d ln 2): its gradient is c times the
    nat loss's gradient at beta / c, on the same noise; the returned kl stays in nats; the static surrogate's
    coefficient and score are both in the unit (GenerativeRL's REINFORCE loss)."""
    mu, pi, obs, q_fn = _mlp_pair_near_copy()
    c = kl_weight("bit_per_dim", 2)
    assert c == pytest.approx(1 / (2 * np.log(2.0)), rel=1e-12) and kl_weight("nat", 2) == 1.0
    grads, terms = {}, {}
    for name, beta, scale in (("bits", 2.0, c), ("nat", 2.0 / c, 1.0)):
        torch.manual_seed(1)
        pi.zero_grad()
        terms[name] = tr = gmpg_terms(pi, mu, q_fn, obs, beta, "rk4", 8, "exact", kl_scale=scale)
        tr["loss"].mean().backward()
        grads[name] = torch.cat([p.grad.reshape(-1) for p in pi.parameters()])
    b, n = terms["bits"], terms["nat"]
    torch.testing.assert_close(b["kl"], n["kl"], rtol=0, atol=0)  # same noise: the same nats
    torch.testing.assert_close(b["loss"], -2.0 * b["q"] + c * b["kl"])
    assert grads["nat"].norm() > 1e-3
    torch.testing.assert_close(grads["bits"], c * grads["nat"], rtol=1e-4, atol=1e-7)
    # static: weights * (-beta Q + c (log pi - log mu)) * c log pi
    with torch.no_grad():
        s = mu.sample_with_log_prob(obs, solver="rk4", steps=8)
        q = q_fn(obs, s.x)
    w = torch.ones(16)
    st = gmpg_static_terms(pi, s.x, obs, w, q, s.log_prob, 2.0, "rk4", 8, "exact", kl_scale=c)
    lp = st["log_pi"].detach()
    torch.testing.assert_close(st["loss"].detach(), (-2.0 * q + c * (lp - s.log_prob)) * c * lp)
    with pytest.raises(ValueError, match="kl_unit"):
        kl_weight("bits", 2)
    with pytest.raises(ValueError, match="kl_unit"):
        GMPGConfig(kl_unit="bits")
    assert GMPG(3, 2, GMPGConfig(kl_unit="bit_per_dim", net="mlp", net_hidden=(8,), critic_hidden=(8,))).kl_scale == c


def _small_gmpg(**kw):
    kw = {"net": "mlp", "net_hidden": (32, 32), "critic_hidden": (32, 32), "train_solver": "rk4", "train_steps": 20,
          **kw}
    cfg = GMPGConfig(**kw)
    return GMPG(3, 2, cfg)


def test_kl_is_zero_right_after_the_copy():
    """Near 0 with log pi from the sampling solve (the forward and reverse solves differ by the solver's error);
    exactly 0 with the reverse solve, which evaluates pi_theta = mu as log mu is evaluated."""
    torch.manual_seed(0)
    algo = _small_gmpg()
    with torch.no_grad():  # move mu away from its init so the check is not about a trivial field
        for p in algo.behaviour.parameters():
            p.add_(0.1 * torch.randn_like(p))
    algo.init_policy_from_behaviour()
    algo.behaviour.requires_grad_(False)
    obs = torch.randn(64, 3)
    kl = {}
    for log_pi in ("forward", "reverse"):
        tr = gmpg_terms(algo.policy, algo.behaviour, lambda c, a: a.sum(-1), obs, 1.0, "rk4", 20, "exact",
                        log_pi=log_pi)
        assert tr["log_pi"].abs().mean() > 0.5  # a real density, not a degenerate one
        kl[log_pi] = tr["kl"].abs().max().item()
    assert 0 < kl["forward"] < 1e-3
    assert kl["reverse"] == 0.0
    with pytest.raises(ValueError, match="log_pi"):
        gmpg_terms(algo.policy, algo.behaviour, lambda c, a: a.sum(-1), obs, 1.0, "rk4", 2, "exact", log_pi="both")
    with pytest.raises(ValueError, match="log_pi"):
        GMPGConfig(log_pi="both")


def test_reverse_log_pi_is_the_policys_own_density_with_its_gradient():
    """log_pi=reverse: log pi_theta(a) is the reverse solve's density of the sampled a under pi_theta (the exact
    Gaussian density to 1e-4 at rk4 T = 16). On the Gaussian family, with mu fixed and Q = 0, the loss is the KL
    estimate; its gradient in pi's mean is the closed form d/dm KL(N(m, s^2) || N(m0, s^2)) = (m - m0) / s^2."""
    torch.manual_seed(0)
    mu, pi = _gaussian_pair()
    with torch.no_grad():
        pi.net.mean.add_(0.2)
    tr = gmpg_terms(pi, mu, lambda c, a: torch.zeros_like(a.sum(-1)), None, BETA, "rk4", 16, "exact", n=4096,
                    log_pi="reverse")
    a = tr["a"].detach()
    want = pi.log_prob(a, None, steps=16, solver="rk4")
    torch.testing.assert_close(tr["log_pi"].detach(), want, rtol=0, atol=0)
    exact = torch.distributions.Normal(M0 + 0.2, S0).log_prob(a[:, 0])
    torch.testing.assert_close(want, exact, rtol=0, atol=1e-4)
    tr["loss"].mean().backward()
    assert pi.net.mean.grad.item() == pytest.approx(0.2 / S0**2, rel=0.05)


def test_adjoint_and_direct_gradients_agree(f64):
    pytest.importorskip("torchdiffeq")
    mu, pi, obs, q_fn = _mlp_pair_near_copy()
    grads = {}
    for divergence, log_pi in (("exact", "forward"), ("hutchinson", "forward"), ("exact", "reverse")):
        for mode in ("direct", "adjoint"):
            torch.manual_seed(1)  # the same noise and probe for both modes
            pi.zero_grad()
            tr = gmpg_terms(pi, mu, q_fn, obs, 2.0, grad_solver("rk4", mode), 16, divergence, log_pi=log_pi)
            tr["loss"].mean().backward()
            grads[divergence, mode] = torch.cat([p.grad.reshape(-1) for p in pi.parameters()])
        g_d, g_a = grads[divergence, "direct"], grads[divergence, "adjoint"]
        assert g_d.norm() > 1e-3
        assert float((g_d - g_a).norm() / g_d.norm()) < 1e-3, (divergence, log_pi)


@pytest.mark.parametrize("path_name", PATH_NAMES)
def test_log_prob_gradients_are_finite_near_t0(path_name):
    """The velocity parameterization keeps d log pi / d theta finite down to the interval's t=0 end."""
    torch.manual_seed(0)
    path = make_path(path_name)
    pi = GenerativeModel(MLP(2, 3, hidden=(16, 16), emb_dim=8), path, (2,))
    t0, _ = pi._interval("velocity")
    assert t0 < 1e-2
    obs = torch.randn(32, 3)
    s = pi.sample_with_log_prob(obs, steps=32, solver="euler", grad=True)
    lp = pi.log_prob(s.x, obs, steps=32, solver="euler", grad=True)
    (s.log_prob.mean() + lp.mean()).backward()
    for p in pi.parameters():
        assert torch.isfinite(p.grad).all()
    # and the divergence's parameter gradient right at t0
    x = torch.randn(32, 2, requires_grad=True)
    v = pi.velocity(x, torch.full((32,), t0), obs)
    div = sum(torch.autograd.grad(v[:, i].sum(), x, create_graph=True)[0][:, i] for i in range(2))
    gs = torch.autograd.grad(div.sum(), [p for p in pi.parameters()], allow_unused=True)
    assert all(torch.isfinite(g).all() for g in gs if g is not None)


def _batch(n=24, obs_dim=3, act_dim=2):
    return Batch(obs=torch.randn(n, obs_dim), actions=torch.rand(n, act_dim) * 2 - 1, rewards=torch.zeros(n),
                 next_obs=torch.randn(n, obs_dim), dones=torch.zeros(n))


def test_policy_step_updates_and_logs_kl_per_dim():
    torch.manual_seed(0)
    algo = _small_gmpg(train_solver="euler", train_steps=4)
    before = [p.detach().clone() for p in algo.policy.parameters()]
    m = algo.update_policy(_batch())
    assert bool(algo.policy_initialized)
    assert abs(float(m["kl_per_dim"])) < 0.05  # first step starts from the copy
    assert float(m["skipped"]) == 0 and torch.isfinite(m["grad_norm"])
    assert any(not torch.equal(a, b) for a, b in zip(before, algo.policy.parameters()))
    # behaviour is frozen in the policy stage
    assert all(p.grad is None for p in algo.behaviour.parameters())


def _gaussian_gmpg(**kw):
    """GMPG on a 1-D action whose behaviour model and policy are the Gaussian family (mu = N(M0, S0^2)) and whose
    critic is Q(s, a) = SLOPE a, so that Eq 8's optimum and the KL of any policy are known in closed form."""
    algo = GMPG(1, 1, GMPGConfig(net="mlp", net_hidden=(4,), critic_hidden=(4,), train_solver="midpoint",
                                 train_steps=8, grad_clip=0.0, beta=BETA, **kw))
    mu, pi = _gaussian_pair()
    algo.behaviour, algo.policy = mu, pi
    algo.policy_opt = torch.optim.Adam(pi.parameters(), lr=0.01)
    algo.critic.q = lambda obs, a: SLOPE * a.sum(-1)
    return algo


@pytest.mark.parametrize("functional", [False, True])
def test_kl_stop_ends_the_policy_stage_at_the_trust_regions_edge(functional):
    """Unconstrained, Eq 8 shifts mu's mean by beta k s^2 = 0.5 (KL 0.5 nats). With kl_stop = eps = 0.125 the
    updates end at the first step whose KL estimate passes eps, i.e. near the edge of the trust region KL <= eps:
    the shift s sqrt(2 eps) = 0.25 (within 15%: the estimate's noise and one step's move), the step that crossed is
    not applied, no later step moves the policy, and the flag survives a state-dict round trip."""
    torch.manual_seed(0)
    eps = 0.125
    algo = _gaussian_gmpg(kl_stop=eps)
    algo.prepare_policy()
    ensure_adam_state(algo.policy_opt)  # (the loop's set-up for a functional step)
    step = partial(algo.update_policy, functional=True) if functional else algo.update_policy
    batch = _batch(n=256, obs_dim=1, act_dim=1)  # (Q and the Gaussian family ignore the states)
    kls, stopped_at = [], None
    for i in range(200):
        before = algo.policy.net.mean.item()
        m = step(batch)
        if stopped_at is None and float(m["kl_stopped"]):
            stopped_at = i
            assert float(m["kl_per_dim"]) > eps and algo.policy.net.mean.item() == before  # not applied
            frozen = [p.detach().clone() for p in algo.policy.parameters()]
        elif stopped_at is None:
            kls.append(float(m["kl_per_dim"]))
    assert stopped_at is not None and max(kls) <= eps
    shift = algo.policy.net.mean.item() - M0
    assert abs(shift - S0 * np.sqrt(2 * eps)) < 0.15 * S0 * np.sqrt(2 * eps), shift
    assert all(torch.equal(a, b) for a, b in zip(frozen, algo.policy.parameters()))
    assert bool(algo.kl_stopped) and float(m["kl_stopped"]) == 1.0
    fresh = _gaussian_gmpg(kl_stop=eps)
    fresh.load_state_dict(algo.state_dict())
    assert fresh._kl_stopped
    free = _gaussian_gmpg()  # the same steps without kl_stop: Eq 8's own optimum, 0.5
    free.prepare_policy()
    for _ in range(200):
        m = free.update_policy(batch)
    assert free.policy.net.mean.item() - M0 > 0.4 and "kl_stopped" not in m
    assert "kl_stopped" not in free.state_dict() and "kl_stopped" in algo.state_dict()
    with pytest.raises(ValueError, match="kl_stop"):
        GMPGConfig(kl_stop=-1.0)
    with pytest.raises(ValueError, match="kl_stop: the dynamic variant only"):
        GMPGConfig(kl_stop=0.2, variant="static")


def test_non_finite_steps_are_skipped_and_counted(monkeypatch):
    torch.manual_seed(0)
    algo = _small_gmpg(train_solver="euler", train_steps=4)
    algo.update_policy(_batch())
    before = [p.detach().clone() for p in algo.policy.parameters()]
    monkeypatch.setattr(algo.critic, "q", lambda o, a: a.sum(-1) * float("nan"))
    m = algo.update_policy(_batch())
    assert float(m["skipped"]) == 1 and int(algo.skipped_steps) == 1 and float(m["skipped_total"]) == 1
    assert all(torch.equal(a, b) for a, b in zip(before, algo.policy.parameters()))
    assert "skipped_steps" in algo.state_dict()  # the count survives checkpoints


def test_chunking_follows_the_memory_budget():
    algo = _small_gmpg(train_solver="euler", train_steps=32)
    per = algo.chunk_rows(1)  # measures once
    assert per == 1 and algo._bytes_per_row_step > 0
    budget_rows = int(algo.cfg.memory_budget_mb * 2**20 // (algo._bytes_per_row_step * 32))
    assert algo.chunk_rows(10**9) == budget_rows
    algo.cfg.memory_budget_mb = 1
    small = algo.chunk_rows(4096)
    assert 1 <= small < 4096
    # a chunked step runs and matches the unchunked loss statistically (same model, many rows)
    torch.manual_seed(0)
    algo.cfg.chunk_size = 7
    m = algo.update_policy(_batch(n=30))
    assert float(m["chunk_rows"]) == 7 and torch.isfinite(m["policy_loss"])


def test_saved_bytes_measures_the_graph():
    w = torch.randn(10, 10, requires_grad=True)
    b = saved_bytes_per_row_step(lambda r, s: (torch.randn(r * s, 10) @ w).tanh().sum(), rows=4, steps=2)
    assert b >= 2 * 10 * 4  # at least the matmul input and the tanh output rows (float32)


def test_static_variant_and_config_errors():
    torch.manual_seed(0)
    for weights in ("advantage", "softmax"):
        algo = _small_gmpg(train_solver="euler", train_steps=4, variant="static", static_weights=weights, num_samples=3)
        m = algo.update_policy(_batch(n=8))
        assert torch.isfinite(m["policy_loss"]) and float(m["skipped"]) == 0
    with pytest.raises(ValueError, match="variant"):
        _small_gmpg(variant="nope")
    with pytest.raises(ValueError, match="fixed-step"):
        grad_solver("dpm2", "direct")
    with pytest.raises(ValueError, match="gradient mode"):
        grad_solver("euler", "backprop")
    assert grad_solver("rk4", "adjoint") == "torchdiffeq-adjoint:rk4"
    assert resolve_divergence("auto", 6) == "exact" and resolve_divergence("auto", 64) == "hutchinson"


def test_non_velocity_models_are_converted_with_a_warning():
    algo = _small_gmpg(param="noise", path="vpsde")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        algo.init_policy_from_behaviour()
    assert any("Eq 43" in str(x.message) for x in w)


def test_cli_gmpg_runs_every_stage_and_deploys(bandit_file, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    rc = main(["train", "gmpg", "--dataset", str(bandit_file), "--run-dir", str(run), "--no-progress", *TINY,
               "--set", "behaviour_steps=20", "--set", "critic_steps=20", "--set", "policy_steps=6",
               "--set", "train_steps=4", "--set", "policy_batch_size=16"])
    assert rc == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in rows} == {"behaviour", "critic", "policy"}
    pol = [r for r in rows if r["stage"] == "policy"]
    assert pol and all("kl_per_dim" in r and "skipped_total" in r for r in pol)
    policy = load_policy(run)
    assert bool(policy.policy_initialized)
    a = policy.act(np.zeros((4, 2), np.float32))
    assert a.shape == (4, 1) and np.all(np.abs(a) <= 1)


def test_gmpg_presets_are_valid_and_follow_table_8():
    from genpolicy.config import load_presets, resolve_config

    presets = load_presets("gmpg")
    table8 = {"halfcheetah-medium-expert": 4.0, "hopper-medium": 20.0, "walker2d-medium": 1.0,
              "hopper-medium-replay": 8.0, "walker2d-medium-replay": 4.0}
    for task, beta in table8.items():
        assert presets[task]["beta"] == beta
    for name in presets:  # every preset resolves to a valid config and a buildable algorithm
        cfg = resolve_config(GMPGConfig, [name], presets, {}, [])
        assert isinstance(cfg, GMPGConfig)
    cfg = resolve_config(GMPGConfig, ["cpu", "hopper-medium"], presets, {}, [])
    assert cfg.policy_lr == 3e-5 and cfg.train_steps == 8 and cfg.net == "mlp"
