"""GenerativeRL's GMPG likelihood gradient as an option (``estimator="paper"`` / ``kl_gradient=paper``), checked
against what it must be in closed form, beside the exact gradient's closed form."""

import json
import math

import numpy as np
import pytest
import torch

from genpolicy import GenerativeModel, make_path
from genpolicy import likelihood
from genpolicy.nets import MLPUNet
from genpolicy.solvers import make_solver
from genpolicy.solvers.base import uniform_grid

from .conftest import oracle_model


def _noise_end(model, x, steps, solver="euler"):
    """x_1: the data -> noise solve of the velocity alone, on the grid log_prob uses."""
    t0, t1 = model._interval("velocity")
    v = model.prediction_fn(None, "velocity")
    grid = uniform_grid(t0, t1, steps, x)
    with torch.no_grad():
        return make_solver(solver).integrate(lambda t, y: (v(y[0], t),), (x,), grid).y[0]


@pytest.mark.parametrize("path", ["gvp", "linear"])
def test_the_paper_estimators_action_gradient_is_minus_x1_of_the_reverse_solve(path, f64):
    """On the Gaussian family (exact velocity): with the drift's state detached, d log p / d a is the standard
    prior's score at the noise end of the same solve, -x_1, exactly; the value is the exact estimator's."""
    model, m, cov = oracle_model(path, "velocity")
    x = (m + torch.randn(64, 3, dtype=torch.float64)).requires_grad_(True)
    lp = model.log_prob(x, divergence="exact", steps=16, solver="euler", grad=True, estimator="paper")
    (g,) = torch.autograd.grad(lp.sum(), x)
    x1 = _noise_end(model, x.detach(), 16)
    assert model._prior_std(model._interval("velocity")[1]) == 1.0
    torch.testing.assert_close(g, -x1, rtol=0, atol=1e-12)
    exact = model.log_prob(x, divergence="exact", steps=16, solver="euler", grad=True)
    torch.testing.assert_close(lp, exact, rtol=0, atol=1e-12)
    (g_exact,) = torch.autograd.grad(exact.sum(), x)
    assert float((g_exact - g).abs().max()) > 1e-2  # the two gradients differ: the option is not a no-op


def test_the_exact_estimator_still_matches_the_gaussian_densitys_value_and_gradient(f64):
    """The default: log p and d log p / d x of N(m, cov) in closed form, to the solver's accuracy."""
    model, m, cov = oracle_model("gvp", "velocity")
    x = (m + 0.7 * torch.randn(32, 3, dtype=torch.float64)).requires_grad_(True)
    lp = model.log_prob(x, divergence="exact", steps=64, solver="rk4", grad=True)
    (g,) = torch.autograd.grad(lp.sum(), x)
    ref = torch.distributions.MultivariateNormal(m, cov).log_prob(x.detach())
    torch.testing.assert_close(lp.detach(), ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(g, -(x.detach() - m) @ torch.linalg.inv(cov), rtol=0, atol=1e-4)


def test_the_paper_estimators_parameter_gradient_is_the_per_step_sum_with_the_score_at_the_noise_end(f64):
    """With the state detached, an Euler solve's parameter gradient is sum_k h [s_1 . dv/dtheta + d div/dtheta]
    at the forward trajectory's points (s_1 = -x_1, the adjoint state that never evolves), computed here term by
    term."""
    torch.manual_seed(0)
    model = GenerativeModel(MLPUNet(2, 3, hidden=(16, 8)), make_path("gvp"), (2,)).double()
    cond, x = torch.randn(5, 3), torch.randn(5, 2)
    steps = 4
    lp = model.log_prob(x, cond, divergence="exact", steps=steps, solver="euler", grad=True, estimator="paper")
    params = list(model.parameters())
    got = torch.autograd.grad(lp.sum(), params)
    v = model.prediction_fn(cond, "velocity")
    t0, t1 = model._interval("velocity")
    grid = uniform_grid(t0, t1, steps, x)
    xs = [x]
    with torch.no_grad():
        for k in range(steps):
            xs.append(xs[-1] + (grid[k + 1] - grid[k]) * v(xs[-1], grid[k]))
    s1 = -xs[-1]
    surrogate = 0.0
    for k in range(steps):
        xk = xs[k].clone().requires_grad_(True)
        vk = v(xk, grid[k])
        div = likelihood.exact_divergence(vk, xk, create_graph=True)
        surrogate = surrogate + (grid[k + 1] - grid[k]) * ((s1 * vk).sum() + div.sum())
    want = torch.autograd.grad(surrogate, params)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_the_paper_estimator_draws_a_hutchinson_probe_at_every_drift_evaluation(monkeypatch):
    model, _, _ = oracle_model("gvp", "velocity")
    model = model.float()
    draws = []
    real = torch.randn_like
    monkeypatch.setattr(torch, "randn_like", lambda t, *a, **k: draws.append(t.shape) or real(t, *a, **k))
    x = torch.randn(8, 3)
    model.log_prob(x, divergence="hutchinson", steps=5, solver="midpoint", grad=True)
    assert len(draws) == 1  # the exact estimator: one probe per solve
    draws.clear()
    model.log_prob(x, divergence="hutchinson", steps=5, solver="midpoint", grad=True, estimator="paper")
    assert len(draws) == 10 and set(draws) == {(8, 3)}  # midpoint: 2 evaluations per step


def test_the_functional_path_computes_the_paper_estimator_as_the_eager_one(f64):
    """What a compiled GMPG step traces (torch.func) gives the eager path's values and parameter gradients."""
    from torch.func import grad_and_value

    torch.manual_seed(0)
    model = GenerativeModel(MLPUNet(3, 4, hidden=(16, 8)), make_path("gvp"), (3,)).double()
    cond = torch.randn(6, 4)
    params = {k: p.detach() for k, p in model.named_parameters()}

    def loss(params, functional):
        torch.manual_seed(1)
        with torch.nn.utils.stateless._reparametrize_module(model, params):
            a = model.sample(cond, steps=3, solver="midpoint", grad=True, check=False)
            lp = model.log_prob(a, cond, divergence="exact", steps=3, solver="midpoint", grad=True,
                                functional=functional, estimator="paper", check=False)
        return lp.sum() + a.pow(2).sum()

    g_func, v_func = grad_and_value(loss)(params, True)
    leaves = {k: p.clone().requires_grad_(True) for k, p in params.items()}
    v_ref = loss(leaves, False)
    g_ref = dict(zip(leaves, torch.autograd.grad(v_ref, list(leaves.values()))))
    torch.testing.assert_close(v_func, v_ref.detach(), rtol=1e-10, atol=1e-10)
    for k in g_ref:
        torch.testing.assert_close(g_func[k], g_ref[k], rtol=1e-9, atol=1e-10, msg=k)


def test_kl_gradient_paper_needs_the_reverse_log_pi_and_the_paper_preset_sets_the_codes_estimator():
    from genpolicy.config import load_presets, resolve_config
    from genpolicy.rl.algos.gmpg import GMPGConfig

    with pytest.raises(ValueError, match="set log_pi=reverse"):
        GMPGConfig(kl_gradient="paper")
    assert GMPGConfig(kl_gradient="paper", variant="static").kl_gradient == "paper"  # static: always a reverse solve
    cfg = resolve_config(GMPGConfig, ["paper"], load_presets("gmpg"), {}, [])
    assert (cfg.kl_gradient, cfg.log_pi, cfg.divergence, cfg.grad_clip, cfg.kl_unit) == \
        ("paper", "reverse", "hutchinson", 0.0, "bit_per_dim")


def test_a_gmpg_step_with_the_paper_gradient_is_the_same_eager_and_functional_and_not_the_exact_one():
    """One GMPG policy step with kl_gradient=paper (exact divergence: no probe draws): the functional step (what
    compile=on traces) moves the weights as the eager step does, and not as the exact gradient's step does."""
    from genpolicy.optim import ensure_adam_state
    from genpolicy.rl.algos.gmpg import GMPG, GMPGConfig

    from .test_gmpg import _batch

    def step(kl_gradient, functional):
        torch.manual_seed(0)
        cfg = GMPGConfig(net="mlp", net_hidden=(16, 16), critic_hidden=(16, 16), train_solver="midpoint",
                         train_steps=4, log_pi="reverse", kl_gradient=kl_gradient, divergence="exact",
                         grad_clip=0.0, policy_lr=1e-2)
        algo = GMPG(3, 2, cfg)
        algo.prepare_policy()
        ensure_adam_state(algo.policy_opt)
        torch.manual_seed(1)
        m = algo.update_policy(_batch(), functional=functional)
        return [p.detach().clone() for p in algo.policy.parameters()], m

    (eager, m), (func, _), (exact, _) = step("paper", False), step("paper", True), step("exact", False)
    assert all(math.isfinite(float(v)) for v in m.values())
    for a, b in zip(eager, func):  # float32 gradients, then Adam's normalization (lr 1e-2) of near-zero entries:
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # (in float64 the gradients agree to 1e-9, above)
    assert max(float((a - b).abs().max()) for a, b in zip(eager, exact)) > 1e-4


def test_heldout_episodes_leave_training_and_their_log_likelihood_is_logged_and_plotted(tmp_path):
    """heldout_transitions: whole episodes drawn once (the same on resume) leave the training data; each evaluation
    logs the policy's mean log pi(a|s) on them, equal to the exact log_prob of those rows; genpolicy plot draws it."""
    pytest.importorskip("gymnasium")
    from genpolicy.cli import main
    from genpolicy.train import load_checkpoint, prepare_run, train

    from genpolicy.rl.datasets import TransitionDataset

    from .test_iql_gmpo import save_npz

    rng, n = np.random.default_rng(0), 400  # Hopper-v5's sizes, 4 episodes of 100 steps
    f32 = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    data = save_npz(TransitionDataset(f32(n, 11), rng.uniform(-1, 1, (n, 3)).astype(np.float32), f32(n), f32(n, 11),
                                      np.zeros(n, bool), np.arange(n) % 100 == 99), tmp_path / "h.npz")
    from genpolicy.rl.algos.gmpo import GMPOConfig

    cfg = GMPOConfig(net="mlp", net_hidden=(16, 16), critic_hidden=(16, 16), critic_steps=5, policy_steps=6,
                     eval_every=3, eval_episodes=1, final_eval_episodes=1, act_steps=2, heldout_transitions=150)
    algo, d = prepare_run("gmpo", cfg, str(data))
    assert len(d) == 200 and d.heldout["obs"].shape == (150, 11)  # two whole 100-step episodes left training
    summary = train(algo, d, tmp_path / "run", env_id="Hopper-v5", progress=False)
    got = [e["heldout_logp"] for e in summary["evals"]]
    assert len(got) == 2 and all(np.isfinite(got))
    ref = algo.policy.log_prob(d.heldout["actions"], d.heldout["obs"], divergence="exact", steps=32, solver="rk4")
    assert got[-1] == pytest.approx(float(ref.mean()), rel=1e-6)
    rows = [json.loads(x) for x in open(tmp_path / "run" / "metrics.jsonl") if "heldout_logp" in x]
    assert [(r["stage"], r["step"]) for r in rows] == [("policy", 3), ("policy", 6)]
    again, d2 = prepare_run("gmpo", cfg, str(data))
    assert torch.equal(d2.heldout["obs"], d.heldout["obs"]) and d2.fingerprint == d.fingerprint
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["config"]["heldout_transitions"] == 150
    assert main(["plot", str(tmp_path / "run"), "-o", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 10_000


@pytest.mark.parametrize("algo, task, want", [
    ("gmpo", "hopper-medium", {"weight_clamp": 1000.0, "beta": 16.0, "normalize_obs": False}),
    ("gmpo", "halfcheetah-medium", {"weight_clamp": 100.0, "beta": 8.0}),  # the code's beta; Table 8: 1.0
    ("gmpo", "halfcheetah-medium-replay", {"weight_clamp": 400.0, "beta": 4.0}),
    ("gmpo", "walker2d-medium-replay", {"weight_clamp": 10000.0, "beta": 8.0}),
    ("gmpo", "walker2d-medium", {"weight_clamp": 100.0, "beta": 8.0}),
    ("gmpg", "walker2d-medium-replay", {"beta": 8.0, "policy_q": "online", "normalize_obs": False}),
    ("gmpg", "hopper-medium", {"beta": 20.0, "kl_gradient": "paper", "path": "gvp"}),
])
def test_the_paper_budget_takes_the_codes_per_task_settings(algo, task, want):
    """--budget paper on a task: defaults < paper < <task> (Table 8) < paper-<task> (the code's configs)."""
    from genpolicy.config import load_presets, resolve_config, task_presets
    from genpolicy.rl.algos import ALGORITHMS

    presets = load_presets(algo)
    names = ["paper"] + task_presets(presets, ["paper"], task)
    cfg = resolve_config(ALGORITHMS[algo].Config, names, presets, {}, [])
    assert {k: getattr(cfg, k) for k in want} == want
    if algo == "gmpg":
        vp = resolve_config(ALGORITHMS[algo].Config, names + ["vpsde"], presets, {}, [])
        assert vp.path == "vpsde"  # the paper's headline GMPG


def test_policy_q_online_maximizes_the_online_twin_minimum_not_the_targets():
    """With the target networks moved away from the online ones, the policy step's q is the online min exactly."""
    from genpolicy.rl.algos.gmpg import GMPG, GMPGConfig

    from .test_gmpg import _batch

    seen = {}
    for which in ("target", "online"):
        torch.manual_seed(0)
        algo = GMPG(3, 2, GMPGConfig(net="mlp", net_hidden=(8,), critic_hidden=(8,), train_steps=2,
                                     train_solver="midpoint", policy_q=which))
        algo.prepare_policy()
        with torch.no_grad():
            for p in algo.critic.q_target.parameters():
                p.add_(0.5)
        obs = _batch().obs
        terms = algo._terms(obs, 2)
        a = terms["a"].detach()
        torch.testing.assert_close(terms["q"].detach(), (algo.critic.qf if which == "online" else
                                                         algo.critic.q_target)(obs, a))
        seen[which] = terms["q"].detach()
    assert float((seen["target"] - seen["online"]).abs().max()) > 1e-3


def test_runs_holding_out_data_share_only_a_critic_trained_without_the_same_episodes():
    from genpolicy.rl.algos.gmpo import GMPOConfig
    from genpolicy.suite.plan import critic_key, critic_run_config

    base = GMPOConfig()
    held = GMPOConfig(heldout_transitions=5000)
    assert critic_key(base) != critic_key(held) and critic_key(held) == critic_key(GMPOConfig(heldout_transitions=5000))
    assert critic_run_config(held).heldout_transitions == 5000  # the shared critic's run holds the same episodes out
    assert critic_key(base)[-1] != ("heldout", 0)  # runs without held-out data keep their critics' folder names
