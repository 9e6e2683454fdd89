"""Vectorized seeds: N IQL critics trained as one stacked model follow their single runs (issue 14, item 4)."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from genpolicy.rl.algos.iql import IQLAWRConfig
from genpolicy.rl.critics import IQLConfig, IQLCritic
from genpolicy.rl.data import OfflineData
from genpolicy.rl.datasets import TransitionDataset
from genpolicy.rl.seeds import SeedStackedIQL, train_critics
from genpolicy.train import prepare_run, train

STEPS = 50


def _chain(n=600, obs_dim=3, act_dim=2, seed=0) -> TransitionDataset:
    """Random transitions with bootstrapping (episodes of 50 steps, cut by timeouts; one terminal), so both the
    V and the TD targets carry signal."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n + 1, obs_dim)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32)
    rew = (obs[:-1, 0] + act[:, 0]).astype(np.float32)
    timeouts = (np.arange(n) % 50) == 49
    terminals = np.zeros(n, bool)
    terminals[123] = True
    return TransitionDataset(obs[:-1], act, rew, obs[1:], terminals, timeouts)


def _tensors(critic: IQLCritic) -> dict:
    opt = {f"{name}.{i}.{k}": v for name, o in critic.optimizers().items()
           for i, st in enumerate(o.state[p] for p in o.param_groups[0]["params"]) for k, v in st.items()}
    return {**critic.state_dict(), **opt}


def _assert_same(a: IQLCritic, b: IQLCritic, atol=1e-5):
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys() and len(ta) > 20
    for k in ta:
        torch.testing.assert_close(tb[k], ta[k], rtol=1e-5, atol=atol, msg=lambda m: f"{k}: {m}")


def test_stacked_critics_follow_their_single_runs_step_for_step():
    data = OfflineData(_chain(), reward_scale="none")
    cfg = IQLConfig(hidden=(32, 32), lr=1e-3)
    seeds = [0, 1, 2]
    critics = []
    for s in seeds:
        torch.manual_seed(s)
        critics.append(IQLCritic(3, 2, cfg))
    single, init = copy.deepcopy(critics), copy.deepcopy(critics)
    for s, c in zip(seeds, single):  # what each seed's own loop does
        g = torch.Generator().manual_seed(s)
        for _ in range(STEPS):
            c.update(data.sample(64, generator=g))
    m = train_critics(data, critics, seeds, STEPS, 64)
    assert m["q_loss"].shape == (3,)
    for a, b in zip(single, critics):
        _assert_same(a, b)
    # the seeds differ and the weights moved, so the equality above is not trivial
    assert not torch.allclose(critics[0].vf[0].weight, critics[1].vf[0].weight)
    for c, c0 in zip(critics, init):
        assert float((c.vf[0].weight - c0.vf[0].weight).abs().max()) > 1e-2


def test_seed_k_equals_the_single_run_with_seed_k(tmp_path):
    """The real single run: prepare_run + train of ``iql`` with ``critic_steps`` 50 and no actor steps (the suite's
    shared critic), against the stacked training of the critics those runs start from."""
    ds = _chain()
    base = IQLAWRConfig(critic_hidden=(32, 32), actor_hidden=(8,), critic_steps=STEPS, policy_steps=0,
                        batch_size=64, reward_scale="none", final_eval_episodes=1)
    seeds = [0, 3]
    runs, fresh = [], []
    for s in seeds:
        cfg = dataclasses.replace(base, seed=s)
        algo, data = prepare_run("iql", cfg, ds)
        fresh.append(copy.deepcopy(algo.critic))  # the critic as built, before any step
        train(algo, data, tmp_path / f"seed-{s}", None, progress=False)
        runs.append(algo.critic)
    train_critics(data, fresh, seeds, STEPS, base.batch_size)
    for a, b in zip(runs, fresh):
        _assert_same(a, b)


def test_stacking_refuses_mixed_or_batched_critics():
    with pytest.raises(ValueError, match="one IQLConfig"):
        SeedStackedIQL([IQLCritic(3, 2, IQLConfig(hidden=(8,))), IQLCritic(3, 2, IQLConfig(hidden=(16,)))])
    with pytest.raises(ValueError, match="unbatched"):
        SeedStackedIQL([IQLCritic(3, 2, IQLConfig(hidden=(8,), batched=True))])
    with pytest.raises(ValueError, match="seeds"):
        train_critics(OfflineData(_chain(), reward_scale="none"), [IQLCritic(3, 2)], [0, 1], 1, 8)
