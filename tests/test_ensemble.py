"""The batched ensemble: N MLPs as stacked weights compute what the N separate MLPs compute, and a
batched twin-Q IQL critic takes the same steps as the separate one."""

import pytest
import torch

from genpolicy.nets import mlp
from genpolicy.optim import ensure_adam_state
from genpolicy.nets.ensemble import EnsembleMLP
from genpolicy.rl.critics import IQLConfig, IQLCritic, TwinQ
from genpolicy.rl.data import OfflineData

from .test_iql_gmpo import _bandit


@pytest.mark.parametrize("layer_norm", [False, True])
def test_stacked_mlps_compute_each_member(layer_norm):
    torch.manual_seed(0)
    nets = [mlp(5, 2, (16, 8), act="mish", layer_norm=layer_norm) for _ in range(3)]
    for net in nets:  # LayerNorm's affine starts at (1, 0): give it values worth checking
        for p in net.parameters():
            p.data.add_(0.1 * torch.randn_like(p))
    ens = EnsembleMLP.stack(nets)
    x = torch.randn(7, 5)
    want = torch.stack([net(x) for net in nets])
    torch.testing.assert_close(ens(x), want, rtol=1e-6, atol=1e-6)  # shared rows
    xs = torch.randn(3, 7, 5)
    torch.testing.assert_close(ens(xs), torch.stack([net(xi) for net, xi in zip(nets, xs)]), rtol=1e-6, atol=1e-6)


def test_stack_refuses_different_architectures():
    with pytest.raises(ValueError, match="same depth"):
        EnsembleMLP.stack([mlp(3, 1, (8,)), mlp(3, 1, (8, 8))])
    with pytest.raises(ValueError, match="differ in type"):
        EnsembleMLP.stack([mlp(3, 1, (8,), act="relu"), mlp(3, 1, (8,), act="tanh")])


def test_batched_twin_q_equals_two_separate_qs_values_and_gradients():
    torch.manual_seed(3)
    sep = TwinQ(4, 2, (32, 32))
    torch.manual_seed(3)
    bat = TwinQ(4, 2, (32, 32), batched=True)
    assert sum(p.numel() for p in sep.parameters()) == sum(p.numel() for p in bat.parameters())
    obs, act = torch.randn(64, 4), torch.randn(64, 2)
    for a, b in zip(sep.both(obs, act), bat.both(obs, act)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    sum(q.square().mean() for q in sep.both(obs, act)).backward()
    sum(q.square().mean() for q in bat.both(obs, act)).backward()
    for i, q in enumerate((sep.q1, sep.q2)):  # member i of each stacked weight holds head i's gradient
        linears = [m for m in q if isinstance(m, torch.nn.Linear)]
        stacked = [m for m in bat.ens.layers if hasattr(m, "weight")]
        for lin, st in zip(linears, stacked):
            torch.testing.assert_close(st.weight.grad[i], lin.weight.grad.T, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(st.bias.grad[i, 0], lin.bias.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("functional", [False, True])
def test_batched_iql_critic_takes_the_separate_critics_steps(functional):
    data = OfflineData(_bandit(n=400), reward_scale="none", normalize_obs=True)
    critics = []
    for batched in (False, True):
        torch.manual_seed(0)
        critic = IQLCritic(data.obs_dim, data.act_dim, IQLConfig(hidden=(32, 32), batched=batched))
        for opt in critic.optimizers().values():
            ensure_adam_state(opt)  # what the training loop does before a functional step
        g = torch.Generator().manual_seed(1)
        for _ in range(50):
            critic.update(data.sample(64, generator=g), functional=functional)
        critics.append(critic)
    obs, act = data.obs[:100], data.actions[:100]
    torch.testing.assert_close(critics[1].q(obs, act), critics[0].q(obs, act), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(critics[1].v(obs), critics[0].v(obs), rtol=1e-5, atol=1e-5)
