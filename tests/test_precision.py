"""``policy_precision=bf16``: the generative network's matrix products in bfloat16 (autocast), everything else fp32.
An approximate path by design, so it is held to its fp32 reference at bfloat16's precision, and to a closed form:
GMPO's tilt of a two-mode bandit."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from genpolicy.generative import GenerativeModel
from genpolicy.nets import MLP
from genpolicy.optim import ensure_adam_state
from genpolicy.rl.algos import build_algorithm
from genpolicy.rl.algos.dql import DiffusionQLConfig
from genpolicy.rl.algos.gmpg import GMPGConfig
from genpolicy.rl.algos.gmpo import GMPO, GMPOConfig
from genpolicy.rl.data import OfflineData
from genpolicy.rl.stacking import StackedStage, stack_batches

from .test_iql_gmpo import _bandit

SMALL = dict(net="mlp", net_hidden=(64, 64), critic_hidden=(32, 32), batch_size=128, act_steps=4)


def _grads(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_bf16_runs_the_network_in_bf16_and_returns_fp32():
    torch.manual_seed(0)
    net = MLP(3, 2, hidden=(64, 64))
    seen = []
    for m in net.modules():
        if isinstance(m, torch.nn.Linear):
            m.register_forward_hook(lambda mod, i, out: seen.append(out.dtype))
    model = GenerativeModel(net, "gvp", (3,), compute_dtype=torch.bfloat16)
    x, cond = torch.randn(16, 3), torch.randn(16, 2)
    v = model.velocity(x, 0.5, cond)
    assert v.dtype == torch.float32 and seen and set(seen) == {torch.bfloat16}
    ref = GenerativeModel(net, "gvp", (3,)).velocity(x, 0.5, cond)
    assert set(seen[len(seen) // 2:]) == {torch.float32}  # the same network without compute_dtype: fp32
    torch.testing.assert_close(v, ref, rtol=0.05, atol=0.02)
    assert not torch.equal(v, ref)  # and it did round


@pytest.mark.parametrize("name,cfg", [("gmpo", GMPOConfig(**SMALL)), ("gmpg", GMPGConfig(**SMALL, train_steps=4)),
                                      ("dql", DiffusionQLConfig(net_hidden=(64, 64), critic_hidden=(32, 32),
                                                                act_steps=4, batch_size=128))])
def test_a_bf16_step_follows_the_fp32_step(name, cfg):
    """Same state, same batch, same draws: every stage's loss within 1 % and its gradient within a few degrees of
    fp32's; the critics, parameters and optimizer state stay fp32."""
    data = OfflineData(_bandit(n=600), reward_scale="none")
    torch.manual_seed(0)
    ref = build_algorithm(name, data.obs_dim, data.act_dim, cfg, data.normalizer)
    low = build_algorithm(name, data.obs_dim, data.act_dim, dataclasses.replace(cfg, policy_precision="bf16"),
                          data.normalizer)
    low.load_state_dict(ref.state_dict())
    batch = data.sample(128, generator=torch.Generator().manual_seed(1))
    compared = 0
    for i, (st_ref, st_low) in enumerate(zip(ref.stages(), low.stages())):
        if st_ref.prepare is not None:
            st_ref.prepare(data)
            st_low.prepare(data)
        grads = []
        metrics = []
        for algo, st in ((ref, st_ref), (low, st_low)):
            for o in algo.optimizers().values():
                o.zero_grad(set_to_none=True)
            # one update from the same state: the gradients it leaves are compared (steps zero them first)
            before = copy.deepcopy(algo.state_dict())
            torch.manual_seed(10 + i)
            metrics.append({k: float(v) for k, v in st.update(batch).items()})
            grads.append(_grads(algo))
            algo.load_state_dict(before)
        m_ref, m_low = metrics
        loss = next(k for k in m_ref if k.endswith("loss"))
        assert m_low[loss] == pytest.approx(m_ref[loss], rel=0.01, abs=1e-3), (st_ref.name, loss)
        if grads[0].numel():
            cos = float(torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0))
            assert cos > 0.99, (st_ref.name, cos)
        compared += 1
    assert compared == len(ref.stages())
    assert all(p.dtype == torch.float32 for p in low.parameters())


def test_bf16_gmpo_tilts_the_bandit_to_the_closed_form_mass_as_fp32_does():
    """Two modes a = +-0.6 (rewards 1 and 0): GMPO's target mu(a|s) exp(beta (Q - V)) puts
    E_s[w+ / (w+ + w-)] on the rewarded mode, w+- = exp(beta (Q(s, +-0.6) - V(s))) from the trained critic (about
    1 / (1 + e^-beta) = 0.73 at beta = 1 when Q = 1, 0 and V = 0.7). Both precisions train on one shared critic."""
    torch.manual_seed(0)
    data = OfflineData(_bandit(), reward_scale="none")
    cfg = GMPOConfig(beta=1.0, net="mlp", net_hidden=(64, 64), critic_hidden=(64, 64), critic_lr=1e-3,
                     policy_lr=1e-3, polyak=0.05, batch_size=256, act_steps=16)
    g = torch.Generator().manual_seed(0)
    base = GMPO(2, 1, cfg)
    for _ in range(1000):
        base.stages()[0].update(data.sample(256, generator=g))
    obs = np.random.default_rng(1).normal(size=(4000, 2)).astype(np.float32)
    with torch.no_grad():
        o = torch.from_numpy(obs)
        q = [base.critic.q(o, torch.full((4000, 1), a)) for a in (0.6, -0.6)]
        w = [torch.exp(cfg.beta * (qa - base.critic.v(o))) for qa in q]
    want = float((w[0] / (w[0] + w[1])).mean())
    got = {}
    for precision in ("fp32", "bf16"):
        algo = GMPO(2, 1, dataclasses.replace(cfg, policy_precision=precision))
        algo.load_state_dict(base.state_dict())
        gp = torch.Generator().manual_seed(2)
        for _ in range(1000):
            algo.stages()[1].update(data.sample(256, generator=gp))
        torch.manual_seed(3)
        got[precision] = float((algo.act(obs)[:, 0] > 0).mean())
    assert 0.65 < want < 0.85, want  # the critic learned the bandit
    assert abs(got["fp32"] - want) < 0.04, (got, want)
    assert abs(got["bf16"] - want) < 0.04, (got, want)


def test_bf16_compiles_whole():
    data = OfflineData(_bandit(n=600), reward_scale="none")
    torch.manual_seed(0)
    algo = build_algorithm("gmpo", data.obs_dim, data.act_dim, GMPOConfig(**SMALL, policy_precision="bf16"),
                           data.normalizer)
    batch = data.sample(128, generator=torch.Generator().manual_seed(1))
    i = next(i for i, s in enumerate(algo.stages()) if s.name == "policy")
    for opt in algo.optimizers().values():
        ensure_adam_state(opt)
    explained = torch._dynamo.explain(copy.deepcopy(algo).stages()[i].functional)(batch)
    assert explained.graph_break_count == 0, explained.break_reasons
    eager, comp = copy.deepcopy(algo), copy.deepcopy(algo)
    torch.manual_seed(3)
    m_eager = float(eager.stages()[i].update(batch)["policy_loss"])
    torch.manual_seed(3)
    step = torch.compile(comp.stages()[i].functional, fullgraph=True, backend="aot_eager")
    assert float(step(batch)["policy_loss"]) == pytest.approx(m_eager, rel=0.01)


def test_stacked_bf16_seeds_take_their_single_runs_losses():
    """Vectorized seeds at bf16: each seed's first-step loss within bf16 rounding of its single run's (batched and
    single matrix products round differently, so not bit for bit)."""
    data = OfflineData(_bandit(n=600), reward_scale="none")
    cfg = GMPOConfig(**SMALL, policy_precision="bf16")
    algos = []
    for s in (0, 1):
        torch.manual_seed(s)
        algos.append(GMPO(2, 1, dataclasses.replace(cfg, seed=s)))
    single = copy.deepcopy(algos)
    batches = [data.sample(128, generator=torch.Generator().manual_seed(5 + s)) for s in (0, 1)]
    want = []
    for s, a in enumerate(single):
        torch.manual_seed(100 + s)
        want.append(float(a.update_policy(batches[s])["policy_loss"]))
    gens = [torch.Generator().manual_seed(100 + s) for s in (0, 1)]
    stack = StackedStage(algos, [st.name for st in algos[0].stages()].index("policy"))
    got = stack.update(stack_batches(batches), gens)["policy_loss"]
    assert got.shape == (2,) and want[0] != want[1]
    assert got.tolist() == pytest.approx(want, rel=0.01)
