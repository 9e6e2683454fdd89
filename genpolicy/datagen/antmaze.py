"""AntMaze datasets, D4RL's recipe: a goal-reaching ant driven through the maze by waypoints.

    genpolicy data maze antmaze-medium-play --controller AGENT/policies/step_1000000.pt

The controller is a policy of ``genpolicy/AntGoal-v0`` (our SAC: ``genpolicy data behaviour ant-goal``): it sees the
ant's 27-D state and the vector from the ant to its goal. Here its goal is the centre of the next cell on a
breadth-first shortest path (:meth:`~genpolicy.rl.mazes.Maze.next_waypoint`) to the commanded target cell, so it
walks the maze cell by cell; a new target is drawn when the ant comes within :data:`ARRIVAL` of the target's centre.
D4RL's variants set where episodes start and which targets are commanded:

- ``umaze``: D4RL's fixed start cell, the evaluation goal as the only target;
- ``*-diverse``: starts and targets drawn uniformly among the free cells;
- ``*-play``: targets drawn among hand-picked cells and starts among a different hand-picked set. D4RL hand-picked
  its cells; here the rule is written down so that it is reproducible: the targets are the ends of the maze's
  branches as walked from D4RL's start cell (cells no neighbour of which is farther from it, by breadth-first
  steps: 3 in medium, 4 in large), the starts its junctions (cells with three or more free neighbours: 5 and 7).

The files follow the single-task tasks of :mod:`genpolicy.rl.navigation`: observation ``[x, y, the ant's 27-D
state]``, reward 1 at the step the ant comes within 0.5 of the evaluation goal, and that step is terminal (the
evaluation episode ends there; D4RL's files have no terminals); episodes of the task's length end in a timeout, or
earlier, also as a timeout, :data:`FALLEN_STEPS` steps after the ant falls (torso outside 0.2 <= z <= 1.0). Those
steps on the ground are kept on purpose: an evaluation episode goes on after a fall (as D4RL's) and a fallen ant does
not reach the goal, so the data show what a fall costs. Ending the episode at the fall (as these files first did)
left the fallen state only as a truncated episode's last next observation, valued by extrapolation from the upright
states around it: falling looked free, and the critic-weighted actors fell (AntMaze umaze, IQL's actor: 3 of 6
episodes down against bc's 1). With the steps kept, a 100k-step IQL critic still values the first fallen state as the
step before it (docs/research/2026-12-07-antmaze-rows.md).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..rl.mazes import Maze
from ..rl.navigation import (EPISODE_STEPS, LAYOUTS, MAZE_TASKS, ROBOTICS_IDS, STARTS, SUCCESS_RADIUS, robotics_gym,
                             ant_fallen, robotics_map, shown_goal, task_maze)
from ..rl.transitions import TransitionDataset

__all__ = ["ANT_DATASETS", "ANT_SIZES", "ARRIVAL", "FALLEN_STEPS", "play_cells", "collect_antmaze"]

#: D4RL's six AntMaze datasets: name -> (task, variant)
ANT_DATASETS = {"antmaze-umaze": ("antmaze-umaze", "umaze"), "antmaze-umaze-diverse": ("antmaze-umaze", "diverse"),
                "antmaze-medium-play": ("antmaze-medium", "play"),
                "antmaze-medium-diverse": ("antmaze-medium", "diverse"),
                "antmaze-large-play": ("antmaze-large", "play"), "antmaze-large-diverse": ("antmaze-large", "diverse")}
#: a tenth of D4RL's million transitions per file
ANT_SIZES = {"umaze": 100_000, "medium": 100_000, "large": 100_000}
#: within this of the target cell's centre, a new target is drawn (a quarter of the ant's 4-unit cell)
ARRIVAL = 1.0
#: steps recorded after a fall before the episode ends (5 s of the ant on the ground, a return of -63 at r - 1 and
#: gamma 0.99 before the timeout's bootstrap; few enough to keep the files about walking; D4RL runs to the horizon)
FALLEN_STEPS = 100

Controller = Callable[[np.ndarray], np.ndarray]


def play_cells(maze: Maze, start: tuple[int, int]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(targets, starts) of a ``play`` dataset: the branch ends of ``maze`` seen from ``start`` and its junctions
    (see the module)."""
    dist = maze.distances(start)
    targets = [c for c in maze.cells if c in dist and all(dist[n] <= dist[c] for n in maze.neighbours(c))]
    starts = [c for c in maze.cells if len(maze.neighbours(c)) >= 3]
    if not starts:
        raise ValueError("this maze has no junctions: no play variant (D4RL has none for the U maze)")
    return targets, starts


def collect_antmaze(task: str, variant: str, transitions: int, controller: Controller, seed: int = 0,
                    noise: float = 0.0, progress: bool = True, goal_norm: float = 0.0) -> TransitionDataset:
    """``transitions`` steps of ``controller`` driven by waypoints through ``task`` (``antmaze-umaze`` ...) in
    D4RL's ``variant`` (``umaze``, ``diverse`` or ``play``); ``noise``: std of Gaussian noise added to its actions
    (clipped to the action box); ``goal_norm``: how the controller was shown its goal in training
    (:data:`~genpolicy.rl.navigation.CONTROLLER_GOAL_NORM`). A ``play`` dataset's cells are in its
    ``metadata["play_cells"]``; how well it walked in ``metadata["walk"]``: arrivals at commanded targets (each
    counted once, not for every step spent there), episodes in which the ant fell (each then ends
    :data:`FALLEN_STEPS` steps later, or at its horizon), and the share of the maze's free cells the ant entered."""
    from tqdm.auto import tqdm

    kind, maze_name = MAZE_TASKS[task]
    if kind != "ant":
        raise ValueError(f"{task}: collect_antmaze drives the ant; point-mass data comes from collect_pointmaze")
    if variant not in ("umaze", "diverse", "play") or (variant == "umaze") != (maze_name == "umaze" and
                                                                              variant != "diverse"):
        raise ValueError(f"{task}: no {variant!r} variant (D4RL: umaze and diverse on the U maze, play and "
                         f"diverse on medium and large)")
    maze = task_maze(task)
    if variant == "umaze":
        targets, starts = [maze.goal], [STARTS[maze_name]]
    elif variant == "diverse":
        targets = starts = maze.cells
    else:
        targets, starts = play_cells(maze, STARTS[maze_name])
    gym = robotics_gym()
    env = gym.make(ROBOTICS_IDS["ant"], maze_map=robotics_map(LAYOUTS[maze_name]), continuing_task=True,
                   reset_target=False, include_cfrc_ext_in_observation=False, max_episode_steps=10**9).unwrapped
    low, high = env.action_space.low, env.action_space.high
    rng = np.random.default_rng(seed)
    goal_xy, horizon = maze.xy(maze.goal), EPISODE_STEPS["ant"][maze_name]
    hop: dict = {}  # (cell, target) -> next waypoint, cached

    def pick(cells):
        return cells[rng.integers(len(cells))]

    def start():
        o, _ = env.reset(seed=int(rng.integers(2**31)), options={"reset_cell": np.array(pick(starts))})
        return o

    steps = []
    flat = lambda o: np.concatenate([o["achieved_goal"], o["observation"]]).astype(np.float32)  # noqa: E731
    o, t, target = start(), 0, pick(targets)
    reached, falls, visited, was_near, fell_at = 0, 0, set(), False, None
    for _ in tqdm(range(transitions), desc=f"ant controller {task} {variant}", disable=not progress,
                  mininterval=1.0):
        xy = o["achieved_goal"].astype(np.float64)
        if np.linalg.norm(xy - maze.xy(target)) <= ARRIVAL:  # arrived (counted once, not while it stays)
            reached += not was_near
            old, target = target, pick(targets)
            was_near = target == old
        else:
            was_near = False
        here = maze.cell_of(xy)
        visited.add(here)
        key = (here, target)
        if key not in hop:
            hop[key] = maze.next_waypoint(here, target) if maze.contains(here) else target
        seen = np.concatenate([o["observation"], shown_goal(maze.xy(hop[key]) - xy, goal_norm)]).astype(np.float32)
        act = np.asarray(controller(seen), dtype=np.float64) + noise * rng.standard_normal(low.shape)
        act = np.clip(act, low, high).astype(np.float32)
        nxt, _, _, _, _ = env.step(act)
        reward = float(np.linalg.norm(nxt["achieved_goal"] - goal_xy) <= SUCCESS_RADIUS)
        t += 1
        if fell_at is None and not reward and ant_fallen(env.ant_env):
            fell_at, falls = t, falls + 1
        timeout = not reward and (t >= horizon or (fell_at is not None and t - fell_at >= FALLEN_STEPS))
        steps.append((flat(o), act, reward, flat(nxt), bool(reward), timeout))
        if reward or timeout:
            o, t, was_near, fell_at = start(), 0, False, None
        else:
            o = nxt
    env.close()
    ds = TransitionDataset.from_stream(steps, f"genpolicy data maze {task} ({variant})")
    ds.metadata["play_cells"] = ({"targets": [list(c) for c in targets], "starts": [list(c) for c in starts]}
                                 if variant == "play" else None)
    ds.metadata["walk"] = {"targets_reached": reached, "episodes_with_falls": int(falls),
                           "free_cells_entered": round(len(visited & set(maze.cells)) / len(maze.cells), 3)}
    return ds
