"""IDQL on the two-mode bandit: the critic's implicit policy picks the rewarded mode at the rate its weights
predict (expectile selector) or always (argmax)."""

import numpy as np
import pytest
import torch

from genpolicy.rl.algos import build_algorithm
from genpolicy.rl.algos.idql import IDQLConfig, idql_weights
from genpolicy.rl.data import OfflineData

from .test_iql_gmpo import _bandit


def test_idql_weights_hand_computed():
    q, v = torch.tensor([1.0, 0.0, 0.5]), torch.tensor(0.7)
    torch.testing.assert_close(idql_weights(q, v, 0.7, eps=0.0), torch.tensor([0.7 / 0.3, 0.3 / 0.7, 0.3 / 0.2]))


@pytest.mark.parametrize("selector", ["expectile", "argmax"])
def test_idql_selects_the_rewarded_mode_as_predicted(selector):
    torch.manual_seed(0)
    data = OfflineData(_bandit(), reward_scale="none")
    cfg = IDQLConfig(net="mlp", net_hidden=(64, 64), critic_hidden=(64, 64), critic_lr=1e-3, policy_lr=1e-3,
                     polyak=0.05, path="gvp", param="velocity", loss="flow", num_samples=16, act_steps=16,
                     selector=selector)
    algo = build_algorithm("idql", 2, 1, cfg)
    g = torch.Generator().manual_seed(0)
    for stage in algo.stages():
        for _ in range(2000):
            stage.update(data.sample(256, generator=g))
    a = algo.act(np.random.default_rng(1).normal(size=(2000, 2)).astype(np.float32))[:, 0]
    frac = float((a > 0).mean())
    if selector == "argmax":
        assert frac > 0.97, frac
        return
    # Q(+) = 1, Q(-) = 0, V = 0.7: weights 0.7/0.3 and 0.3/0.7; with n+ ~ Binomial(16, 1/2) of the 16 samples
    # rewarded, P(pick +) = E[n+ w+ / (n+ w+ + (16 - n+) w-)]
    n = np.random.default_rng(0).binomial(16, 0.5, 100_000)
    want = np.mean(n * (7 / 3) / (n * (7 / 3) + (16 - n) * (3 / 7)))
    assert abs(frac - want) < 0.06, (frac, want)
