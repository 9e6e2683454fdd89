"""The seed-stacked step (genpolicy.rl.stacking) of every stackable stage of every registered algorithm follows
each seed's single run step for step: N runs' weights, buffers and Adam state after the vmapped steps equal those of
N single runs of the same stage's own update, each with its own minibatches and global RNG stream (to the rounding of
batched matmuls). Registry-driven: a new algorithm's stackable stages are tested with no edit here."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from genpolicy.rl.algos import ALGORITHMS
from genpolicy.rl.datasets import TransitionDataset
from genpolicy.rl.stacking import StackedStage, stack_batches
from genpolicy.train import prepare_run

from .tiny import tiny_config

STEPS = 12
SEEDS = [0, 5]


def _data(n: int = 300) -> TransitionDataset:
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(n + 1, 5)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    return TransitionDataset(obs[:-1], act, (obs[:-1, 0] + act[:, 0]).astype(np.float32), obs[1:],
                             np.arange(n) == 123, np.arange(n) % 50 == 49)


def _flat(algo) -> dict:
    st = algo.full_state_dict()
    out = {f"m.{k}": v for k, v in st["modules"].items()}
    for name, o in st["optimizers"].items():
        out |= {f"{name}.{i}.{k}": v for i, s in o["state"].items() for k, v in s.items()}
    return out


def _runs(name: str, **kw):
    out = []
    for s in SEEDS:
        cfg = tiny_config(name, seed=s, reward_scale="none", **kw)
        out.append(prepare_run(name, cfg, _data()))
    return out


def _cases():
    for name in sorted(ALGORITHMS):
        algo, _ = _runs(name)[0]
        for si, st in enumerate(algo.stages()):
            if st.stackable:
                yield name, si, st.name


CASES = list(_cases())


def _check(name: str, si: int, **kw) -> dict:
    runs = _runs(name, **kw)
    algos, data = [a for a, _ in runs], runs[0][1]
    stage0 = algos[0].stages()[si]
    rows = stage0.batch_size or algos[0].cfg.batch_size
    for a in algos:
        st = a.stages()[si]
        if st.prepare is not None:
            st.prepare(data)
    single = copy.deepcopy(algos)
    states = [torch.Generator().manual_seed(100 + s).get_state() for s in SEEDS]
    for k, a in enumerate(single):  # what each seed's own loop does
        stage, g = a.stages()[si], torch.Generator().manual_seed(SEEDS[k])
        torch.set_rng_state(states[k])
        for _ in range(STEPS):
            stage.update(data.sample(rows, generator=g))
    stack = StackedStage(algos, si)
    gens = [torch.Generator() for _ in SEEDS]
    for g, st in zip(gens, states):
        g.set_state(st)
    loaders = [torch.Generator().manual_seed(s) for s in SEEDS]
    for _ in range(STEPS):
        m = stack.update(stack_batches([data.sample(rows, generator=g) for g in loaders]), gens)
    assert all(v.shape[0] == len(SEEDS) for v in m.values())
    stack.unstack()
    moved = 0.0
    for a, b in zip(single, algos):
        ta, tb = _flat(a), _flat(b)
        assert ta.keys() == tb.keys()
        for key in ta:
            torch.testing.assert_close(tb[key], ta[key], rtol=1e-5, atol=1e-5, msg=lambda msg: f"{key}: {msg}")
    init = {k: v for k, v in _flat(_runs(name, **kw)[0][0]).items() if k.startswith("m.") and v.numel()}
    moved = max(float((_flat(algos[0])[k].float() - v.float()).abs().max()) for k, v in init.items())
    assert moved > 1e-4, "the stage did not move the weights, so the equality says nothing"
    w = [next(p for p in a.parameters() if p.requires_grad) for a in algos]
    assert not torch.equal(w[0], w[1])  # the seeds differ
    return m


@pytest.mark.parametrize("name,si,stage", CASES, ids=[f"{n}-{s}" for n, _, s in CASES])
def test_a_stacked_stage_follows_each_seeds_single_run(name, si, stage):
    _check(name, si)


@pytest.mark.parametrize("kw", [{"grad_clip": 0.05, "ema_decay": 0.9, "normalize_weights": True},
                                {"grad_clip": 0.05, "path": "vpsde", "param": "noise", "loss": "score",
                                 "net": "unet", "net_hidden": (32, 16, 8)}])
def test_stacked_gmpo_policy_with_clipping_ema_and_the_unet(kw):
    """Per-seed gradient clipping (each seed its own norm), the policy EMA, normalized weights, score matching."""
    si = [s.name for s in _runs("gmpo")[0][0].stages()].index("policy")
    _check("gmpo", si, **kw)


def test_every_algorithm_with_a_critic_or_behaviour_stage_stacks_it():
    stacked = {n for n, _, _ in CASES}
    assert {"gmpo", "gmpg", "idql", "sfbc", "qgpo", "srpo", "bc", "iql", "td3bc"} <= stacked


def test_stacking_refuses_what_it_cannot_stack():
    runs = _runs("gmpo", variant="softmax", behaviour_steps=3)
    algos = [a for a, _ in runs]
    policy = [s.name for s in algos[0].stages()].index("policy")
    with pytest.raises(ValueError, match="no stackable functional form"):
        StackedStage(algos, policy)
    other = prepare_run("gmpo", dataclasses.replace(tiny_config("gmpo"), critic_hidden=(8,)), _data())[0]
    with pytest.raises(ValueError, match="models differ in shape"):
        StackedStage([algos[0], other], 1)
