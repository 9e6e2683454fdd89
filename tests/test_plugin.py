""""One file plus one preset": an algorithm written in a file of its own outside the package, with its preset beside
it, is covered by every generic test (suite, CLI, compile, stacking, the algorithm contract) with no other file
edited. The test writes such an algorithm to a temporary folder and runs those tests on it in a fresh pytest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ALGORITHM = '''
"""A throw-away algorithm: Gaussian behaviour cloning with its own loss, written once."""

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import torch

from genpolicy.optim import minimize
from genpolicy.rl.actors import GaussianActor
from genpolicy.rl.algos import Algorithm, RunConfig, Stage, register


@dataclass
class ThrowawayConfig(RunConfig):
    """Settings."""

    tiny: ClassVar[dict] = {"policy_steps": 3, "actor_hidden": (8,)}

    policy_steps: int = 1000
    """steps"""
    actor_hidden: tuple[int, ...] = (64, 64)
    """hidden sizes"""

    stage_steps: ClassVar[tuple[str, ...]] = ("policy_steps",)


def nll(actor, obs, act):
    return -actor.log_prob(obs, act).mean(), {}


@register
class Throwaway(Algorithm):
    """One stage, written once; eager, compiled and seed-stacked steps come from it."""

    name, Config = "throwaway", ThrowawayConfig

    def __init__(self, obs_dim, act_dim, cfg, normalizer=None):
        super().__init__(obs_dim, act_dim, cfg, normalizer)
        self.actor = GaussianActor(obs_dim, act_dim, cfg.actor_hidden)
        self.opt = torch.optim.Adam(self.actor.parameters(), lr=1e-3, fused=True)

    def optimizers(self):
        return {"opt": self.opt}

    def stages(self):
        return [Stage("policy", self.cfg.policy_steps, self.update, evaluates=True,
                      functional=partial(self.update, functional=True), stackable=True)]

    def update(self, batch, functional=False):
        loss, _, _ = minimize(self.opt, self.actor, nll, batch.obs, batch.actions, functional=functional)
        return {"nll": loss}

    def act_normalized(self, obs):
        return self.actor(obs)
'''

GENERIC = ["tests/test_stacking.py", "tests/test_compile.py", "tests/test_bench.py", "tests/test_algorithms.py"]


@pytest.mark.slow
def test_a_throwaway_algorithm_file_is_picked_up_by_every_generic_test(tmp_path):
    pytest.importorskip("gymnasium")
    plugin = tmp_path / "throwaway_algo.py"
    plugin.write_text(textwrap.dedent(ALGORITHM))
    (tmp_path / "throwaway.yaml").write_text("cpu: {}\n")  # its presets, beside it
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "GENPOLICY_TEST_PLUGINS": str(plugin), "OMP_NUM_THREADS": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-k", "throwaway",
                          *GENERIC], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    passed = re.findall(r"^PASSED (\S+)", out.stdout, re.M)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    for f in GENERIC:
        assert any(p.startswith(f) and "throwaway" in p for p in passed), f"{f} ran no test of the plugin:\n{passed}"
    assert len(passed) >= 7 and not re.search(r"^(FAILED|ERROR) ", out.stdout, re.M)
