"""Point-mass maze datasets (D4RL's maze2d recipe) on the single-task mazes of :mod:`genpolicy.rl.navigation`.

    genpolicy data maze pointmaze-umaze      # -> datasets/pointmaze-umaze-v0.hdf5 (+ .json data card)

A waypoint controller drives the point through the maze: a goal cell drawn at random among the free cells, the
breadth-first shortest path to it (:class:`~genpolicy.rl.mazes.Maze`), a PD controller toward the next cell's
centre (D4RL's gains: ``10 (waypoint - xy) - 1 velocity``), Gaussian action noise (D4RL's ``--noisy``: std 0.5),
actions clipped to [-1, 1], a new goal on arrival (within 0.5 of its centre). The stream is cut into episodes of the
task's length (a timeout, then a reset to a random free cell, as Gymnasium-Robotics resets with noise); the reward
is the task's (1 when the next state is within 0.5 of the fixed evaluation goal), and such a step is terminal, as the
evaluation episode ends there (D4RL's maze2d files are one continuing stream without terminals: the one
difference, so that values learnt from the data mean what the evaluation scores). Sizes: a tenth of D4RL's (100k,
200k, 400k transitions for umaze, medium, large).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..rl.navigation import (EPISODE_STEPS, LAYOUTS, MAZE_TASKS, ROBOTICS_IDS, SUCCESS_RADIUS, robotics_gym,
                             robotics_map, task_maze)
from ..rl.transitions import TransitionDataset

__all__ = ["POINT_SIZES", "collect_pointmaze", "make_maze_dataset", "P_GAIN", "D_GAIN"]

POINT_SIZES = {"umaze": 100_000, "medium": 200_000, "large": 400_000}
P_GAIN, D_GAIN = 10.0, -1.0


def collect_pointmaze(task: str, transitions: int, seed: int = 0, noise: float = 0.5,
                      progress: bool = True) -> TransitionDataset:
    """``transitions`` steps of the waypoint controller in ``task`` (a ``pointmaze-*`` name; see the module)."""
    from tqdm.auto import tqdm


    kind, maze_name = MAZE_TASKS[task]
    if kind != "point":
        raise ValueError(f"{task}: collect_pointmaze drives a point mass; AntMaze data needs the ant controller")
    gym = robotics_gym()
    maze = task_maze(task)
    env = gym.make(ROBOTICS_IDS["point"], maze_map=robotics_map(LAYOUTS[maze_name]), continuing_task=True,
                   reset_target=False, max_episode_steps=10**9).unwrapped
    rng = np.random.default_rng(seed)
    cells, goal_xy, horizon = maze.cells, maze.xy(maze.goal), EPISODE_STEPS["point"][maze_name]
    hop: dict = {}  # (cell, goal) -> next waypoint, cached

    def start():
        cell = np.array(cells[rng.integers(len(cells))])
        o, _ = env.reset(seed=int(rng.integers(2**31)), options={"reset_cell": cell})
        return o["observation"].astype(np.float32)

    cols = {k: [] for k in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")}
    obs, t, target = start(), 0, cells[rng.integers(len(cells))]
    for _ in tqdm(range(transitions), desc=f"waypoint controller {task}", disable=not progress, mininterval=1.0):
        xy, vel = obs[:2].astype(np.float64), obs[2:].astype(np.float64)
        here = maze.cell_of(xy)
        if np.linalg.norm(xy - maze.xy(target)) <= SUCCESS_RADIUS:
            target = cells[rng.integers(len(cells))]
        key = (here, target)
        if key not in hop:
            hop[key] = maze.next_waypoint(here, target) if maze.free[here] else target
        act = P_GAIN * (maze.xy(hop[key]) - xy) + D_GAIN * vel + noise * rng.standard_normal(2)
        act = np.clip(act, -1.0, 1.0).astype(np.float32)
        o, _, _, _, _ = env.step(act)
        nobs = o["observation"].astype(np.float32)
        reward = float(np.linalg.norm(nobs[:2] - goal_xy) <= SUCCESS_RADIUS)
        t += 1
        timeout = t >= horizon and not reward
        for k, v in zip(cols, (obs, act, reward, nobs, bool(reward), timeout)):
            cols[k].append(v)
        if reward or timeout:
            obs, t = start(), 0
        else:
            obs = nobs
    env.close()
    arr = {k: np.asarray(v, dtype=np.float32 if k not in ("terminals", "timeouts") else bool) for k, v in cols.items()}
    arr["timeouts"][-1] = not arr["terminals"][-1]  # the stream's last step ends its episode
    return TransitionDataset(arr["observations"], arr["actions"], arr["rewards"], arr["next_observations"],
                             arr["terminals"], arr["timeouts"], source=f"genpolicy data maze {task}")


def make_maze_dataset(task: str, out: str | Path = "datasets", transitions: int | None = None, seed: int = 0,
                      noise: float = 0.5, progress: bool = True) -> dict:
    """Collect, save ``OUT/TASK-v0.hdf5`` and its data card; returns the card."""
    from .make import data_card
    from .rollout import save_d4rl_hdf5

    if task not in MAZE_TASKS:
        raise ValueError(f"unknown maze task {task!r}; known: {sorted(MAZE_TASKS)}")
    kind, maze_name = MAZE_TASKS[task]
    if kind != "point":
        raise ValueError(f"{task}: the AntMaze datasets need the goal-reaching ant (genpolicy data behaviour ant-goal)"
                         f"; not built yet")
    n = transitions or POINT_SIZES[maze_name]
    t0 = time.perf_counter()
    ds = collect_pointmaze(task, n, seed, noise, progress)
    ds.validate()
    path = Path(out) / f"{task}-v0.hdf5"
    sha = save_d4rl_hdf5(ds, path)
    goals = int(ds.rewards.sum())
    extra = {"seed": seed, "command": f"genpolicy data maze {task} --seed {seed}" + (f" --transitions {n}"
             if transitions else ""), "controller": f"BFS waypoints, PD gains {P_GAIN:g}/{D_GAIN:g}, action noise "
             f"std {noise:g}, goal cells uniform, new goal within {SUCCESS_RADIUS} of its centre",
             "evaluation_goal_cell": list(task_maze(task).goal), "evaluation_goal_reached": goals,
             "differs_from_d4rl": "a tenth of D4RL's transitions; a step reaching the evaluation goal is terminal and "
             "the next starts a new episode (D4RL's maze2d is one stream without terminals); Gymnasium-Robotics' "
             "PointMaze physics (mujoco 3+) instead of D4RL's mujoco-py point",
             "seconds": round(time.perf_counter() - t0, 1)}
    card = data_card(ds, f"genpolicy/{task}-v0", "waypoint", path, sha, extra)
    path.with_suffix(".json").write_text(json.dumps(card, indent=2))
    return card
