"""Maze datasets on the single-task mazes of :mod:`genpolicy.rl.navigation`: the point mass (D4RL's maze2d recipe,
here) and the ant (D4RL's AntMaze recipe, :mod:`.antmaze`).

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

from ..rl.navigation import (CONTROLLER_GOAL_NORM, EPISODE_STEPS, LAYOUTS, MAZE_TASKS, ROBOTICS_IDS, SUCCESS_RADIUS,
                             robotics_gym, robotics_map, task_maze)
from ..rl.transitions import TransitionDataset
from .antmaze import ANT_DATASETS, ANT_SIZES, FALLEN_STEPS, collect_antmaze
from .sac import load_actor

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
        seed = int(rng.integers(2**31))  # drawn before the cell: the committed files' order of draws
        o, _ = env.reset(seed=seed, options={"reset_cell": np.array(cells[rng.integers(len(cells))])})
        return o["observation"].astype(np.float32)

    steps = []
    obs, t, target = start(), 0, cells[rng.integers(len(cells))]
    for _ in tqdm(range(transitions), desc=f"waypoint controller {task}", disable=not progress, mininterval=1.0):
        xy, vel = obs[:2].astype(np.float64), obs[2:].astype(np.float64)
        here = maze.cell_of(xy)
        if np.linalg.norm(xy - maze.xy(target)) <= SUCCESS_RADIUS:
            target = cells[rng.integers(len(cells))]
        key = (here, target)
        if key not in hop:
            hop[key] = maze.next_waypoint(here, target) if maze.contains(here) else target
        act = P_GAIN * (maze.xy(hop[key]) - xy) + D_GAIN * vel + noise * rng.standard_normal(2)
        act = np.clip(act, -1.0, 1.0).astype(np.float32)
        o, _, _, _, _ = env.step(act)
        nobs = o["observation"].astype(np.float32)
        reward = float(np.linalg.norm(nobs[:2] - goal_xy) <= SUCCESS_RADIUS)
        t += 1
        timeout = t >= horizon and not reward
        steps.append((obs, act, reward, nobs, bool(reward), timeout))
        if reward or timeout:
            obs, t = start(), 0
        else:
            obs = nobs
    env.close()
    return TransitionDataset.from_stream(steps, f"genpolicy data maze {task}")


def make_maze_dataset(task: str, out: str | Path = "datasets", transitions: int | None = None, seed: int = 0,
                      noise: float | None = None, progress: bool = True, controller: str | Path | None = None,
                      goal_norm: float | None = None) -> dict:
    """Collect, save ``OUT/TASK-v0.hdf5`` and its data card; returns the card. ``task``: a ``pointmaze-*`` task or
    one of D4RL's six AntMaze datasets (``antmaze-medium-play`` ...: :mod:`.antmaze`), which needs ``controller``,
    a policy snapshot of the goal-reaching ant (``genpolicy data behaviour ant-goal``). ``noise``: action noise std
    (default 0.5 for the point, D4RL's ``--noisy``; 0 for the ant, whose SAC policy samples its actions).
    ``goal_norm``: the ant is shown each waypoint as its direction at this distance (0: the vector itself; default:
    as its arena showed goals in training, :data:`~genpolicy.rl.navigation.CONTROLLER_GOAL_NORM`)."""
    from .make import actor_policy, data_card
    from .rollout import save_d4rl_hdf5

    ant = task in ANT_DATASETS
    points = sorted(t for t, (kind, _) in MAZE_TASKS.items() if kind == "point")
    if not ant and task not in points:
        raise ValueError(f"unknown maze dataset {task!r}; known: {points + sorted(ANT_DATASETS)}")
    if ant and controller is None:
        raise ValueError(f"{task}: give the goal-reaching ant's policy (--controller AGENT/policies/step_N.pt, "
                         f"from 'genpolicy data behaviour ant-goal')")
    if ant and not Path(controller).is_file():
        raise FileNotFoundError(f"{task}: no controller at {controller}")
    if goal_norm is not None and (not ant or goal_norm < 0):
        raise ValueError(f"{task}: --goal-norm is a distance >= 0 at which the ant controller sees its waypoint"
                         + ("" if ant else " (AntMaze datasets only)"))
    env_task, variant = ANT_DATASETS[task] if ant else (task, None)
    maze_name = MAZE_TASKS[env_task][1]
    n = transitions or (ANT_SIZES if ant else POINT_SIZES)[maze_name]
    default_noise = 0.0 if ant else 0.5
    noise = default_noise if noise is None else noise
    t0 = time.perf_counter()
    if ant:
        actor, snapshot = load_actor(controller)
        arena = snapshot.get("env_id", "genpolicy/AntGoal-v0")
        if arena not in CONTROLLER_GOAL_NORM:
            raise ValueError(f"{controller}: a policy of {arena}, not of an ant controller's arena "
                             f"({', '.join(CONTROLLER_GOAL_NORM)})")
        trained_norm = CONTROLLER_GOAL_NORM[arena]
        goal_norm = trained_norm if goal_norm is None else goal_norm
        ds = collect_antmaze(env_task, variant, n, actor_policy(actor, seed), seed, noise, progress, goal_norm)
    else:
        ds = collect_pointmaze(task, n, seed, noise, progress)
    ds.validate()
    path = Path(out) / f"{task}-v0.hdf5"
    sha = save_d4rl_hdf5(ds, path)
    goals = int(ds.rewards.sum())
    command = (f"genpolicy data maze {task} --seed {seed}" + (f" --transitions {n}" if transitions else "")
               + (f" --noise {noise:g}" if noise != default_noise else "")
               + (f" --controller {controller}" if ant else "")
               + (f" --goal-norm {goal_norm:g}" if ant and goal_norm != trained_norm else ""))
    if ant:
        extra = {"controller": f"the goal-reaching ant's SAC policy {controller}, its actions sampled, action noise "
                 f"std {noise:g}, trained in {arena}, driven by BFS waypoints (the next cell's centre as its goal"
                 + (f", shown as its direction at distance {goal_norm:g})" if goal_norm else ")"),
                 "goal_norm": goal_norm, "variant": variant, "play_cells": ds.metadata["play_cells"],
                 "walk": ds.metadata["walk"],
                 "differs_from_d4rl": "a tenth of D4RL's transitions; a step reaching the evaluation goal is terminal "
                 f"and the next starts a new episode; a fallen ant's episode ends (timeout) {FALLEN_STEPS} steps after "
                 "the fall where D4RL's runs to its horizon; our SAC controller and Gymnasium-Robotics' AntMaze "
                 "(mujoco 3+) instead of D4RL's; play cells by a written rule instead of by hand"}
    else:
        extra = {"controller": f"BFS waypoints, PD gains {P_GAIN:g}/{D_GAIN:g}, action noise std {noise:g}, goal cells "
                 f"uniform, new goal within {SUCCESS_RADIUS} of its centre",
                 "differs_from_d4rl": "a tenth of D4RL's transitions; a step reaching the evaluation goal is terminal "
                 "and the next starts a new episode (D4RL's maze2d is one stream without terminals); "
                 "Gymnasium-Robotics' PointMaze physics (mujoco 3+) instead of D4RL's mujoco-py point"}
    extra = {"seed": seed, "command": command, **extra, "evaluation_goal_cell": list(task_maze(env_task).goal),
             "evaluation_goal_reached": goals, "seconds": round(time.perf_counter() - t0, 1)}
    card = data_card(ds, f"genpolicy/{env_task}-v0", variant or "waypoint", path, sha, extra)
    path.with_suffix(".json").write_text(json.dumps(card, indent=2))
    return card
