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
from genpolicy.rl.seeds import SeedStackedIQL, stack_batches
from genpolicy.train import prepare_run, train, train_critics_stacked

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
    stack = SeedStackedIQL(critics)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    for _ in range(STEPS):
        m = stack.update(stack_batches([data.sample(64, generator=g) for g in gens]))
    assert m["q_loss"].shape == (3,)
    stack.unstack(critics)
    for a, b in zip(single, critics):
        _assert_same(a, b)
    # the seeds differ and the weights moved, so the equality above is not trivial
    assert not torch.allclose(critics[0].vf[0].weight, critics[1].vf[0].weight)
    for c, c0 in zip(critics, init):
        assert float((c.vf[0].weight - c0.vf[0].weight).detach().abs().max()) > 1e-2


def test_seed_k_equals_the_single_run_with_seed_k(tmp_path):
    """The real single run: prepare_run + train of ``iql`` with ``critic_steps`` 50 and no actor steps (the suite's
    shared critic), against the stacked training of the critics those runs start from."""
    ds = _chain()
    base = IQLAWRConfig(critic_hidden=(32, 32), actor_hidden=(8,), critic_steps=STEPS, policy_steps=0,
                        batch_size=64, reward_scale="none", final_eval_episodes=1)
    seeds = [0, 3]
    single, stacked = [], []
    for s in seeds:
        cfg = dataclasses.replace(base, seed=s, log_every=10, ckpt_every=20)
        algo, data = prepare_run("iql", cfg, ds)
        train(algo, data, tmp_path / f"single-{s}", None, progress=False)
        single.append(algo)
        stacked.append(prepare_run("iql", cfg, ds)[0])
    dirs = [tmp_path / f"stacked-{s}" for s in seeds]
    summaries = train_critics_stacked(stacked, data, dirs, {"dataset": "chain"}, progress=False)
    for a, b in zip(single, stacked):
        _assert_same(a.critic, b.critic)
    for d, summ in zip(dirs, summaries):  # each folder as its single run writes it
        assert summ["stacked_seeds"] == seeds and summ["stage_times"]["critic"]["stacked_seeds"] == 2
        assert sum(1 for _ in open(d / "metrics.jsonl")) == STEPS // 10
        assert (d / "config.yaml").exists() and (d / "summary.json").exists()


def test_stacking_refuses_mixed_or_batched_critics():
    with pytest.raises(ValueError, match="one IQLConfig"):
        SeedStackedIQL([IQLCritic(3, 2, IQLConfig(hidden=(8,))), IQLCritic(3, 2, IQLConfig(hidden=(16,)))])
    with pytest.raises(ValueError, match="unbatched"):
        SeedStackedIQL([IQLCritic(3, 2, IQLConfig(hidden=(8,), batched=True))])
    with pytest.raises(ValueError, match="unstack needs 1"):
        SeedStackedIQL([IQLCritic(3, 2)]).unstack([IQLCritic(3, 2), IQLCritic(3, 2)])
