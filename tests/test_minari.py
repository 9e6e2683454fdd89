"""Minari both ways: a dataset Minari itself writes loads here with its metadata; a suite file exported with
``genpolicy data export NAME --minari DIR`` loads in ``minari.load_dataset`` and back here with the same
transitions. Offline: Minari writes and reads local folders only."""

import json

import numpy as np
import pytest

minari = pytest.importorskip("minari")
gym = pytest.importorskip("gymnasium")

from genpolicy.cli import main  # noqa: E402
from genpolicy.rl.datasets import load_dataset  # noqa: E402
from genpolicy.rl.minari_io import episode_slices, minari_id  # noqa: E402

KEYS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")


def test_a_dataset_minari_writes_loads_with_its_metadata(tmp_path, monkeypatch):
    from minari.data_collector import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    rng = np.random.default_rng(0)
    eps = []
    for i, t in enumerate((5, 7, 4)):
        eps.append(EpisodeBuffer(id=i, observations=rng.normal(size=(t + 1, 4)).astype(np.float32),
                                 actions=rng.uniform(-1, 1, (t, 2)).astype(np.float32), rewards=list(rng.normal(size=t)),
                                 terminations=[False] * (t - 1) + [i == 0], truncations=[False] * (t - 1) + [i != 0]))
    with pytest.warns(UserWarning):
        minari.create_dataset_from_buffers("test/toy/mixed-v0", eps, observation_space=gym.spaces.Box(
            -np.inf, np.inf, (4,), np.float32), action_space=gym.spaces.Box(-1, 1, (2,), np.float32),
            algorithm_name="random", description="three episodes", data_format="hdf5")
    assert (tmp_path / "test/toy/mixed-v0/data/metadata.json").exists()  # where Minari 0.5 puts it
    for spec in ("minari:test/toy/mixed-v0", str(tmp_path / "test/toy/mixed-v0")):
        ds = load_dataset(spec)
        assert ds.metadata["dataset_id"] == "test/toy/mixed-v0" and ds.metadata["description"] == "three episodes"
        assert ds.metadata["total_episodes"] == 3 and len(ds) == 16
        np.testing.assert_array_equal(ds.observations[:5], eps[0].observations[:-1])
        np.testing.assert_array_equal(ds.next_observations[5:12], eps[1].observations[1:])
        assert ds.terminals.tolist() == [False] * 4 + [True] + [False] * 11
        assert np.flatnonzero(ds.timeouts).tolist() == [11, 15]


def test_a_suite_file_exported_to_minari_round_trips(tmp_path, capsys):
    name = "hopper-medium-replay-v5"
    ds = load_dataset(name)
    assert main(["data", "export", name, "--minari", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["minari_id"] == minari_id(name) == "genpolicy/hopper/medium-replay-v5" and out["env"] == "Hopper-v5"
    import os

    os.environ["MINARI_DATASETS_PATH"] = str(tmp_path)
    try:
        theirs = minari.load_dataset(out["minari_id"])
        episodes = list(theirs.iterate_episodes())
    finally:
        del os.environ["MINARI_DATASETS_PATH"]
    slices = episode_slices(ds)
    assert theirs.total_steps == len(ds) and len(episodes) == len(slices)
    assert theirs.spec.env_spec is not None and theirs.spec.env_spec.id == "Hopper-v5"
    for ep, sl in zip(episodes[::40], slices[::40]):  # Minari's reader sees our transitions
        np.testing.assert_array_equal(ep.observations[:-1], ds.observations[sl])
        np.testing.assert_array_equal(ep.observations[1:], ds.next_observations[sl])
        np.testing.assert_array_equal(ep.actions, ds.actions[sl])
        np.testing.assert_allclose(ep.rewards, ds.rewards[sl], rtol=0, atol=0)
        np.testing.assert_array_equal(ep.terminations, ds.terminals[sl])
    back = load_dataset(out["folder"])  # and ours reads it back whole
    for k in KEYS:
        np.testing.assert_array_equal(getattr(back, k), getattr(ds, k), err_msg=k)
    assert main(["data", "export", name, "--minari", str(tmp_path)]) == 2  # never over an existing dataset
    assert "exists" in capsys.readouterr().err


def test_episodes_with_a_gap_are_refused_not_written_wrong(tmp_path):
    from genpolicy.rl.datasets import TransitionDataset
    from genpolicy.rl.minari_io import export_minari

    o = np.arange(12, dtype=np.float32).reshape(6, 2)
    nxt = np.roll(o, -1, axis=0)
    nxt[2] += 100  # row 2's next state is not row 3's state, inside one episode
    ds = TransitionDataset(o, np.zeros((6, 1), np.float32), np.zeros(6, np.float32), nxt, np.zeros(6, bool),
                           np.array([0, 0, 0, 0, 0, 1], bool))
    with pytest.raises(ValueError, match="row 2's next observation is not row 3's observation"):
        export_minari(ds, "test/gap/x-v0", tmp_path)
    assert not (tmp_path / "test").exists()
