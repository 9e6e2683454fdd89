"""The algorithm contract, checked for every registered algorithm: stages, optimizers that cover every trainable
parameter, exact resume after an interruption in any stage, act shapes and deployment. A new algorithm file is
picked up by discovery and by these tests with no other edit (``toy_algorithm.py`` shows one)."""

import copy
import dataclasses
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import genpolicy.rl.algos as algos_pkg
from genpolicy import load_policy
from genpolicy.cli import main
from genpolicy.rl.algos import ALGORITHMS, INFRASTRUCTURE, Stage, build_algorithm, register
from genpolicy.rl.data import OfflineData
from genpolicy.train import CHECKPOINT, train

from . import toy_algorithm  # noqa: F401  (registers "toybc")
from .test_iql_gmpo import _bandit, save_npz

#: shrinks any algorithm's config: applied to the fields it has
SMALL = {"net": "mlp", "net_hidden": (16, 16), "critic_hidden": (16, 16), "batch_size": 16, "act_steps": 2,
         "train_steps": 2, "behaviour_sample_steps": 2, "num_samples": 2, "log_every": 2, "ckpt_every": 3}
STEPS = 6  # steps per stage in these tests
NAMES = sorted(ALGORITHMS)
#: every algorithm with its defaults, plus the variants that add stages or sampling
CASES = [(n, {}) for n in NAMES] + [("gmpo", {"variant": "softmax"}), ("gmpg", {"variant": "static"}),
                                    ("gmpo", {"compile": "trace"}), ("gmpg", {"compile": "trace"}),
                                    ("iql", {"compile": "on"}),  # Inductor: guards checked only before logs/saves
                                    ("gmpo", {"critic_batched": True}), ("gmpo", {"ema_decay": 0.9}),
                                    ("gmpo", {"policy_precision": "bf16"}), ("gmpg", {"policy_precision": "bf16"}),
                                    ("gmpg", {"kl_stop": 1e-4})]  # stops at policy step 3, the checkpoint's step


def _small_config(name, **extra):
    cls = ALGORITHMS[name].Config
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in {**SMALL, **extra}.items() if k in fields})


def _build(name, data, **extra):
    cfg = _small_config(name, **extra)
    torch.manual_seed(cfg.seed)
    algo = build_algorithm(name, data.obs_dim, data.act_dim, cfg, data.normalizer)
    stages = algo.stages
    algo.stages = lambda: [dataclasses.replace(s, steps=STEPS) for s in stages()]  # every stage STEPS long
    return algo


@pytest.fixture(scope="module")
def data():
    return OfflineData(_bandit(n=500), reward_scale="none", normalize_obs=True)


def test_every_algorithm_file_registers_an_algorithm():
    files = {m.name for m in pkgutil.iter_modules(algos_pkg.__path__)} - set(INFRASTRUCTURE)
    registered = {cls.__module__.rsplit(".", 1)[1] for cls in ALGORITHMS.values()
                  if cls.__module__.startswith("genpolicy.rl.algos.")}
    assert files == registered and {"gmpo", "gmpg"} <= files


def test_register_refuses_a_taken_name():
    class Other(ALGORITHMS["gmpo"]):
        pass

    with pytest.raises(ValueError, match="'gmpo' is taken"):
        register(Other)
    with pytest.raises(TypeError, match="needs a GMPOConfig"):
        build_algorithm("gmpo", 2, 1, ALGORITHMS["gmpg"].Config())


@pytest.mark.parametrize("name,extra", CASES)
def test_stages_and_optimizers_cover_every_parameter(name, extra, data):
    algo = _build(name, data, **extra)
    stages = algo.stages()
    assert stages and all(isinstance(s, Stage) and s.steps >= 0 for s in stages)
    assert len({s.name for s in stages}) == len(stages), "stage names must be unique (they key logs and timings)"
    assert any(s.evaluates for s in stages), "some stage must train the policy that act() uses"
    covered = {id(p) for opt in algo.optimizers().values() for g in opt.param_groups for p in g["params"]}
    owned = {id(p) for p in algo.parameters()}
    missing = [n for n, p in algo.named_parameters() if p.requires_grad and id(p) not in covered]
    assert not missing, f"parameters no optimizer in optimizers() updates (and no checkpoint restores): {missing}"
    assert covered <= owned, "an optimizer holds parameters that are not the algorithm's modules"


def _dies_after(data, n):
    """A view of ``data`` whose (n+1)-th batch raises, as if the process died right after the n-th update (outside
    the update itself, so compiled steps are covered too)."""
    view = copy.copy(data)
    count = [0]

    def sample(*args, **kwargs):
        count[0] += 1
        if count[0] > n:
            raise KeyboardInterrupt
        return data.sample(*args, **kwargs)

    view.sample = sample
    return view


@pytest.mark.parametrize("name,extra", CASES)
def test_resume_after_an_interruption_in_any_stage_is_exact(name, extra, data, tmp_path):
    full = _build(name, data, **extra)
    train(full, data, tmp_path / "full", progress=False)
    ref = full.state_dict()
    for si in range(len(full.stages())):
        run = tmp_path / f"killed{si}"
        algo = _build(name, data, **extra)
        with pytest.raises(KeyboardInterrupt):  # dies after step 5 of stage si; the last checkpoint is at 3
            train(algo, _dies_after(data, si * STEPS + STEPS - 1), run, progress=False)
        torch.manual_seed(12345)  # the resumed process starts from another RNG state
        resumed = _build(name, data, **extra)
        torch.randn(7)
        train(resumed, data, run, resume=True, progress=False)
        got = resumed.state_dict()
        assert got.keys() == ref.keys()
        for k in ref:
            assert torch.equal(ref[k], got[k]), (si, k)


@pytest.mark.parametrize("name", NAMES)
def test_act_shapes_and_deployment(name, data, tmp_path):
    algo = _build(name, data)
    train(algo, data, tmp_path / "run", progress=False)
    raw = np.random.default_rng(0).normal(size=(5, data.obs_dim)).astype(np.float32)
    torch.manual_seed(1)
    a = algo.eval().act(raw)
    assert a.shape == (5, data.act_dim) and a.dtype == np.float32 and np.all(np.abs(a) <= 1)
    assert algo.act(raw[0]).shape == (data.act_dim,)
    loaded = load_policy(tmp_path / "run" / CHECKPOINT)
    assert type(loaded) is type(algo) and loaded.cfg == algo.cfg
    torch.manual_seed(1)
    np.testing.assert_array_equal(loaded.act(raw), a)


def test_an_algorithm_in_one_file_trains_from_the_cli_and_loads_in_a_fresh_process(tmp_path):
    ds = _bandit(n=300)
    f = save_npz(ds, tmp_path / "bandit.npz")
    run = tmp_path / "run"
    assert main(["train", "toybc", "--dataset", str(f), "--run-dir", str(run), "--no-progress",
                 "--bc-steps", "40", "--set", "batch_size=32"]) == 0
    assert load_policy(run).act(ds.observations[:3]).shape == (3, 1)
    code = ("import sys, numpy as np; from genpolicy import load_policy; "
            f"print(load_policy({str(run)!r}).act(np.zeros((4, 2), np.float32)).shape); "
            "print('tests.toy_algorithm' in sys.modules)")
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "GENPOLICY_PLUGINS"}
    # a fresh process imports nothing the checkpoint names: it refuses, naming the module and the ways to load it
    refused = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, env=env)
    assert refused.returncode != 0 and "unknown algorithm 'toybc'" in refused.stderr
    assert "genpolicy imports no module a file names" in refused.stderr and "tests.toy_algorithm" in refused.stderr
    # the user names the plugin: it loads
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True,
                         env={**env, "GENPOLICY_PLUGINS": "tests.toy_algorithm"}).stdout.split()
    assert out == ["(4,", "1)", "True"]
