"""The committed locomotion-v5 suite: every file loads by name, matches its data card, and has the levels'
intended quality (medium's normalized score within D4RL-like bounds)."""

import json
from pathlib import Path

import numpy as np
import pytest

from genpolicy.datagen.rollout import sha256_of
from genpolicy.rl.datasets import available_datasets, episode_returns, load_dataset
from genpolicy.rl.envs import normalized_score

ROOT = Path(__file__).resolve().parents[1] / "datasets"
ENVS = {"halfcheetah": "HalfCheetah-v5", "hopper": "Hopper-v5", "walker2d": "Walker2d-v5"}


@pytest.fixture(autouse=True)
def _suite_dir(monkeypatch):
    monkeypatch.setenv("GENPOLICY_DATASETS", str(ROOT))


@pytest.mark.parametrize("env", sorted(ENVS))
@pytest.mark.parametrize("level", ["medium", "medium-replay", "expert"])
def test_suite_file_matches_its_card(env, level):
    name = f"{env}-{level}-v5"
    card = json.loads((ROOT / f"{name}.json").read_text())
    assert sha256_of(ROOT / f"{name}.hdf5") == card["sha256"]
    ds = load_dataset(name)
    rets = episode_returns(ds)
    assert len(ds) == card["transitions"] and len(rets) == card["episodes"]
    assert rets.mean() == pytest.approx(card["return_mean"], rel=1e-5)
    assert normalized_score(ENVS[env], rets).mean() == pytest.approx(card["normalized_score_mean"], rel=1e-5)
    assert ds.observations.dtype == np.float32 and ds.actions.dtype == np.float32
    assert card["env_id"] == ENVS[env] and card["level"] == level
    if level == "medium":
        assert 25.0 <= card["normalized_score_mean"] <= 65.0
    if level == "expert":
        assert card["behaviour_policy_steps"] <= 300_000 and card["normalized_score_mean"] > 60.0


@pytest.mark.parametrize("env", sorted(ENVS))
def test_medium_expert_is_composed_from_the_two_files(env):
    both = load_dataset(f"{env}-medium-expert-v5")
    med, exp = load_dataset(f"{env}-medium-v5"), load_dataset(f"{env}-expert-v5")
    assert len(both) == len(med) + len(exp)
    np.testing.assert_array_equal(both.observations[: len(med)], med.observations)
    np.testing.assert_array_equal(both.observations[len(med):], exp.observations)


@pytest.mark.parametrize("env", sorted(ENVS))
def test_medium_expert_facts_are_those_of_the_composed_data(env):
    """`genpolicy datasets` and the results page's data column: the composition's transitions, episodes, mean return
    and mean normalized score, computed from the two cards, equal those of the data it loads."""
    name = f"{env}-medium-expert-v5"
    facts = {r["name"]: r for r in available_datasets()}[name]
    ds = load_dataset(name)
    rets = episode_returns(ds)
    assert facts["composed"] and facts["transitions"] == len(ds) and facts["episodes"] == len(rets)
    assert facts["return_mean"] == pytest.approx(rets.mean(), rel=1e-5)
    assert facts["score_mean"] == pytest.approx(normalized_score(ENVS[env], rets).mean(), rel=1e-5)
