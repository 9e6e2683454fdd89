"""The plain references on a bandit with a known answer: one-step episodes, actions +-0.6 (50/50, noise 0.05),
reward 1 for the + mode. BC must recover the data's mean and spread; IQL and TD3+BC must move to the + mode by the
amount their objectives predict."""

import numpy as np
import pytest
import torch

from genpolicy.rl.algos import build_algorithm
from genpolicy.rl.algos.bc import BCConfig
from genpolicy.rl.algos.iql import IQLAWRConfig
from genpolicy.rl.algos.td3bc import TD3BCConfig
from genpolicy.rl.data import OfflineData

from .test_iql_gmpo import _bandit


def _fit(name, cfg, steps: dict):
    torch.manual_seed(0)
    data = OfflineData(_bandit(), reward_scale="none")
    algo = build_algorithm(name, 2, 1, cfg)
    g = torch.Generator().manual_seed(0)
    for st in algo.stages():
        for _ in range(steps.get(st.name, st.steps)):
            m = st.update(data.sample(256, generator=g))
    obs = np.random.default_rng(1).normal(size=(1000, 2)).astype(np.float32)
    return algo, algo.act(obs)[:, 0], m


def test_bc_recovers_the_data_mean_and_spread():
    algo, a, _ = _fit("bc", BCConfig(policy_lr=1e-3, actor_hidden=(64, 64)), {"policy": 1500})
    assert abs(a.mean()) < 0.08, a.mean()  # the mean of the two modes
    std = float(algo.actor.log_std.detach().exp())
    assert abs(std - 0.6) < 0.06, std  # one Gaussian over both modes: std = sqrt(0.6^2 + 0.05^2) = 0.602


def test_iql_moves_to_the_advantage_weighted_mean():
    """V -> 0.7 (expectile of Bernoulli(1/2)), A = +0.3 / -0.7, weights e^0.9 / e^-2.1: the weighted mean action is
    0.6 (e^0.9 - e^-2.1) / (e^0.9 + e^-2.1) = 0.543."""
    cfg = IQLAWRConfig(beta=3.0, policy_lr=1e-3, critic_lr=1e-3, polyak=0.05, critic_hidden=(64, 64),
                       actor_hidden=(64, 64))
    _, a, m = _fit("iql", cfg, {"critic": 2000, "policy": 2000})
    want = 0.6 * (np.exp(0.9) - np.exp(-2.1)) / (np.exp(0.9) + np.exp(-2.1))
    assert abs(a.mean() - want) < 0.08, (a.mean(), want)
    assert float(m["weight_mean"]) > 0


@pytest.mark.parametrize("alpha", [2.5, 0.0])
def test_td3bc_trades_q_against_cloning(alpha):
    """alpha = 0 is pure BC of a deterministic actor (the data mean, 0); alpha = 2.5 climbs Q toward the rewarded
    mode."""
    cfg = TD3BCConfig(alpha=alpha, actor_hidden=(64, 64), critic_hidden=(64, 64), actor_lr=1e-3, critic_lr=1e-3,
                      polyak=0.05)
    _, a, m = _fit("td3bc", cfg, {"train": 3000})
    if alpha == 0:
        assert abs(a.mean()) < 0.08, a.mean()
    else:
        assert a.mean() > 0.35, a.mean()
    assert "actor_loss" in m or "q_loss" in m
