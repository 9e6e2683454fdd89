"""IQL against hand-computed and closed-form values; GMPO picks the high-advantage mode, beta=0 clones the data."""

import numpy as np
import pytest
import torch

from genpolicy.rl.algos import GMPO, GMPOConfig
from genpolicy.rl.algos.common import advantage_weights
from genpolicy.rl.critics import IQLConfig, IQLCritic, expectile_loss
from genpolicy.rl.data import OfflineData
from genpolicy.rl.datasets import TransitionDataset


def test_expectile_loss_hand_computed():
    diff = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0])
    torch.testing.assert_close(expectile_loss(diff, 0.7), torch.tensor([1.2, 0.075, 0.0, 0.7, 6.3]))
    torch.testing.assert_close(expectile_loss(diff, 0.5), 0.5 * diff**2)


def test_advantage_weights_clamped():
    w = advantage_weights(torch.tensor([-1.0, 0.0, 1.0, 100.0]), beta=2.0, clamp=100.0)
    torch.testing.assert_close(w, torch.tensor([np.exp(-2.0), 1.0, np.exp(2.0), 100.0], dtype=torch.float32))


def _bandit(n=4000, seed=0, obs_dim=2):
    """One-step episodes: a = +-0.6 (50/50) plus small noise; reward 1 for the + mode, 0 for the - mode."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    mode = rng.integers(0, 2, n)
    a = (np.where(mode == 1, 0.6, -0.6) + 0.05 * rng.normal(size=n)).astype(np.float32)[:, None]
    r = mode.astype(np.float32)
    return TransitionDataset(obs, a, r, obs.copy(), np.ones(n, bool), np.zeros(n, bool))


def save_npz(ds: TransitionDataset, path):
    """Write ``ds`` as a ``.npz`` dataset file (D4RL keys) and return its path."""
    np.savez(path, observations=ds.observations, actions=ds.actions, rewards=ds.rewards,
             next_observations=ds.next_observations, terminals=ds.terminals, timeouts=ds.timeouts)
    return path


def test_iql_values_on_a_bandit_match_closed_form():
    """Terminal one-step data: Q(s, a) -> r(a); V(s) -> the tau-expectile of r over the data's actions."""
    torch.manual_seed(0)
    data = OfflineData(_bandit(), reward_scale="none")
    critic = IQLCritic(2, 1, IQLConfig(hidden=(64, 64), expectile=0.7, lr=1e-3, polyak=0.05))
    g = torch.Generator().manual_seed(0)
    for _ in range(3000):
        critic.update(data.sample(256, generator=g))
    # expectile of a Bernoulli(0.5) on {0, 1}: 0.3 * m = 0.7 * (1 - m) -> m = 0.7
    obs = torch.randn(500, 2)
    with torch.no_grad():
        assert abs(float(critic.v(obs).mean()) - 0.7) < 0.05
    q_hi = critic.q(obs, torch.full((500, 1), 0.6)).mean()
    q_lo = critic.q(obs, torch.full((500, 1), -0.6)).mean()
    assert abs(float(q_hi) - 1.0) < 0.08 and abs(float(q_lo)) < 0.08


def _train_gmpo(beta, steps=1500, **kw):
    torch.manual_seed(0)
    data = OfflineData(_bandit(), reward_scale="none")
    cfg = GMPOConfig(beta=beta, net="mlp", net_hidden=(64, 64), critic_hidden=(64, 64), critic_lr=1e-3,
                     policy_lr=1e-3, polyak=0.05, batch_size=256, act_steps=16, **kw)
    algo = GMPO(2, 1, cfg)
    g = torch.Generator().manual_seed(0)
    stages = algo.stages()
    for st in stages:
        n = steps if st.name != "behaviour" else 1000
        for _ in range(n):
            m = st.update(data.sample(256, generator=g))
    a = algo.act(np.random.default_rng(1).normal(size=(1000, 2)).astype(np.float32))
    return float((a[:, 0] > 0).mean()), m


def test_gmpo_picks_the_high_advantage_mode_and_beta_zero_clones_the_data():
    frac_hi, metrics = _train_gmpo(beta=10.0)
    assert frac_hi > 0.9, frac_hi
    assert float(metrics["weight_max"]) > float(metrics["weight_mean"])
    frac_bc, metrics = _train_gmpo(beta=0.0)
    assert abs(frac_bc - 0.5) < 0.08, frac_bc
    assert float(metrics["weight_mean"]) == pytest.approx(1.0)


def test_gmpo_softmax_variant_uses_behaviour_samples():
    frac_hi, _ = _train_gmpo(beta=10.0, steps=800, variant="softmax", num_samples=8, behaviour_sample_steps=8)
    assert frac_hi > 0.85, frac_hi


def test_gmpo_score_matching_form():
    frac_hi, _ = _train_gmpo(beta=10.0, loss="score", param="noise", path="vpsde")
    assert frac_hi > 0.85, frac_hi


def test_gmpo_config_errors():
    with pytest.raises(ValueError, match="variant"):
        GMPO(2, 1, GMPOConfig(variant="qgpo"))
    with pytest.raises(ValueError, match="beta"):
        GMPO(2, 1, GMPOConfig(beta=-1.0))


def test_gmpo_normalized_weights_have_batch_mean_one():
    frac_hi, metrics = _train_gmpo(beta=10.0, steps=300, normalize_weights=True)
    assert float(metrics["weight_mean"]) == pytest.approx(1.0, abs=1e-5)
    assert float(metrics["weight_max"]) > 1.0


def test_gmpo_policy_batch_size_is_the_policy_stages_own():
    """``policy_batch_size`` sets the policy stage's rows per step (the loop samples ``stage.batch_size``); the
    critic keeps ``batch_size``, so the suite's shared critic is the same run; 0 leaves the policy at batch_size."""
    algo = GMPO(2, 1, GMPOConfig(net="mlp", net_hidden=(8,), critic_hidden=(8,), batch_size=32,
                                 policy_batch_size=128))
    sizes = {st.name: st.batch_size for st in algo.stages()}
    assert sizes == {"critic": None, "policy": 128}
    assert GMPO(2, 1, GMPOConfig(net="mlp", net_hidden=(8,))).stages()[-1].batch_size is None
    with pytest.raises(ValueError, match="policy_batch_size"):
        GMPOConfig(policy_batch_size=-1)


def test_gmpo_ema_policy_follows_its_recursion_and_acts():
    """``ema_decay`` d: after each policy step ema <- d ema + (1 - d) theta (checked against the recursion run by
    hand on the recorded weights), and ``act`` samples the averaged network; d = 0 keeps no copy."""
    torch.manual_seed(0)
    data = OfflineData(_bandit(n=200), reward_scale="none")
    d = 0.9
    algo = GMPO(2, 1, GMPOConfig(net="mlp", net_hidden=(16,), critic_hidden=(16,), batch_size=32, ema_decay=d,
                                 act_steps=4))
    policy = algo.stages()[-1]
    g = torch.Generator().manual_seed(0)
    expect = [p.detach().clone() for p in algo.policy.parameters()]  # the copy made at construction
    for _ in range(5):
        policy.update(data.sample(32, generator=g))
        expect = [d * e + (1 - d) * p.detach() for e, p in zip(expect, algo.policy.parameters())]
    for e, p in zip(expect, algo.policy_ema.parameters()):
        torch.testing.assert_close(p, e, rtol=1e-6, atol=1e-7)
    assert not torch.equal(next(algo.policy_ema.parameters()), next(algo.policy.parameters()))
    obs = torch.zeros(3, 2)
    torch.manual_seed(1)
    a = algo.act_normalized(obs)
    torch.manual_seed(1)
    b = algo.policy_ema.sample(obs, steps=4, check=False)
    assert torch.equal(a, b)
    assert GMPO(2, 1, GMPOConfig(net="mlp", net_hidden=(8,))).policy_ema is None
    with pytest.raises(ValueError, match="ema_decay"):
        GMPOConfig(ema_decay=1.0)
