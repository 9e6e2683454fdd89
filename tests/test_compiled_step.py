"""The compiled CPU step: its narrow-products pass keeps the values, and skipping Dynamo's guards between checked steps
changes nothing while the stage keeps its contract and fails loudly when it does not."""

import copy

import pytest
import torch
from torch import nn

from genpolicy.optim import ensure_adam_state
from genpolicy.rl.algos import build_algorithm
from genpolicy.rl.algos.gmpo import GMPOConfig
from genpolicy.rl.algos.iql import IQLAWRConfig
from genpolicy.rl.data import OfflineData
from genpolicy.train import stage_update
from genpolicy.train.gemm import NarrowProducts
from genpolicy.train.loop import CompiledStep

from .test_iql_gmpo import _bandit


@pytest.fixture(scope="module")
def data():
    return OfflineData(_bandit(n=400), reward_scale="none", normalize_obs=True)


def test_narrow_products_are_turned_without_changing_values():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(11, 96), nn.ReLU(), nn.Linear(96, 96), nn.ReLU(), nn.Linear(96, 1))
    x = torch.randn(128, 11)
    params = dict(net.named_parameters())

    def grads(p, x):
        return torch.func.grad(lambda p: torch.func.functional_call(net, p, (x,)).square().mean())(p)

    layout = NarrowProducts()
    torch._dynamo.reset()
    compiled = torch.compile(grads, fullgraph=True, options={"post_grad_custom_post_pass": layout,
                                                             "fx_graph_cache": False})  # the pass runs, not a cache
    got, want = compiled(params, x), grads(params, x)
    # the one narrow product: the first layer's (96, 11) weight gradient (the others are 96 wide or 1 row tall)
    assert layout.turned == 1
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6, msg=k)


def _state(algo):
    opt = [v for o in algo.optimizers().values() for st in o.state.values() for v in st.values()]
    return [*algo.state_dict().values(), *opt]


@pytest.mark.parametrize("name,cfg,stage,draws", [
    ("iql", IQLAWRConfig(critic_hidden=(32, 32), actor_hidden=(32, 32), batch_size=64, compile="on"), "critic", False),
    ("gmpo", GMPOConfig(net="mlp", net_hidden=(32, 32), critic_hidden=(32, 32), batch_size=64, act_steps=2,
                        num_samples=3, compile="on"), "policy", True)])
def test_compiled_step_takes_the_eager_step_and_unchecked_calls_equal_checked_ones(name, cfg, stage, draws, data):
    """``draws``: the step draws noise, which Inductor draws its own way (equal in distribution to eager's only)."""
    torch.manual_seed(0)
    algo = build_algorithm(name, data.obs_dim, data.act_dim, cfg, data.normalizer)
    for opt in algo.optimizers().values():
        ensure_adam_state(opt)
    si = next(i for i, st in enumerate(algo.stages()) if st.name == stage)
    eager, checked, unchecked = (copy.deepcopy(algo) for _ in range(3))
    torch._dynamo.reset()
    steps = {"checked": stage_update(checked, checked.stages()[si]),
             "unchecked": stage_update(unchecked, unchecked.stages()[si])}
    assert all(isinstance(s, CompiledStep) for s in steps.values())
    gen = torch.Generator().manual_seed(1)
    for _ in range(4):
        batch = data.sample(64, generator=gen)
        torch.manual_seed(7)
        eager.stages()[si].update(batch)
        torch.manual_seed(7)
        steps["checked"](batch, check=True)
        torch.manual_seed(7)
        steps["unchecked"](batch)
    for a, b, c in zip(_state(eager), _state(checked), _state(unchecked)):
        if not draws:
            torch.testing.assert_close(b.float(), a.float(), rtol=1e-4, atol=1e-5)
        assert torch.equal(b, c)  # one compiled graph, guards evaluated or not: the same bits


def test_a_checked_step_whose_guards_fail_raises_naming_the_stage():
    class Step:
        scale = 1.0

        def __call__(self, batch):
            return {"y": batch.obs * self.scale}

    step = Step()
    torch._dynamo.reset()
    compiled = CompiledStep(torch.compile(step, fullgraph=True), "toy")
    batch = OfflineData(_bandit(n=50), reward_scale="none", normalize_obs=False).sample(8)
    assert torch.equal(compiled(batch)["y"], batch.obs)
    step.scale = 2.0  # a Python value the graph baked in changes between steps: a broken contract
    with pytest.raises(RuntimeError, match="stage 'toy': its compiled step's guards failed between steps"):
        compiled(batch, check=True)
