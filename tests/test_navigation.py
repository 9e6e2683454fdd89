"""Navigation tasks by name (D4RL's single-task conventions on Gymnasium-Robotics), the point-mass maze datasets of
the waypoint controller, and every algorithm trained and scored on a tiny navigation dataset."""

import csv
import json

import numpy as np
import pytest

from .tiny import registered, tiny_sets

pytest.importorskip("gymnasium_robotics")

from genpolicy.datagen.maze import collect_pointmaze  # noqa: E402
from genpolicy.rl.envs import env_family, make_env, normalized_score  # noqa: E402
from genpolicy.rl.navigation import EPISODE_STEPS, SUCCESS_RADIUS, task_maze  # noqa: E402


@pytest.mark.parametrize("task, dim, steps", [("pointmaze-umaze", 4, 300), ("pointmaze-large", 4, 800),
                                              ("antmaze-umaze", 29, 700), ("antmaze-medium", 29, 1000)])
def test_maze_tasks_make_by_name_with_the_agents_own_state_and_d4rls_lengths(task, dim, steps):
    env = make_env(f"genpolicy/{task}-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (dim,) and obs.dtype == np.float32 and env.spec.max_episode_steps == steps
    inner = env.unwrapped.inner
    body = inner.point_env if hasattr(inner, "point_env") else inner.ant_env
    np.testing.assert_allclose(obs[:2], body.data.qpos[:2], atol=1e-6)  # the flattened observation starts with x, y
    maze = task_maze(task)
    start = {"umaze": (3, 1), "medium": (1, 1), "large": (1, 1)}[task.split("-")[1]]
    assert maze.cell_of(obs[:2]) == start  # D4RL's fixed start cell
    np.testing.assert_array_equal(env.unwrapped.goal_xy, maze.xy(maze.goal))
    for _ in range(3):
        obs, r, term, trunc, _ = env.step(env.action_space.sample() * 0)
        assert r == 0.0 and not term and not trunc  # far from the goal
    assert env_family(f"genpolicy/{task}-v0") in ("pointmaze", "antmaze")
    assert normalized_score(f"genpolicy/{task}-v0", 1.0) == 100.0


def test_reaching_the_goal_pays_1_once_and_ends_the_episode():
    env = make_env("genpolicy/pointmaze-umaze-v0")
    maze = task_maze("pointmaze-umaze")
    obs, _ = env.reset(seed=1, options={"reset_cell": np.array(maze.goal)})  # starts inside the goal radius
    assert np.linalg.norm(obs[:2] - maze.xy(maze.goal)) <= SUCCESS_RADIUS
    obs, r, term, trunc, info = env.step(np.zeros(2, np.float32))
    assert (r, term, trunc, info["success"]) == (1.0, True, False, True)


def test_the_waypoint_controllers_data_is_a_consistent_stream_that_reaches_every_cell():
    ds = collect_pointmaze("pointmaze-medium", 6000, seed=3, progress=False)
    ds.validate()
    maze = task_maze("pointmaze-medium")
    seen = {maze.cell_of(o[:2]) for o in np.concatenate([ds.observations, ds.next_observations])}
    assert seen == set(maze.cells)  # the whole maze (the goal cell as next states: arriving ends the episode)
    hit = ds.rewards > 0
    assert np.array_equal(hit, ds.terminals) and hit.sum() > 0
    near = np.linalg.norm(ds.next_observations[:, :2] - maze.xy(maze.goal), axis=1) <= SUCCESS_RADIUS
    assert np.array_equal(near, hit)  # reward 1 exactly where the next state is within 0.5 of the goal
    ends = np.flatnonzero(ds.terminals | ds.timeouts)
    assert ends[-1] == len(ds) - 1 and np.diff(np.r_[-1, ends]).max() <= EPISODE_STEPS["point"]["medium"]
    inside = np.setdiff1d(np.arange(len(ds) - 1), ends)
    np.testing.assert_array_equal(ds.next_observations[inside], ds.observations[inside + 1])
    assert np.all(np.abs(ds.actions) <= 1.0)
    again = collect_pointmaze("pointmaze-medium", 6000, seed=3, progress=False)
    np.testing.assert_array_equal(again.observations, ds.observations)  # the seed fixes the data


def test_data_maze_writes_a_loadable_file_and_its_card(tmp_path, capsys):
    from genpolicy.cli import main
    from genpolicy.rl.datasets import load_dataset

    assert main(["data", "maze", "pointmaze-umaze", "--transitions", "3000", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    card = json.loads((tmp_path / "pointmaze-umaze-v0.json").read_text())
    assert card["transitions"] == 3000 and card["env_id"] == "genpolicy/pointmaze-umaze-v0"
    assert card["evaluation_goal_reached"] == card["terminals"] > 0 and "differs_from_d4rl" in card
    ds = load_dataset(str(tmp_path / "pointmaze-umaze-v0.hdf5"))
    assert len(ds) == 3000 and ds.observations.shape[1] == 4


@pytest.fixture(scope="module")
def tiny_maze(tmp_path_factory):
    from .test_iql_gmpo import save_npz

    ds = collect_pointmaze("pointmaze-umaze", 1500, seed=0, progress=False)
    return save_npz(ds, tmp_path_factory.mktemp("maze") / "pointmaze-umaze-v0.npz")


@pytest.mark.parametrize("algo", registered())
def test_every_algorithm_trains_and_scores_on_a_tiny_navigation_dataset(tiny_maze, tmp_path, algo):
    """Each registered algorithm at its test budget on point-maze data, evaluated on the task by name: a success
    rate x 100 per seed (0 or 100 per episode), in the suite's table."""
    from genpolicy.suite import parse_task, run_suite

    sets = tiny_sets(algo) + ["final_eval_episodes=2"]
    run_suite([algo], [parse_task(f"{tiny_maze}:genpolicy/pointmaze-umaze-v0")], [0], ["cpu"], tmp_path / "s",
              sets, progress=False)
    (row,) = list(csv.DictReader(open(tmp_path / "s" / "results.csv")))
    score = float(row["mean"])
    assert row["n"] == "1" and score in (0.0, 50.0, 100.0)


def test_the_suite_gives_maze_tasks_the_sparse_reward_presets():
    """A navigation task takes its family's preset (expectile 0.9, rewards r - 1, Table 8's beta) before its own;
    locomotion tasks keep theirs."""
    from genpolicy.suite import Task
    from genpolicy.suite.runner import _config

    for name in ("pointmaze-umaze-v0", "antmaze-umaze-diverse-v0"):
        cfg, names = _config("iql", ["cpu"], Task(f"datasets/{name}.hdf5", None), [])
        assert names == ["cpu", "antmaze"] and (cfg.expectile, cfg.reward_scale, cfg.beta) == (0.9, "antmaze", 10.0)
        gmpo, _ = _config("gmpo", ["cpu"], Task(f"datasets/{name}.hdf5", None), [])
        beta = 12.0 if name.startswith("pointmaze") else 16.0  # the family's; umaze-diverse's own (Table 8)
        assert (gmpo.beta, gmpo.expectile, gmpo.reward_scale) == (beta, 0.9, "antmaze")
    cfg, names = _config("gmpo", ["cpu"], Task("hopper-medium-v5", None), [])
    assert names == ["cpu", "hopper-medium"] and cfg.reward_scale == "locomotion"
    # Table 8's beta per AntMaze task over the family's, and its one beta per method for every DeepMind Control task
    for task, gmpo_beta, gmpg_beta in (("antmaze-umaze-diverse", 16.0, 1.0), ("antmaze-medium-play", 12.0, 0.25),
                                       ("antmaze-large-diverse", 4.0, 1.0)):
        gmpo, names = _config("gmpo", ["cpu"], Task(f"datasets/{task}-v0.hdf5", None), [])
        gmpg, _ = _config("gmpg", ["cpu"], Task(f"datasets/{task}-v0.hdf5", None), [])
        assert names == ["cpu", "antmaze", task] and (gmpo.beta, gmpg.beta) == (gmpo_beta, gmpg_beta)
        assert gmpo.expectile == gmpg.expectile == 0.9
    for task in ("cheetah-run-medium-replay-v0", "walker-walk-medium-v0"):
        gmpo, names = _config("gmpo", ["cpu"], Task(task, None), [])
        gmpg, gnames = _config("gmpg", ["cpu"], Task(task, None), [])
        assert names == gnames == ["cpu", "dmc"] and (gmpo.beta, gmpg.beta) == (1.0, 4.0)
        assert _config("iql", ["cpu"], Task(task, None), [])[1] == ["cpu"]  # Table 8 is GMPO's and GMPG's
    assert _config("gmpg", ["cpu"], Task("walker2d-medium-v5", None), [])[1] == ["cpu", "walker2d-medium"]


def test_a_navigation_tasks_final_score_counts_100_seeded_episodes_for_every_algorithm():
    """D4RL's and the paper's protocol: the success rate on 100 episodes per seed, whatever the algorithm (bc has no
    navigation preset); locomotion keeps the default 50; --set still wins."""
    from genpolicy.rl.algos import ALGORITHMS
    from genpolicy.suite import Task
    from genpolicy.suite.runner import NAV_FINAL_EPISODES, _config

    assert NAV_FINAL_EPISODES == 100
    for algo in ALGORITHMS:
        for name in ("antmaze-large-play-v0", "pointmaze-medium-v0"):
            assert _config(algo, [], Task(f"datasets/{name}.hdf5", None), [])[0].final_eval_episodes == 100
        assert _config(algo, [], Task("hopper-medium-v5", None), [])[0].final_eval_episodes == 50
    cfg, _ = _config("bc", [], Task("datasets/antmaze-umaze-v0.hdf5", None), ["final_eval_episodes=3"])
    assert cfg.final_eval_episodes == 3


def test_play_cells_are_the_branch_ends_from_d4rls_start_and_the_junctions():
    from genpolicy.datagen.antmaze import play_cells

    targets, starts = play_cells(task_maze("antmaze-medium"), (1, 1))
    assert targets == [(1, 6), (6, 3), (6, 5)]
    assert starts == [(2, 2), (2, 5), (3, 2), (3, 4), (4, 4)]
    with pytest.raises(ValueError, match="no junctions"):
        play_cells(task_maze("antmaze-umaze"), (3, 1))


def test_the_ant_is_driven_by_bfs_waypoints_and_its_data_follows_the_task():
    from genpolicy.datagen.antmaze import collect_antmaze
    from genpolicy.rl.navigation import STARTS

    seen = []

    def still(obs):  # a controller that stands still: the ant neither falls nor arrives
        seen.append(obs.copy())
        return np.zeros(8)

    ds = collect_antmaze("antmaze-umaze", "umaze", 800, still, progress=False)
    maze = task_maze("antmaze-umaze")
    assert ds.observations.shape == (800, 29) and ds.actions.shape == (800, 8)
    assert seen[0].shape == (29,) and np.array_equal(seen[0][:27], ds.observations[0, 2:])
    xy = ds.observations[0, :2].astype(np.float64)
    assert maze.cell_of(xy) == STARTS["umaze"]
    # its goal: the next cell on the shortest path from the start cell to the evaluation goal, relative to the ant
    np.testing.assert_allclose(seen[0][27:], maze.xy(maze.next_waypoint(STARTS["umaze"], maze.goal)) - xy,
                               rtol=1e-6, atol=1e-6)
    assert list(np.nonzero(ds.timeouts)[0]) == [EPISODE_STEPS["ant"]["umaze"] - 1, 799] and not ds.terminals.any()
    # the card's walking record: the still ant reached nothing, never fell, and entered only its start cell
    assert ds.metadata["walk"] == {"targets_reached": 0, "episodes_with_falls": 0,
                                   "free_cells_entered": round(1 / len(maze.cells), 3)}
    assert np.array_equal(ds.next_observations[:-1][~ds.timeouts[:-1]], ds.observations[1:][~ds.timeouts[:-1]])
    for task, variant in (("antmaze-umaze", "play"), ("antmaze-medium", "umaze"), ("pointmaze-umaze", "diverse")):
        with pytest.raises(ValueError):
            collect_antmaze(task, variant, 10, still, progress=False)
    # a controller trained on the goal's direction at distance 10 (AntGoal-v1) is shown the waypoint that way
    seen.clear()
    collect_antmaze("antmaze-umaze", "umaze", 5, still, progress=False, goal_norm=10.0)
    rel = maze.xy(maze.next_waypoint(STARTS["umaze"], maze.goal)) - xy
    np.testing.assert_allclose(seen[0][27:], rel / np.linalg.norm(rel) * 10.0, rtol=1e-6, atol=1e-6)


def test_the_second_controller_arena_pays_ant_v5s_weights_and_shows_the_goals_direction():
    """AntGoal-v1 against v0, from the same seed and with the same actions: the same physics and goals, the reward
    higher by exactly (1.0 - 0.3) - (0.5 - 0.1) |a|^2 a step, the goal shown as its direction at distance 10."""
    v0, v1 = make_env("genpolicy/AntGoal-v0"), make_env("genpolicy/AntGoal-v1")
    o0, _ = v0.reset(seed=3)
    o1, _ = v1.reset(seed=3)
    np.testing.assert_array_equal(o0[:27], o1[:27])
    np.testing.assert_allclose(o1[27:], o0[27:] / np.linalg.norm(o0[27:]) * 10.0, rtol=1e-6)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.uniform(-1, 1, 8).astype(np.float32)
        o0, r0, te0, _, _ = v0.step(a)
        o1, r1, te1, _, _ = v1.step(a)
        aa = float(a.astype(np.float64) @ a.astype(np.float64))
        assert r1 - r0 == pytest.approx(0.7 - 0.4 * aa, abs=1e-9) and te0 == te1
        np.testing.assert_array_equal(o0[:27], o1[:27])


def test_the_antmaze_walking_record_counts_arrivals_and_falls(monkeypatch):
    import genpolicy.datagen.antmaze as antmaze

    def still(obs):
        return np.zeros(8)

    monkeypatch.setattr(antmaze, "ARRIVAL", 1e9)  # always within reach of its one target (umaze): one arrival,
    assert antmaze.collect_antmaze("antmaze-umaze", "umaze", 30, still, progress=False).metadata["walk"][
        "targets_reached"] == 1  # then a stay, not 29 more arrivals
    monkeypatch.setattr(antmaze, "ant_fallen", lambda ant_env: True)  # falls at its first step, every episode:
    monkeypatch.setattr(antmaze, "FALLEN_STEPS", 4)  # each episode goes on 4 steps on the ground, then ends (t 1..5)
    ds = antmaze.collect_antmaze("antmaze-umaze", "umaze", 30, still, progress=False)
    assert list(np.nonzero(ds.timeouts)[0]) == [4, 9, 14, 19, 24, 29] and not ds.terminals.any()
    assert ds.metadata["walk"]["episodes_with_falls"] == 6  # one fall counted per episode, not per step down
    assert ds.metadata["walk"]["targets_reached"] == 6  # each episode arriving once


def test_the_third_controller_arena_draws_near_goals_and_pays_ten_times_the_speed_toward_them():
    """AntGoal-v2: every goal within 10 units of where the ant was when it was drawn and inside the arena, the raw
    goal vector shown, reward 1.0 - 0.5 |a|^2 + 10 x the distance gained per second; on reaching a goal (within
    0.5) a new near one replaces it with no bonus."""
    from genpolicy.rl.navigation import SUCCESS_RADIUS

    env = make_env("genpolicy/AntGoal-v2")
    inner = env.unwrapped
    rng = np.random.default_rng(1)
    for seed in range(5):
        o, _ = env.reset(seed=seed)
        xy = inner.inner.data.qpos[:2].copy()
        goal = inner._goal.copy()
        assert np.linalg.norm(goal - xy) <= 10.0 + 1e-9 and np.all(np.abs(goal) <= 13.0)
        np.testing.assert_allclose(o[27:], goal - xy, rtol=1e-5, atol=1e-5)
        dist = np.linalg.norm(goal - xy)
        for _ in range(5):
            a = rng.uniform(-1, 1, 8).astype(np.float32)
            o, r, _, _, info = env.step(a)
            new = np.linalg.norm(goal - inner.inner.data.qpos[:2])
            aa = float(a.astype(np.float64) @ a.astype(np.float64))
            assert r == pytest.approx(1.0 - 0.5 * aa + 10.0 * (dist - new) / inner.dt, abs=1e-6)
            dist = new
    # put the goal under the ant: the next step reaches it, pays no bonus and draws a new goal within 10 units
    env.reset(seed=7)
    xy = inner.inner.data.qpos[:2].copy()
    inner._goal, inner._dist = xy.copy(), 0.0
    a = np.zeros(8, np.float32)
    o, r, _, _, info = env.step(a)
    moved = np.linalg.norm(inner.inner.data.qpos[:2] - xy)
    assert moved < SUCCESS_RADIUS and r == pytest.approx(1.0 - 10.0 * moved / inner.dt, abs=1e-6)
    assert not np.array_equal(inner._goal, xy) and np.linalg.norm(inner._goal - inner.inner.data.qpos[:2]) <= 10.0
    assert info["goal_distance"] == pytest.approx(np.linalg.norm(inner._goal - inner.inner.data.qpos[:2]))
    np.testing.assert_array_equal(inner.inner.goal, inner._goal)  # the rendered target follows


def test_data_maze_writes_an_antmaze_file_from_a_controller_snapshot(tmp_path):
    import torch

    from genpolicy.cli import main
    from genpolicy.datagen.sac import Actor
    from genpolicy.rl.datasets import load_dataset

    assert main(["data", "maze", "antmaze-medium-play", "--out", str(tmp_path), "--no-progress"]) == 2  # no controller
    torch.manual_seed(0)
    snap = tmp_path / "step_0000001.pt"
    torch.save({"actor": Actor(29, 8, (16,)).state_dict(), "obs_dim": 29, "act_dim": 8, "hidden": (16,), "step": 1,
                "eval_return": 0.0, "env_id": "genpolicy/AntGoal-v0"}, snap)
    other = tmp_path / "hopper_step.pt"
    torch.save({**torch.load(snap), "env_id": "Hopper-v5"}, other)
    assert main(["data", "maze", "antmaze-medium-play", "--transitions", "10", "--controller", str(other), "--out",
                 str(tmp_path), "--no-progress"]) == 2  # a policy of another task: one line, nothing written
    assert not (tmp_path / "antmaze-medium-play-v0.hdf5").exists()
    assert main(["data", "maze", "antmaze-medium-play", "--transitions", "1200", "--controller", str(snap), "--out",
                 str(tmp_path), "--no-progress"]) == 0
    card = json.loads((tmp_path / "antmaze-medium-play-v0.json").read_text())
    assert card["transitions"] == 1200 and card["env_id"] == "genpolicy/antmaze-medium-v0" and card["level"] == "play"
    assert card["play_cells"] == {"targets": [[1, 6], [6, 3], [6, 5]],
                                  "starts": [[2, 2], [2, 5], [3, 2], [3, 4], [4, 4]]}
    ds = load_dataset(str(tmp_path / "antmaze-medium-play-v0.hdf5"))
    assert len(ds) == 1200 and ds.observations.shape[1] == 29
    starts = {tuple(c) for c in card["play_cells"]["starts"]}
    maze = task_maze("antmaze-medium")
    firsts = [0] + [i + 1 for i in np.nonzero(ds.timeouts | ds.terminals)[0][:-1]]
    assert all(maze.cell_of(ds.observations[i, :2]) in starts for i in firsts)
    assert card["goal_norm"] == 0.0 and "--goal-norm" not in card["command"]  # v0 trained on the vector itself
    # D4RL's driver input for a controller trained otherwise: recorded in the card and its command
    assert main(["data", "maze", "antmaze-umaze", "--transitions", "50", "--controller", str(snap), "--goal-norm",
                 "10", "--out", str(tmp_path), "--no-progress"]) == 0
    card = json.loads((tmp_path / "antmaze-umaze-v0.json").read_text())
    assert card["goal_norm"] == 10.0 and card["command"].endswith("--goal-norm 10")
    assert "direction at distance 10" in card["controller"]
    for bad in (["antmaze-umaze", "--controller", str(snap), "--goal-norm", "-1"],
                ["pointmaze-umaze", "--goal-norm", "10"]):  # one line, before any collection
        assert main(["data", "maze", *bad, "--transitions", "10", "--out", str(tmp_path / "bad"),
                     "--no-progress"]) == 2
    assert not (tmp_path / "bad").exists()


def test_the_point_collector_regenerates_the_committed_files_stream():
    """`genpolicy data maze pointmaze-umaze` (seed 0) is the command on the committed file's card: the collector's
    first 3000 steps are that file's first 3000 rows (its order of random draws is part of the files)."""
    from pathlib import Path

    from genpolicy.rl.datasets import load_dataset

    committed = load_dataset(str(Path(__file__).resolve().parents[1] / "datasets" / "pointmaze-umaze-v0.hdf5"))
    ds = collect_pointmaze("pointmaze-umaze", 3000, seed=0, progress=False)
    for key in ("observations", "actions", "rewards", "next_observations", "terminals"):
        assert np.array_equal(getattr(ds, key), getattr(committed, key)[:3000]), key
    assert np.array_equal(ds.timeouts[:-1], committed.timeouts[:2999])


def test_a_controller_snapshot_exported_as_safetensors_drives_the_same_data(tmp_path):
    """``genpolicy data actor``: the actor and its metadata in one safetensors file (no pickle); the AntMaze command
    makes the same file from it as from the ``.pt`` snapshot; no silent overwrite."""
    import torch

    from genpolicy.cli import main
    from genpolicy.datagen.sac import Actor, load_actor

    torch.manual_seed(0)
    snap = tmp_path / "step_0000001.pt"
    torch.save({"actor": Actor(29, 8, (16,)).state_dict(), "obs_dim": 29, "act_dim": 8, "hidden": (16,), "step": 1,
                "eval_return": 2.5, "env_id": "genpolicy/AntGoal-v0"}, snap)
    out = tmp_path / "ctl" / "ant.safetensors"
    assert main(["data", "actor", str(snap), "-o", str(out)]) == 0
    assert main(["data", "actor", str(snap), "-o", str(out)]) == 2  # exists: one line, untouched
    assert main(["data", "actor", str(snap), "-o", str(tmp_path / "ant.pt")]) == 2  # not .safetensors
    a, meta = load_actor(snap)
    b, meta_b = load_actor(out)
    assert {k: meta_b[k] for k in ("obs_dim", "act_dim", "step", "eval_return", "env_id")} == {
        "obs_dim": 29, "act_dim": 8, "step": 1, "eval_return": 2.5, "env_id": "genpolicy/AntGoal-v0"}
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    cards = []
    for i, ctl in enumerate((snap, out)):
        assert main(["data", "maze", "antmaze-umaze", "--transitions", "40", "--controller", str(ctl), "--out",
                     str(tmp_path / f"d{i}"), "--no-progress"]) == 0
        cards.append(json.loads((tmp_path / f"d{i}" / "antmaze-umaze-v0.json").read_text()))
    assert cards[0]["sha256"] == cards[1]["sha256"]


def test_the_controller_benchmark_states_the_speed_each_maze_needs():
    """benchmarks/research/ant_controller.py: on the U maze the start (3, 1) reaches the goal (1, 1) round the wall in
    6 cells (right twice, up twice, left twice), 24 units in the 700-step (35 s) episode: 0.69 units/s."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "research" / "ant_controller.py"
    spec = importlib.util.spec_from_file_location("ant_controller", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    need = bench.needed_speeds()
    assert need["antmaze-umaze"] == {"path_units": 24.0, "seconds": 35.0, "speed": 0.69}
    assert need["antmaze-medium"]["seconds"] == need["antmaze-large"]["seconds"] == 50.0
    assert need["antmaze-umaze"]["speed"] < need["antmaze-medium"]["speed"] < need["antmaze-large"]["speed"]
