"""Dataset loaders on small files written here, one broken file per failure mode; scaling; batches."""

import json
import warnings

import h5py
import numpy as np
import pytest
import torch

from genpolicy.rl.data import OfflineData
from genpolicy.rl.datasets import DatasetError, episode_returns, load_dataset, register_dataset


def _episodes(n_eps=3, length=5, obs_dim=3, act_dim=2, seed=0, terminal_last=(True, False, False)):
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(n_eps):
        obs = rng.normal(size=(length + 1, obs_dim)).astype(np.float32)
        for t in range(length):
            last = t == length - 1
            rows.append(dict(o=obs[t], a=rng.uniform(-1, 1, act_dim).astype(np.float32), r=float(e + 1),
                             no=obs[t + 1], te=last and terminal_last[e], to=last and not terminal_last[e]))
    cat = lambda k, dt=np.float32: np.asarray([r[k] for r in rows], dtype=dt)  # noqa: E731
    return dict(observations=cat("o"), actions=cat("a"), rewards=cat("r"), next_observations=cat("no"),
                terminals=cat("te", bool), timeouts=cat("to", bool))


def _write_h5(path, arrays):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
    return path


def test_d4rl_hdf5_roundtrip(tmp_path):
    arr = _episodes()
    ds = load_dataset(_write_h5(tmp_path / "d.hdf5", arr))
    assert len(ds) == 15
    np.testing.assert_array_equal(ds.observations, arr["observations"])
    np.testing.assert_array_equal(episode_returns(ds), [5.0, 10.0, 15.0])
    assert ds.episode_ends.sum() == 3


def test_next_observations_derived_and_timeouts_dropped(tmp_path):
    arr = _episodes()
    del arr["next_observations"]
    ds = load_dataset(_write_h5(tmp_path / "d.hdf5", arr))
    # the two timeout rows have no known successor and are dropped (D4RL's qlearning_dataset does the same)
    assert len(ds) == 13
    assert ds.metadata["next_observations"] == "derived"
    full = _episodes()
    np.testing.assert_array_equal(ds.next_observations[:4], full["observations"][1:5])
    # episode 2 lost its timeout row: its row 3 now ends the episode, with successor obs[4] of that episode
    np.testing.assert_array_equal(ds.next_observations[8], full["observations"][9])
    assert ds.timeouts[8] and not ds.terminals[8]
    # episode structure survives: returns of the shortened episodes
    np.testing.assert_array_equal(episode_returns(ds), [5.0, 8.0, 12.0])


def test_npz(tmp_path):
    arr = _episodes()
    np.savez(tmp_path / "d.npz", **arr)
    assert len(load_dataset(tmp_path / "d.npz")) == 15


def _write_minari(root, dict_obs=False, bad=None):
    folder = root / "mujoco" / "hopper" / "medium-v0"
    (folder / "data").mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps({"dataset_id": "mujoco/hopper/medium-v0"}))
    rng = np.random.default_rng(0)
    with h5py.File(folder / "data" / "main_data.hdf5", "w") as f:
        for e, (t, term) in enumerate([(4, True), (6, False)]):
            g = f.create_group(f"episode_{e}")
            n_obs = t + 1 if bad != "obs_len" else t
            if dict_obs:
                og = g.create_group("observations")
                og.create_dataset("pos", data=rng.normal(size=(n_obs, 2)))
                og.create_dataset("vel", data=rng.normal(size=(n_obs, 1)))
            else:
                g.create_dataset("observations", data=rng.normal(size=(n_obs, 3)))
            g.create_dataset("actions", data=rng.uniform(-1, 1, size=(t, 2)))
            g.create_dataset("rewards", data=np.ones(t))
            g.create_dataset("terminations", data=np.eye(1, t, t - 1)[0].astype(bool) & term)
            g.create_dataset("truncations", data=np.eye(1, t, t - 1)[0].astype(bool) & (not term))
            if bad == "missing" and e == 1:
                del g["rewards"]
    return folder


@pytest.mark.parametrize("dict_obs", [False, True])
def test_minari_folder_and_id(tmp_path, monkeypatch, dict_obs):
    folder = _write_minari(tmp_path, dict_obs)
    ds = load_dataset(folder)
    assert len(ds) == 10 and ds.observations.shape == (10, 3)
    assert ds.terminals.sum() == 1 and ds.timeouts.sum() == 1
    np.testing.assert_array_equal(ds.observations[1:4], ds.next_observations[0:3])
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    assert len(load_dataset("minari:mujoco/hopper/medium-v0")) == 10


def test_registered_name(tmp_path):
    register_dataset("tiny-test-v0", _write_h5(tmp_path / "d.hdf5", _episodes()))
    assert len(load_dataset("tiny-test-v0")) == 15


class TestBrokenFiles:
    def _expect(self, path, key, match):
        with pytest.raises(DatasetError, match=match) as e:
            load_dataset(path)
        assert str(path) in str(e.value) or path.name in str(e.value)
        if key:
            assert e.value.key == key

    def test_missing_key(self, tmp_path):
        arr = _episodes()
        del arr["actions"]
        self._expect(_write_h5(tmp_path / "d.hdf5", arr), "actions", "required key missing")

    def test_length_mismatch(self, tmp_path):
        arr = _episodes()
        arr["terminals"] = arr["terminals"][:-2]
        self._expect(_write_h5(tmp_path / "d.hdf5", arr), "terminals", "has 13 rows but rewards has 15")

    def test_non_finite(self, tmp_path):
        arr = _episodes()
        arr["observations"][4, 1] = np.nan
        self._expect(_write_h5(tmp_path / "d.hdf5", arr), "observations", "non-finite value.*row 4")

    def test_action_bounds(self, tmp_path):
        arr = _episodes()
        arr["actions"][2, 0] = 1.7
        self._expect(_write_h5(tmp_path / "d.hdf5", arr), "actions", "exceed the action bounds")

    def test_not_hdf5(self, tmp_path):
        p = tmp_path / "d.hdf5"
        p.write_bytes(b"this is not an HDF5 file")
        self._expect(p, None, "not a readable HDF5 file")

    def test_not_npz(self, tmp_path):
        p = tmp_path / "d.npz"
        p.write_bytes(b"garbage")
        self._expect(p, None, "not a readable .npz file")

    def test_next_obs_shape(self, tmp_path):
        arr = _episodes()
        arr["next_observations"] = arr["next_observations"][:, :2]
        self._expect(_write_h5(tmp_path / "d.hdf5", arr), "next_observations", "does not match observations")

    def test_minari_obs_length(self, tmp_path):
        folder = _write_minari(tmp_path, bad="obs_len")
        with pytest.raises(DatasetError, match="episode_0/observations.*expected len\\(actions\\)\\+1"):
            load_dataset(folder)

    def test_minari_missing_key(self, tmp_path):
        folder = _write_minari(tmp_path, bad="missing")
        with pytest.raises(DatasetError, match="episode_1/rewards.*required key missing"):
            load_dataset(folder)

    def test_missing_and_unknown(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="no dataset"):
            load_dataset("hopper-imaginary-v9")
        with pytest.raises(FileNotFoundError):
            load_dataset(tmp_path / "nope.hdf5")
        p = tmp_path / "d.csv"
        p.write_text("a,b\n")
        with pytest.raises(DatasetError, match="unknown file type"):
            load_dataset(p)


def test_reward_scaling_and_normalization(tmp_path):
    ds = load_dataset(_write_h5(tmp_path / "d.hdf5", _episodes()))
    loco = OfflineData(ds, reward_scale="locomotion")
    # returns 5, 10, 15 -> span 10 -> scale 100
    torch.testing.assert_close(loco.rewards[:5], torch.full((5,), 100.0))
    ant = OfflineData(ds, reward_scale="antmaze")
    torch.testing.assert_close(ant.rewards[:5], torch.zeros(5))
    norm = OfflineData(ds, normalize_obs=True)
    assert abs(float(norm.obs.mean())) < 1e-5
    torch.testing.assert_close(norm.obs.std(0, unbiased=False), torch.ones(3), atol=2e-3, rtol=0)
    b = norm.sample(7, generator=torch.Generator().manual_seed(0))
    assert b.obs.shape == (7, 3) and b.actions.shape == (7, 2) and b.rewards.shape == (7,) and b.dones.shape == (7,)
    with pytest.raises(ValueError, match="reward_scale"):
        OfflineData(ds, reward_scale="atari")
    # locomotion0 counts 0 in the range: returns 5..15 -> span 15
    torch.testing.assert_close(OfflineData(ds, reward_scale="locomotion0").rewards[:5], torch.full((5,), 1000 / 15))
    arr = _episodes()
    arr["rewards"] = arr["rewards"] - 1.0  # returns 0, 5, 10: 0 already in the range, the two scales agree
    low = load_dataset(_write_h5(tmp_path / "low.hdf5", arr))
    torch.testing.assert_close(OfflineData(low, reward_scale="locomotion0").rewards,
                               OfflineData(low, reward_scale="locomotion").rewards)


def test_narrow_return_span_warns(tmp_path):
    """Data whose episodes all succeed (returns 95, 100, 105: span 10) makes IQL's scale 100 per unit reward, 10.5x
    that of the same rewards with 0 in the range (1000/105); the warning names the alternative and the ratio."""
    arr = _episodes()
    arr["rewards"] = arr["rewards"] + 18.0  # returns 5 * (19, 20, 21)
    ds = load_dataset(_write_h5(tmp_path / "narrow.hdf5", arr))
    with pytest.warns(UserWarning, match=r"95\.\.105: .*by 100, 10\.5x .*locomotion0.*about 10\.5x stronger"):
        narrow = OfflineData(ds, reward_scale="locomotion")
    assert len(narrow.notes) == 1 and "95..105" in narrow.notes[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert OfflineData(ds, reward_scale="locomotion0").notes == []
        OfflineData(load_dataset(_write_h5(tmp_path / "wide.hdf5", _episodes())), reward_scale="locomotion")
