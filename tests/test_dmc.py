"""dm_control tasks through the dataset pipeline (shimmy adapter). Needs ``genpolicy[dmc]`` (the test extra
installs it). Without dm_control, only the clear-error test runs."""

import importlib.util
import json

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from genpolicy.rl.envs import env_family, is_dm_control, make_env  # noqa: E402

HAVE_DMC = importlib.util.find_spec("dm_control") is not None and importlib.util.find_spec("shimmy") is not None
needs_dmc = pytest.mark.skipif(not HAVE_DMC, reason="needs genpolicy[dmc] (dm-control >= 1.0.52)")


def test_dm_control_names_are_not_d4rl_families():
    assert is_dm_control("dm_control/walker-walk-v0") and is_dm_control("walker-walk-medium-v0")
    assert env_family("walker-walk-medium-v0") is None and env_family("dm_control/cheetah-run-v0") is None
    assert env_family("Walker2d-v5") == "walker2d" and env_family("walker2d-medium-v5") == "walker2d"


@pytest.mark.skipif(HAVE_DMC, reason="dm_control is installed here")
def test_missing_dm_control_is_a_clear_error():
    with pytest.raises(ImportError, match=r"genpolicy\[dmc\]"):
        make_env("dm_control/cheetah-run-v0")


@needs_dmc
def test_dm_control_env_has_flat_float32_observations_and_1000_step_episodes():
    env = make_env("dm_control/walker-walk-v0", max_episode_steps=1000)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape == (24,)
    n, ret, done = 0, 0.0, False
    while not done:
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        assert 0.0 <= r <= 1.0  # dm_control rewards
        n, ret, done = n + 1, ret + r, term or trunc
    assert n == 1000 and trunc and not term and obs.dtype == np.float32


@needs_dmc
def test_dm_control_levels_make_loadable_files_with_matching_cards(tmp_path, monkeypatch):
    from genpolicy.datagen.make import MakeConfig, make_dataset
    from genpolicy.datagen.rollout import sha256_of
    from genpolicy.datagen.sac import SACConfig, train_sac
    from genpolicy.rl.datasets import episode_returns, load_dataset

    root = tmp_path / "behaviour"
    sac = SACConfig(total_steps=300, start_steps=100, batch_size=16, hidden=(16, 16), save_every=100,
                    state_every=100, eval_episodes=1, compile=False)
    hist = train_sac("dm_control/cartpole-swingup-v0", root / "cartpole-swingup", sac, progress=False)
    assert sorted(hist) == [100, 200, 300]
    cfg = MakeConfig(out=str(tmp_path / "out"), transitions=1200, behaviour_root=str(root), num_envs=2)
    for level in ("random", "medium", "expert", "medium-replay"):
        card = make_dataset("cartpole-swingup", level, cfg, progress=False)
        path = tmp_path / "out" / f"cartpole-swingup-{level}-v0.hdf5"
        ds = load_dataset(path)
        rets = episode_returns(ds)
        assert json.loads(path.with_suffix(".json").read_text()) == card
        assert card["transitions"] == len(ds) and card["episodes"] == len(rets)
        assert card["return_mean"] == pytest.approx(rets.mean(), rel=1e-6) and card["sha256"] == sha256_of(path)
        assert card["env_id"] == "dm_control/cartpole-swingup-v0" and card["env_version"] == "v0"
        assert card["mujoco"] and card["dm_control"] and card["shimmy"]  # the versions it was made with
        assert "normalized_score_mean" not in card  # no D4RL reference constants for dm_control
        assert ds.observations.dtype == np.float32 and ds.observations.shape[1] == 5
    monkeypatch.setenv("GENPOLICY_DATASETS", str(tmp_path / "out"))
    both = load_dataset("cartpole-swingup-medium-expert-v0")
    assert len(both) == len(load_dataset("cartpole-swingup-medium-v0")) + len(load_dataset("cartpole-swingup-expert-v0"))
