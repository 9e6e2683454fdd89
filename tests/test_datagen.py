"""Dataset generation: tiny-budget behaviour training with resume, every level, data cards that match files."""

import json

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from genpolicy.cli import main  # noqa: E402
from genpolicy.datagen.make import MakeConfig, make_dataset, pick_snapshots  # noqa: E402
from genpolicy.datagen.rollout import sha256_of  # noqa: E402
from genpolicy.datagen.sac import SACConfig, train_sac  # noqa: E402
from genpolicy.rl.datasets import episode_returns, load_dataset  # noqa: E402


def test_pick_snapshots():
    returns = {10: 100.0, 20: 900.0, 30: 2900.0, 40: 3000.0, 50: 1000.0}
    assert pick_snapshots(returns, 1 / 3) == (50, 40)  # best 3000 -> target 1000 -> step 50 exactly
    assert pick_snapshots({10: 5.0, 20: 30.0, 30: 11.0}, 1 / 3)[0] == 30
    # with D4RL reference returns (random -280, expert 12135) the target is -280 + 12415 / 3 = 3858.3
    hc = {50: 2523.0, 60: 2875.0, 70: 4011.0, 280: 7866.0}
    assert pick_snapshots(hc, 1 / 3) == (50, 280)  # a third of our best (2622)
    assert pick_snapshots(hc, 1 / 3, reference=(-280.0, 12135.0)) == (70, 280)


@pytest.fixture(scope="module")
def behaviour(tmp_path_factory):
    root = tmp_path_factory.mktemp("behaviour")
    cfg = SACConfig(total_steps=400, start_steps=200, batch_size=32, hidden=(32, 32), save_every=100,
                    state_every=200, eval_episodes=1, compile=False)  # the compiled update: its own test below
    hist = train_sac("Hopper-v5", root / "hopper", cfg, progress=False)
    return root, cfg, hist


def test_a_missing_cpp_compiler_is_one_line_before_any_work(tmp_path):
    import torch._inductor.config as inductor

    with inductor.patch({"cpp.cxx": (None, "no-such-compiler-here")}):  # (monkeypatch's undo breaks the config)
        with pytest.raises(RuntimeError, match="needs a C[+][+] compiler .*--no-compile"):
            train_sac("Hopper-v5", tmp_path / "agent", SACConfig(total_steps=10), progress=False)
    assert not (tmp_path / "agent").exists()


def test_the_compiled_behaviour_update_trains_the_eager_agent(tmp_path):
    """SAC's update compiled whole draws the eager update's random numbers (the same global RNG stream, consumed
    alike) and ends 100 updates of a run, environment steps in between, within rounding of the eager run."""
    import torch

    from genpolicy.checkpoint import load_torch

    states, rngs = {}, {}
    for compiled in (False, True):
        cfg = SACConfig(total_steps=300, start_steps=200, batch_size=32, hidden=(16, 16), save_every=100,
                        state_every=100, eval_episodes=1, compile=compiled)
        train_sac("Hopper-v5", tmp_path / str(compiled), cfg, progress=False)
        st = load_torch(tmp_path / str(compiled) / "state.pt")
        states[compiled], rngs[compiled] = st["agent"], st["rng"]
    assert states[True].keys() == states[False].keys()
    diff = max((states[True][k] - states[False][k]).abs().max().item() for k in states[True])
    assert 0 < diff < 1e-4  # rounding only: not the same kernels, not another agent
    assert torch.equal(rngs[True]["torch"], rngs[False]["torch"])


def test_behaviour_training_resumes_from_the_saved_step(behaviour):
    root, cfg, hist = behaviour
    assert sorted(hist) == [100, 200, 300, 400]
    import torch

    st = torch.load(root / "hopper" / "state.pt", weights_only=False)
    assert st["step"] == 400
    rb_before = np.load(root / "hopper" / "replay.npz")
    assert len(rb_before["rewards"]) == 400
    cfg2 = SACConfig(**{**cfg.__dict__, "total_steps": 600})
    hist2 = train_sac("Hopper-v5", root / "hopper", cfg2, progress=False)
    assert sorted(hist2) == [100, 200, 300, 400, 500, 600]  # continued, did not start over
    assert {k: hist2[k] for k in hist} == hist
    rb = np.load(root / "hopper" / "replay.npz")
    assert len(rb["rewards"]) == 600
    np.testing.assert_array_equal(rb["observations"][:400], rb_before["observations"])


@pytest.mark.parametrize("level", ["random", "medium", "expert", "medium-replay"])
def test_make_produces_a_loadable_file_with_a_matching_card(behaviour, tmp_path, level):
    root, _, _ = behaviour
    cfg = MakeConfig(out=str(tmp_path), transitions=600, behaviour_root=str(root), num_envs=4)
    card = make_dataset("hopper", level, cfg, progress=False)
    path = tmp_path / f"hopper-{level}-v5.hdf5"
    ds = load_dataset(path)
    rets = episode_returns(ds)
    saved = json.loads(path.with_suffix(".json").read_text())
    assert saved == card
    assert card["transitions"] == len(ds) and card["episodes"] == len(rets)
    assert card["return_mean"] == pytest.approx(rets.mean(), rel=1e-6)
    assert card["return_max"] == pytest.approx(rets.max(), rel=1e-6)
    assert card["sha256"] == sha256_of(path)
    assert card["env_id"] == "Hopper-v5" and card["mujoco"] and card["gymnasium"]
    assert "normalized_score_mean" in card and card["command"].startswith("genpolicy data make hopper")
    import h5py

    with h5py.File(path) as f:  # rollouts and the replay buffer keep next_obs[i] == obs[i+1] inside episodes
        assert f["next_observations"].is_virtual
    if level == "medium-replay":
        assert len(ds) == card["behaviour_policy_steps"]
    if level != "random":
        assert card["behaviour_policy_steps"] in (100, 200, 300, 400, 500, 600)


def test_a_committed_snapshot_makes_the_same_medium_file_as_the_agent(behaviour, tmp_path):
    """What the repository commits of an agent (datasets/agents/TASK): its history.json and the medium snapshot
    exported as safetensors. `data make TASK medium` from there writes the file the full agent folder writes."""
    import shutil

    from genpolicy.datagen.make import snapshot_file
    from genpolicy.datagen.sac import export_actor

    root, _, _ = behaviour
    full = MakeConfig(out=str(tmp_path / "full"), transitions=300, behaviour_root=str(root), num_envs=2)
    card = make_dataset("hopper", "medium", full, progress=False)
    step = card["behaviour_policy_steps"]
    slim = tmp_path / "agents" / "hopper"
    (slim / "policies").mkdir(parents=True)
    shutil.copy(root / "hopper" / "history.json", slim / "history.json")
    name = f"step_{step:07d}"
    export_actor(root / "hopper" / "policies" / f"{name}.pt", slim / "policies" / f"{name}.safetensors")
    assert snapshot_file(slim, step).suffix == ".safetensors"
    assert snapshot_file(root / "hopper", step).suffix == ".pt"  # training's own snapshot wins where it exists
    again = make_dataset("hopper", "medium", MakeConfig(out=str(tmp_path / "slim"), transitions=300,
                                                        behaviour_root=str(slim.parent), num_envs=2), progress=False)
    assert again["sha256"] == card["sha256"] and again["behaviour_policy_steps"] == step


def test_suite_names_and_medium_expert_composition(behaviour, tmp_path, monkeypatch):
    root, _, _ = behaviour
    cfg = MakeConfig(out=str(tmp_path), transitions=300, behaviour_root=str(root), num_envs=2)
    for level in ("medium", "expert"):
        make_dataset("hopper", level, cfg, progress=False)
    monkeypatch.setenv("GENPOLICY_DATASETS", str(tmp_path))
    med, exp = load_dataset("hopper-medium-v5"), load_dataset("hopper-expert-v5")
    both = load_dataset("hopper-medium-expert-v5")
    assert len(both) == len(med) + len(exp)
    assert len(episode_returns(both)) == len(episode_returns(med)) + len(episode_returns(exp))


def test_cli_data_errors(capsys):
    with pytest.raises(SystemExit):
        main(["data", "make", "ant", "medium"])
    assert main(["data", "make", "hopper", "medium", "--behaviour-root", "/nonexistent", "--no-progress"]) == 2
    assert "no behaviour agent" in capsys.readouterr().err


def _episodic(n_eps=5, length=40, obs_dim=3):
    """Episodes whose next_observations are the next rows' observations, ending alternately in terminals and
    timeouts (test_data's builder)."""
    from genpolicy.rl.datasets import TransitionDataset

    from .test_data import _episodes

    return TransitionDataset(**_episodes(n_eps, length, obs_dim, terminal_last=[k % 2 == 0 for k in range(n_eps)]))


def test_virtual_next_observations_are_exact_and_smaller(tmp_path):
    import h5py

    from genpolicy.datagen.rollout import save_d4rl_hdf5

    ds = _episodic(n_eps=6, length=500, obs_dim=11)
    save_d4rl_hdf5(ds, tmp_path / "v.hdf5")
    save_d4rl_hdf5(ds, tmp_path / "full.hdf5", virtual_next=False)
    with h5py.File(tmp_path / "v.hdf5") as f:
        assert f["next_observations"].is_virtual and f["final_observations"].shape == (6, 11)
    back = load_dataset(tmp_path / "v.hdf5")
    for key in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts"):
        np.testing.assert_array_equal(getattr(back, key), getattr(ds, key))
    assert (tmp_path / "v.hdf5").stat().st_size < 0.7 * (tmp_path / "full.hdf5").stat().st_size


def test_the_same_data_make_the_same_file_byte_for_byte(tmp_path):
    """A data card's sha256 can be checked by regenerating the file: written in different seconds, the same data give
    the same bytes (the virtual dataset records no creation time)."""
    import time

    from genpolicy.datagen.rollout import save_d4rl_hdf5

    ds = _episodic(n_eps=4, length=30, obs_dim=5)
    first = save_d4rl_hdf5(ds, tmp_path / "a.hdf5")
    time.sleep(1.1)  # HDF5 records times in whole seconds
    assert save_d4rl_hdf5(ds, tmp_path / "b.hdf5") == first
    assert (tmp_path / "a.hdf5").read_bytes() == (tmp_path / "b.hdf5").read_bytes()
    np.testing.assert_array_equal(load_dataset(tmp_path / "b.hdf5").next_observations, ds.next_observations)


def test_next_observations_that_are_not_successors_are_stored_in_full(tmp_path):
    import h5py

    from genpolicy.datagen.rollout import save_d4rl_hdf5

    ds = _episodic()
    ds.next_observations[7] += 1.0  # a within-episode row whose successor differs: no virtual mapping
    save_d4rl_hdf5(ds, tmp_path / "x.hdf5")
    with h5py.File(tmp_path / "x.hdf5") as f:
        assert not f["next_observations"].is_virtual and "final_observations" not in f
    np.testing.assert_array_equal(load_dataset(tmp_path / "x.hdf5").next_observations, ds.next_observations)


def test_collect_cuts_at_most_one_episode():
    from genpolicy.datagen.rollout import collect

    # random Hopper episodes end by termination after tens of steps; only the budget's cut may be a timeout
    ds = collect("Hopper-v5", None, 700, seed=0, num_envs=4)
    assert len(ds) == 700 and ds.timeouts.sum() <= 1 and ds.terminals.sum() >= 10
    assert ds.terminals[-1] or ds.timeouts[-1]


def test_behaviour_curves_plot(behaviour, tmp_path):
    root, _, _ = behaviour
    out = tmp_path / "curves.png"
    assert main(["data", "curves", "--behaviour-root", str(root), "--out-png", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    with pytest.raises(FileNotFoundError):
        from genpolicy.datagen.make import plot_behaviour_curves

        plot_behaviour_curves(MakeConfig(behaviour_root=str(tmp_path / "none")), tmp_path / "x.png")


def test_datasets_not_here_names_each_missing_family_with_its_command(tmp_path):
    from genpolicy.cli.datasets import not_here
    from genpolicy.datagen.antmaze import ANT_DATASETS
    from genpolicy.rl.envs import DM_CONTROL_TASKS

    every = {f"{n}-v0" for n in ANT_DATASETS} | {f"{t}-{lvl}-v0" for t in DM_CONTROL_TASKS
                                                  for lvl in ("medium-replay", "medium")}
    assert not_here(every) == []
    lines = not_here(every - {"antmaze-large-play-v0", "fish-swim-medium-v0"}, agents=tmp_path)  # no agents
    assert len(lines) == 2
    assert "antmaze-large-play-v0;" in lines[0] and "genpolicy data maze NAME" in lines[0]
    assert "of fish-swim;" in lines[1] and "genpolicy data behaviour TASK" in lines[1]
    assert "finger-turn_hard" not in lines[1]


def test_datasets_not_here_points_a_missing_medium_file_at_its_committed_snapshot(tmp_path):
    """A DeepMind Control task whose agent's snapshot is committed (history.json in AGENTS/TASK): its missing medium
    file is one `data make` from there; its missing medium-replay file still needs the agent."""
    from genpolicy.cli.datasets import not_here
    from genpolicy.datagen.antmaze import ANT_DATASETS
    from genpolicy.rl.envs import DM_CONTROL_TASKS

    every = {f"{n}-v0" for n in ANT_DATASETS} | {f"{t}-{lvl}-v0" for t in DM_CONTROL_TASKS
                                                  for lvl in ("medium-replay", "medium")}
    (tmp_path / "fish-swim").mkdir()
    (tmp_path / "fish-swim" / "history.json").write_text("{}")
    lines = not_here(every - {"fish-swim-medium-v0"}, agents=tmp_path)
    assert len(lines) == 1 and "medium files of fish-swim;" in lines[0]
    assert f"genpolicy data make TASK medium --behaviour-root {tmp_path}" in lines[0]
    lines = not_here(every - {"fish-swim-medium-v0", "fish-swim-medium-replay-v0"}, agents=tmp_path)
    assert len(lines) == 2 and "medium-replay / medium files of fish-swim;" in lines[1]
