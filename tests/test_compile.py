"""Whole-step compilation: every stage with a functional form compiles as one graph (no graph breaks, so no host
syncs inside), takes the same step as the eager reference from the same state, and keeps resume exact."""

import copy

import pytest
import torch

from genpolicy.optim import ensure_adam_state, functional_adam_, minimize
from genpolicy.rl.algos import build_algorithm
from genpolicy.rl.algos.bc import BCConfig
from genpolicy.rl.algos.dql import DiffusionQLConfig
from genpolicy.rl.algos.fql import FQLConfig
from genpolicy.rl.algos.gmpg import GMPGConfig
from genpolicy.rl.algos.gmpo import GMPOConfig
from genpolicy.rl.algos.idql import IDQLConfig
from genpolicy.rl.algos.iql import IQLAWRConfig
from genpolicy.rl.algos.qgpo import QGPOConfig
from genpolicy.rl.algos.sfbc import SfBCConfig
from genpolicy.rl.algos.srpo import SRPOConfig
from genpolicy.rl.algos.td3bc import TD3BCConfig
from genpolicy.rl.data import OfflineData

from .test_iql_gmpo import _bandit
from .tiny import registered, tiny_config

SMALL = dict(net="mlp", net_hidden=(32, 32), critic_hidden=(32, 32), batch_size=64, act_steps=2, num_samples=3)
CASES = [("gmpo", GMPOConfig(**SMALL)), ("gmpo", GMPOConfig(**SMALL, critic_batched=True)),
         ("gmpo", GMPOConfig(**SMALL, ema_decay=0.9, policy_batch_size=32)),
         ("gmpo", GMPOConfig(**SMALL, variant="softmax", behaviour_sample_steps=2)),
         ("gmpo", GMPOConfig(**SMALL, loss="score", param="noise", path="vpsde", grad_clip=1.0)),
         ("gmpg", GMPGConfig(**SMALL, train_steps=2)),
         ("gmpg", GMPGConfig(**SMALL, train_steps=2, chunk_size=24, grad_clip=0.5, divergence="hutchinson",
                             train_solver="euler")),
         ("gmpg", GMPGConfig(**SMALL, train_steps=2, log_pi="reverse", divergence="hutchinson", kl_stop=10.0)),
         ("gmpg", GMPGConfig(**SMALL, train_steps=2, variant="static")),
         ("gmpg", GMPGConfig(**SMALL, train_steps=2, variant="static", static_weights="softmax")),
         ("bc", BCConfig(actor_hidden=(32, 32), batch_size=64)),
         ("iql", IQLAWRConfig(critic_hidden=(32, 32), actor_hidden=(32, 32), batch_size=64)),
         ("idql", IDQLConfig(**SMALL)), ("td3bc", TD3BCConfig(actor_hidden=(32, 32), critic_hidden=(32, 32), batch_size=64)),
         ("fql", FQLConfig(net_hidden=(32, 32), actor_hidden=(32, 32), critic_hidden=(32, 32), flow_steps=2,
                           batch_size=64)),
         ("dql", DiffusionQLConfig(net_hidden=(32, 32), critic_hidden=(32, 32), act_steps=2, batch_size=64,
                                   max_q_backup=True, backup_samples=2, ema_start=1, ema_every=1, grad_clip=1.0))]
_NO_SAMPLES = {k: v for k, v in SMALL.items() if k != "num_samples"}
CASES += [("srpo", SRPOConfig(**_NO_SAMPLES)),
          ("qgpo", QGPOConfig(**_NO_SAMPLES, energy_hidden=(32, 32), support_samples=3)),
          ("qgpo", QGPOConfig(**_NO_SAMPLES, energy_hidden=(32, 32), support_samples=3, critic="iql")),
          ("sfbc", SfBCConfig(**SMALL, support_samples=3)), ("sfbc", SfBCConfig(**SMALL, critic="iql"))]
#: every registered algorithm (plugins too) at its own test budget, before the variants above
CASES = [(n, tiny_config(n, batch_size=64)) for n in registered()] + CASES


@pytest.fixture(scope="module")
def data():
    return OfflineData(_bandit(n=400), reward_scale="none", normalize_obs=True)


def _state(algo):
    opt = {f"{n}.{i}.{k}": v for n, o in algo.optimizers().items() for i, st in enumerate(o.state.values())
           for k, v in st.items()}
    return {**algo.state_dict(), **opt}


def _close(a, b, tol=1e-5):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k].float(), b[k].float(), rtol=tol, atol=tol, msg=k)


@pytest.mark.parametrize("name,cfg", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_each_compiled_stage_takes_the_eager_step(name, cfg, data):
    torch.manual_seed(0)
    algo = build_algorithm(name, data.obs_dim, data.act_dim, cfg, data.normalizer)
    batch = data.sample(64, generator=torch.Generator().manual_seed(1))
    compiled_stages = 0
    for i, stage in enumerate(algo.stages()):
        if stage.functional is None or not stage.compiles:  # eager by design (TD3+BC's every-other-step actor)
            continue
        if stage.prepare is not None:
            algo.stages()[i].prepare(data)
        for opt in algo.optimizers().values():
            ensure_adam_state(opt)
        eager, comp = copy.deepcopy(algo), copy.deepcopy(algo)
        for _ in range(2):  # the second step reads the state the first one wrote
            torch.manual_seed(10 + i)
            m_eager = eager.stages()[i].update(batch)
            torch.manual_seed(10 + i)
            m_comp = torch.compile(comp.stages()[i].functional, fullgraph=True, backend="aot_eager")(batch)
        _close(_state(eager), _state(comp))
        _close(m_eager, m_comp)
        explained = torch._dynamo.explain(copy.deepcopy(algo).stages()[i].functional)(batch)
        assert explained.graph_break_count == 0, explained.break_reasons
        compiled_stages += 1
    assert compiled_stages == sum(st.functional is not None and st.compiles for st in algo.stages())


def test_functional_adam_is_torch_adam():
    torch.manual_seed(0)
    lin = torch.nn.Linear(5, 3)
    twin = copy.deepcopy(lin)
    ref = torch.optim.Adam(lin.parameters(), lr=1e-2, fused=True)
    opt = torch.optim.Adam(twin.parameters(), lr=1e-2, fused=True)
    x = torch.randn(16, 5)

    def loss_fn(m, x):
        return (m(x) ** 2).mean(), {}

    ensure_adam_state(opt)
    for _ in range(5):
        minimize(ref, lin, loss_fn, x)
        minimize(opt, twin, loss_fn, x, functional=True)
    _close(lin.state_dict(), twin.state_dict(), tol=1e-6)
    for p, q in zip(lin.parameters(), twin.parameters()):
        _close(ref.state[p], opt.state[q], tol=1e-6)
    with pytest.raises(ValueError, match="plain Adam only"):
        functional_adam_(torch.optim.Adam(twin.parameters(), weight_decay=0.1), list(twin.parameters()),
                         [torch.zeros_like(p) for p in twin.parameters()])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: device-to-host syncs exist only there")
def test_compiled_steps_make_no_host_sync_on_a_gpu():
    data = OfflineData(_bandit(n=400), reward_scale="none", normalize_obs=True, device="cuda")
    torch.manual_seed(0)
    algo = build_algorithm("gmpo", data.obs_dim, data.act_dim, GMPOConfig(**SMALL, device="cuda"),
                           data.normalizer).to("cuda")
    from genpolicy.train import stage_update

    gen = torch.Generator(device="cuda").manual_seed(0)
    for stage in algo.stages():
        update = stage_update(algo, stage)
        for _ in range(3):  # compile and warm up (CUDA graph recording) first
            update(data.sample(64, generator=gen))
        torch.cuda.set_sync_debug_mode("error")
        try:
            update(data.sample(64, generator=gen))
        finally:
            torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("name,backend", [("gmpo", "on"), ("gmpo", "trace"), ("gmpg", "trace")])
def test_compiled_act_equals_eager_act_for_the_same_seed(name, backend, data):
    cfg = (GMPOConfig if name == "gmpo" else GMPGConfig)(**SMALL, compile=backend)
    torch.manual_seed(0)
    algo = build_algorithm(name, data.obs_dim, data.act_dim, cfg, data.normalizer).eval()
    obs = torch.randn(5, data.obs_dim).numpy()
    torch.manual_seed(3)
    eager = algo.act(obs, compiled=False)
    torch.manual_seed(3)
    compiled = algo.act(obs)  # cfg.compile decides: compiled
    torch.testing.assert_close(torch.as_tensor(compiled), torch.as_tensor(eager), rtol=1e-5, atol=1e-5)
    twin = copy.deepcopy(algo)  # a copy compiles its own act (it must not act with the original's weights)
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(0.1)
    torch.manual_seed(3)
    assert not torch.allclose(torch.as_tensor(twin.act(obs)), torch.as_tensor(compiled))
    with pytest.raises(ValueError, match="non-finite"):
        algo.act(obs * float("nan"))


@pytest.mark.parametrize("backend", ["on", "trace"])
def test_compiled_act_and_steps_take_a_second_batch_size(backend, data):
    """A compiled act (and a compiled step) called again with another batch size is recompiled with a dynamic batch
    (as when a run evaluates 10 episodes, then 50, or deploys at batch 1) and still equals eager; the global-RNG
    draws used to fail there (torch.rand with generator=None has no symbolic-size form)."""
    from genpolicy.train import stage_update

    torch._dynamo.reset()
    cfg = GMPOConfig(**SMALL, compile=backend)
    torch.manual_seed(0)
    algo = build_algorithm("gmpo", data.obs_dim, data.act_dim, cfg, data.normalizer).eval()
    for n in (1, 5, 7):
        obs = torch.randn(n, data.obs_dim).numpy()
        torch.manual_seed(3)
        eager = algo.act(obs, compiled=False)
        torch.manual_seed(3)
        torch.testing.assert_close(torch.as_tensor(algo.act(obs)), torch.as_tensor(eager), rtol=1e-5, atol=1e-5)
    algo.train()
    for opt in algo.optimizers().values():
        ensure_adam_state(opt)
    eager, comp = copy.deepcopy(algo), copy.deepcopy(algo)
    stage = next(i for i, st in enumerate(algo.stages()) if st.name == "policy")
    update = stage_update(comp, comp.stages()[stage])
    for rows in (64, 32, 48):
        batch = data.sample(rows, generator=torch.Generator().manual_seed(rows))
        torch.manual_seed(rows)
        m_eager = eager.stages()[stage].update(batch)
        torch.manual_seed(rows)
        m_comp = update(batch)
        if backend == "trace":  # (inductor draws the step's noise its own way: equal in distribution only)
            _close(m_eager, m_comp)
        assert all(torch.isfinite(v).all() for v in m_comp.values())
    if backend == "trace":
        _close(_state(eager), _state(comp))


def test_gmpg_compiled_step_skips_a_non_finite_step_on_the_device(data):
    """A non-finite GMPG step changes nothing but the skip count, compiled as eager (torch.where, no host sync)."""
    torch.manual_seed(0)
    algo = build_algorithm("gmpg", data.obs_dim, data.act_dim, GMPGConfig(**SMALL, train_steps=2), data.normalizer)
    stage = algo.stages()[-1]
    stage.prepare(data)
    ensure_adam_state(algo.policy_opt)
    batch = data.sample(32, generator=torch.Generator().manual_seed(1))
    step = torch.compile(stage.functional, fullgraph=True, backend="aot_eager")
    step(batch)  # one finite step, so that Adam's state is not all zeros
    assert int(algo.skipped_steps) == 0
    weights = (*algo.critic.qf.parameters(), *algo.critic.q_target.parameters())
    saved = [w.detach().clone() for w in weights]
    with torch.no_grad():
        for w in weights:
            w.view(-1)[0] = float("nan")
    before = copy.deepcopy(_state(algo))
    m = step(batch)
    after = copy.deepcopy(_state(algo))
    assert float(m["skipped"]) == 1 and int(algo.skipped_steps) == 1 and not torch.isfinite(m["policy_loss"])
    for k in before:
        if k != "skipped_steps":
            torch.testing.assert_close(after[k], before[k], rtol=0, atol=0, equal_nan=True, msg=k)
    with torch.no_grad():
        for w, w0 in zip(weights, saved):
            w.copy_(w0)
    m = step(batch)  # finite again: the step is taken
    assert float(m["skipped"]) == 0 and int(algo.skipped_steps) == 1
    assert not torch.equal(_state(algo)["policy.net.emb.mlp.0.weight"], after["policy.net.emb.mlp.0.weight"])


def test_gmpg_functional_step_needs_prepare(data):
    algo = build_algorithm("gmpg", data.obs_dim, data.act_dim, GMPGConfig(**SMALL, train_steps=2), data.normalizer)
    with pytest.raises(RuntimeError, match="prepare_policy"):
        algo.stages()[-1].functional(data.sample(8, generator=torch.Generator().manual_seed(0)))


def test_gmpg_auto_compiles_only_short_unrolled_solves():
    """compile=auto (on for CUDA) leaves a long unrolled solve eager (compiling T = 1000 would take hours);
    compile=on compiles any T; the adjoint gradient never."""
    from genpolicy.rl.algos.gmpg import AUTO_COMPILE_MAX_STEPS

    def compiles(**kw):
        algo = build_algorithm("gmpg", 3, 2, GMPGConfig(**SMALL, **kw))
        return algo.stages()[-1].functional is not None

    assert compiles(train_steps=AUTO_COMPILE_MAX_STEPS)
    assert not compiles(train_steps=AUTO_COMPILE_MAX_STEPS + 1)
    assert compiles(train_steps=1000, compile="on")
    assert not compiles(train_steps=8, gradient="adjoint", compile="on")
