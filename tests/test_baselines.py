"""The diffusion-policy baselines against closed forms: a Gaussian behaviour mu = N(m, s^2) and a linear Q = c.a, where
each method's optimum is known, so each must move its policy by the predicted direction and amount.

- energy guidance (QGPO's sampler) with the exact intermediate energy reproduces the tilted Gaussian mu exp(beta Q)
  = N(m + beta c s^2, s^2) on every path, ODE and SDE;
- QGPO's learned energy (contrastive energy prediction) gives the same tilt;
- SRPO's deterministic actor settles where the score regularizer balances beta grad Q:
  a* = m + beta c / E_t[omega(t) alpha_t sigma_t / (alpha_t^2 s^2 + sigma_t^2)];
- FQL's one-step policy settles at the distilled flow plus c d / (2 alpha) (Eq 8 with the mean-squared distillation).
"""

import math

import numpy as np
import pytest
import torch

from genpolicy.analytic import GaussianOracle
from genpolicy.generative import GenerativeModel
from genpolicy.paths import expand_t, make_path
from genpolicy.rl.algos import build_algorithm
from genpolicy.rl.algos.common import within_state_fit
from genpolicy.rl.algos.dql import DiffusionQLConfig
from genpolicy.rl.algos.fql import FQLConfig
from genpolicy.rl.algos.qgpo import QGPOConfig, cep_loss
from genpolicy.rl.algos.sfbc import SfBCConfig, planning_returns
from genpolicy.rl.algos.srpo import SRPOConfig, srpo_time_weight
from genpolicy.rl.critics import InSupportCritic
from genpolicy.rl.data import OfflineData
from genpolicy.rl.datasets import TransitionDataset

M, S, C = 0.1, 0.2, 1.0  # behaviour mean and std, Q = C a


def _gaussian_bandit(n=2000, seed=0):
    """One-step episodes: a ~ N(M, S^2) whatever the state; reward C a."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 2)).astype(np.float32)
    a = (M + S * rng.normal(size=(n, 1))).astype(np.float32)
    return TransitionDataset(obs, a, C * a[:, 0], obs.copy(), np.ones(n, bool), np.zeros(n, bool))


def _oracle(path, mean=M, std=S, dim=1):
    mean, var = torch.full((dim,), float(mean)), torch.full((dim,), float(std) ** 2)
    return GenerativeModel(GaussianOracle(path, mean, var, param="noise"), path, (dim,), param="noise")


def _train(stage, data, steps, seed=0):
    if stage.prepare is not None:
        stage.prepare(data)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        metrics = stage.update(data.sample(256, generator=g))
    return metrics


def _actions(algo, n=4000):
    return algo.act(np.random.default_rng(1).normal(size=(n, 2)).astype(np.float32))[:, 0]


@pytest.mark.parametrize("path_name", ["vpsde", "gvp", "linear"])
@pytest.mark.parametrize("solver", ["euler", "sde"])
def test_exact_energy_guidance_samples_the_tilted_gaussian(path_name, solver):
    torch.manual_seed(0)
    path = make_path(path_name)
    m, s2, c, beta = torch.tensor([0.5, -0.3]), torch.tensor([0.25, 1.0]), torch.tensor([1.0, -2.0]), 0.8
    model = GenerativeModel(GaussianOracle(path, m, s2, param="noise"), path, (2,), param="noise")

    def guidance(x, t, cond):  # grad_x log E[exp(beta c.a0) | x_t] for a0 ~ N(m, diag s2)
        a, s = expand_t(path.alpha(t), x), expand_t(path.sigma(t), x)
        return beta * c * a * s2 / (a * a * s2 + s * s)

    x = model.sample(n=20000, solver=solver, steps=200, guidance=guidance)
    torch.testing.assert_close(x.mean(0), m + beta * c * s2, atol=0.035, rtol=0)
    torch.testing.assert_close(x.var(0), s2, atol=0.0, rtol=0.05)


def test_qgpo_learned_energy_tilts_the_behaviour_by_beta_c_s2():
    torch.manual_seed(0)
    data = OfflineData(_gaussian_bandit(), reward_scale="none")
    beta = 4.0
    cfg = QGPOConfig(net="mlp", net_hidden=(16, 16), critic="iql", critic_hidden=(16, 16), energy_hidden=(64, 64),
                     policy_lr=1e-3, support_samples=16, act_steps=100, beta=beta)
    algo = build_algorithm("qgpo", 2, 1, cfg)
    algo.behaviour = _oracle(algo.behaviour.path)
    algo.critic.q = lambda obs, a: (C * a).sum(-1)
    _train(algo.stages()[-1], data, 2000)
    a = _actions(algo)
    want = M + beta * C * S**2  # 0.26: the mean of mu exp(beta Q)
    assert abs(a.mean() - want) < 0.015, (a.mean(), want)
    assert abs(a.std() - S) < 0.015, a.std()
    algo.cfg.guidance_scale = 0.0  # no guidance: the behaviour itself
    assert abs(_actions(algo).mean() - M) < 0.015


def test_cep_loss_is_the_target_entropy_plus_the_kl_the_energy_stage_reports():
    """Per state, -sum_i w_i log softmax_i(f) = H(w) + KL(w || softmax f): the energy stage logs the batch means of
    both terms (``target_entropy``, ``energy_kl``), so a loss that stays near ln M reads as the floor it is."""
    torch.manual_seed(0)
    b, m = 5, 4
    w = torch.softmax(3.0 * torch.randn(b, m), 1)
    f = torch.randn(b, m)
    loss, _ = cep_loss(lambda x, t, obs: f.reshape(-1), torch.zeros(b, m, 1), torch.zeros(b), torch.zeros(b, m, 2), w)
    kl = torch.nn.functional.kl_div(torch.log_softmax(f, 1), w, reduction="none").sum(1).mean()
    entropy = -(w * w.log()).sum(1).mean()
    torch.testing.assert_close(loss, entropy + kl)

    data = OfflineData(_gaussian_bandit(n=300), reward_scale="none")
    cfg = QGPOConfig(net="mlp", net_hidden=(16, 16), critic="iql", critic_hidden=(16, 16), energy_hidden=(16,),
                     support_samples=m, act_steps=4, beta=3.0)
    algo = build_algorithm("qgpo", 2, 1, cfg)
    algo.behaviour = _oracle(algo.behaviour.path)
    for q, flat in [(lambda obs, a: torch.zeros(a.shape[:-1]), True), (lambda obs, a: (C * a).sum(-1), False)]:
        algo.critic.q = q
        out = _train(algo.stages()[-1], data, 1)
        # a constant Q gives uniform weights (entropy ln M); Q = C a over behaviour samples of spread S, less
        assert (abs(float(out["target_entropy"]) - np.log(m)) < 1e-6) == flat, float(out["target_entropy"])
        assert float(out["target_entropy"]) <= np.log(m) + 1e-6
        assert float(out["energy_kl"]) >= 0.0


def test_qgpo_energy_fit_reads_1_for_the_exact_energy_and_0_for_a_blind_one():
    """``QGPO.energy_fit``: at t -> 0 the energy's target is beta Q (Q = C a here); the per-state-centred regression of
    the energy on beta Q has slope and correlation 1 for f = beta C a, slope 0.5 for f = beta C a / 2, and slope 0
    for an energy that ignores the action; the target entropy is that of softmax(beta C a) over the support."""
    torch.manual_seed(0)
    beta, m = 3.0, 8
    cfg = QGPOConfig(net="mlp", net_hidden=(16,), critic="iql", critic_hidden=(16,), energy_hidden=(16,),
                     support_samples=m, act_steps=200, beta=beta)
    algo = build_algorithm("qgpo", 2, 1, cfg)
    algo.behaviour = _oracle(algo.behaviour.path)
    algo.critic.q = lambda obs, a: (C * a).sum(-1)
    obs = torch.randn(256, 2)

    class Linear(torch.nn.Module):  # f = k beta C a + a per-state constant
        def __init__(self, k):
            super().__init__()
            self.k = k

        def forward(self, x, t, o):
            return self.k * beta * C * x.sum(-1) + o.sum(-1)

    for k in [1.0, 0.5]:
        algo.energy = Linear(k)
        fit = algo.energy_fit(obs)
        assert abs(fit["slope"] - k) < 1e-5 and abs(fit["corr"] - 1.0) < 1e-5, fit
    algo.energy = Linear(0.0)
    fit = algo.energy_fit(obs)
    assert abs(fit["slope"]) < 1e-6, fit
    # support actions are N(M, S^2) samples: Q's spread over 8 of them is c4(8) C S on average (c4(8) = 0.9650,
    # the bias of a sample std), and softmax(beta C a) is not uniform
    assert abs(fit["q_spread"] - 0.9650 * C * S) < 0.01, fit
    assert 0.5 < fit["target_entropy"] < fit["ln_m"] - 0.05 and fit["ln_m"] == pytest.approx(np.log(m))


def test_within_state_fit_ignores_per_state_offsets_and_reads_the_closed_form_correlation():
    """y = k x + c(s) + noise of std n, x of std 1 within a state: slope k and correlation k / sqrt(k^2 + n^2), whatever
    the per-state offsets c(s) (of std 100: they would pull a plain pooled correlation to about k / 100)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 16, generator=g, dtype=torch.float64)
    c = 100.0 * torch.randn(4000, 1, generator=g, dtype=torch.float64)
    for k, n in [(2.0, 0.0), (0.5, 1.0), (0.0, 1.0)]:
        y = k * x + c + n * torch.randn(4000, 16, generator=g, dtype=torch.float64)
        corr, slope = within_state_fit(x, y)
        assert slope == pytest.approx(k, abs=0.02) and corr == pytest.approx(k / math.hypot(k, n), abs=0.02)
    corr, slope = within_state_fit(x, -3.0 * x + c)
    assert corr == pytest.approx(-1.0, abs=1e-9) and slope == pytest.approx(-3.0, abs=1e-9)


def test_in_support_soft_value_is_the_softmax_average_of_q():
    critic = InSupportCritic(2, 1, hidden=(8,), alpha=2.0)
    critic.q = lambda obs, a: a.sum(-1)  # Q = a
    support = torch.tensor([[[0.0], [1.0], [2.0]], [[1.0], [1.0], [1.0]]])
    v = critic.soft_value(torch.zeros(2, 2), support)
    w = torch.softmax(torch.tensor([0.0, 2.0, 4.0]), 0)
    torch.testing.assert_close(v, torch.stack([(w * torch.tensor([0.0, 1.0, 2.0])).sum(), torch.tensor(1.0)]))
    critic.alpha = 1e4  # a max over the support
    torch.testing.assert_close(critic.soft_value(torch.zeros(2, 2), support), torch.tensor([2.0, 1.0]))


@pytest.mark.parametrize("beta", [0.0, 0.2])
def test_srpo_actor_settles_where_the_score_balances_the_q_gradient(beta):
    torch.manual_seed(0)
    data = OfflineData(_gaussian_bandit(), reward_scale="none")
    cfg = SRPOConfig(beta=beta, actor_hidden=(32, 32), policy_lr=1e-3, critic_hidden=(16, 16))
    algo = build_algorithm("srpo", 2, 1, cfg)
    path = algo.behaviour.path
    algo.behaviour = _oracle(path)
    algo.critic.q = lambda obs, a: (C * a).sum(-1)
    _train(algo.stages()[-1], data, 1500)
    t = torch.linspace(0.02, 0.98, 100_001)
    al, si = path.alpha(t), path.sigma(t)
    k = float((srpo_time_weight(al, si, cfg.time_weight) * al * si / (al**2 * S**2 + si**2)).mean())
    want = M + beta * C / k
    a = _actions(algo)
    assert abs(a.mean() - want) < 0.01 + 0.1 * (want - M), (a.mean(), want)
    assert a.std() < 0.03  # deterministic actor, state-independent optimum


def test_srpo_warns_when_the_actor_rides_the_bounds():
    """Where the balance point M + beta C / k lies far outside [-1, 1] (beta 100), the actor's actions sit at the tanh
    bound and the policy stage's monitor says so; at beta 0.2 (optimum 0.1 + 0.2 C / k, inside) it stays quiet."""
    for beta, saturated in [(100.0, True), (0.2, False)]:
        torch.manual_seed(0)
        data = OfflineData(_gaussian_bandit(), reward_scale="none")
        cfg = SRPOConfig(beta=beta, actor_hidden=(32, 32), policy_lr=1e-3, critic_hidden=(16, 16))
        algo = build_algorithm("srpo", 2, 1, cfg)
        algo.behaviour = _oracle(algo.behaviour.path)
        algo.critic.q = lambda obs, a: (C * a).sum(-1)
        stage = algo.stages()[-1]
        m = _train(stage, data, 400)
        msg = stage.monitor({k: float(v) for k, v in m.items()})
        if saturated:
            assert float(m["saturation"]) > 0.99 and msg.startswith("100% of the actor's action components")
            assert "beta=100.0" in msg
        else:
            assert float(m["saturation"]) == 0.0 and msg is None


def test_fql_one_step_policy_shifts_by_c_over_2alpha():
    torch.manual_seed(0)
    data = OfflineData(_gaussian_bandit(n=4000), reward_scale="none")
    alpha = 2.5
    cfg = FQLConfig(alpha=alpha, normalize_q_loss=False, net_hidden=(64, 64), actor_hidden=(64, 64),
                    critic_hidden=(64, 64), lr=1e-3, flow_steps=8, polyak=0.05)
    algo = build_algorithm("fql", 2, 1, cfg)
    _train(algo.stages()[0], data, 2000)
    a = _actions(algo)
    want = M + C * 1 / (2 * alpha)  # argmin_mu alpha (mu - flow(z))^2 - C mu, averaged over z
    assert abs(a.mean() - want) < 0.04, (a.mean(), want)


def test_planning_returns_hand_computed():
    r, ends = np.array([1.0, 0.0, 2.0, 5.0]), np.array([0.0, 0.0, 1.0, 1.0])
    mc = planning_returns(r, ends, 0.5, None)  # two episodes: [1, 0, 2] and [5]
    np.testing.assert_allclose(mc, [1.5, 1.0, 2.0, 5.0])
    # V = 3 at row 1 beats the data's continuation (1.0) there: row 0's target bootstraps from it
    planned = planning_returns(r, ends, 0.5, np.array([0.0, 3.0, 0.0, 0.0]))
    np.testing.assert_allclose(planned, [1.0 + 0.5 * 3.0, 1.0, 2.0, 5.0])


@pytest.mark.parametrize("selector", ["softmax", "argmax"])
def test_sfbc_selects_the_rewarded_mode_as_predicted(selector):
    """Two-mode bandit: the planning Q standardizes r in {0, 1} to -1 / +1; with K candidates of which n are '+'
    (n ~ Binomial(K, p), p the behaviour model's own rate), P(+) = E[n e^alpha / (n e^alpha + (K - n) e^-alpha)]."""
    from .test_iql_gmpo import _bandit

    torch.manual_seed(0)
    data = OfflineData(_bandit(), reward_scale="none")
    k, alpha = 4, 0.5
    cfg = SfBCConfig(net="mlp", net_hidden=(64, 64), critic_hidden=(64, 64), policy_lr=1e-3, planning_iters=2,
                     num_samples=k, select_alpha=alpha, selector=selector, act_steps=16, support_samples=4)
    algo = build_algorithm("sfbc", 2, 1, cfg)
    for stage in algo.stages():
        _train(stage, data, 1500 if stage.name == "behaviour" else 800)
    obs = torch.as_tensor(np.random.default_rng(2).normal(size=(4000, 2)), dtype=torch.float32)
    with torch.no_grad():
        p = float((algo.policy.sample(obs, solver="euler", steps=16) > 0).float().mean())
    n = np.random.default_rng(0).binomial(k, p, 200_000)
    want = np.mean(n * np.e**alpha / (n * np.e**alpha + (k - n) * np.e**-alpha)) if selector == "softmax" \
        else 1 - (1 - p) ** k
    frac = float((_actions(algo) > 0).mean())
    assert abs(frac - want) < 0.05, (frac, want, p)  # behaviour samples between the modes get intermediate Q


def test_diffusion_ql_q_term_moves_the_policy_up_the_linear_q():
    """Gaussian behaviour, Q = C a: without the Q term (eta = 0) the policy clones N(M, S^2); with it (same seed) the
    policy's actions rise toward the box's edge at 1 (Diffusion-QL has no closed-form optimum: the direction and
    size of the move are what is checked). The tolerance on the clone is its sampling error at this budget (a
    1500-step model read by 5 Euler steps: mean off by 0.01-0.05, std by 0.03-0.05 over seeds 0-1)."""
    data = OfflineData(_gaussian_bandit(), reward_scale="none")
    means = {}
    for eta in (0.0, 1.0):
        torch.manual_seed(0)
        cfg = DiffusionQLConfig(eta=eta, net_hidden=(64, 64), critic_hidden=(64, 64), lr=1e-3, act_steps=5,
                                num_samples=1, ema_start=100, polyak=0.05)
        algo = build_algorithm("dql", 2, 1, cfg)
        torch.testing.assert_close(algo.bc_t, algo.policy.solver_times("euler", 5))  # trained where it samples
        _train(algo.stages()[0], data, 1500)
        a = _actions(algo)
        means[eta] = a.mean()
        if eta == 0:
            assert abs(a.mean() - M) < 0.1 and abs(a.std() - S) < 0.1, (a.mean(), a.std())
    assert means[1.0] > means[0.0] + 0.5 and means[1.0] <= 1.0, means
