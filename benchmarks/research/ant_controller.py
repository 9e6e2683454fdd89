"""How well the AntMaze controller walks (issue 39): each snapshot of the goal-reaching ant asked to reach the
centre of a neighbouring cell, as the waypoint driver asks it (a benchmark, not a test).

    python benchmarks/research/ant_controller.py AGENT/policies/step_0300000.pt [more snapshots ...]
    python benchmarks/research/ant_controller.py AGENT/policies --every 100000 --out docs/results/ant-controller.csv

Per snapshot, ``--episodes`` episodes in the open arena of ``genpolicy/AntGoal-v0``: the ant starts at the arena's
centre cell, its goal is the centre of one of the 8 neighbouring cells (4 or 5.7 units away, the waypoint
distances of the mazes), drawn in turn; an episode succeeds when the ant comes within ``ARRIVAL`` (1.0) of the goal
(where the dataset driver draws the next target) within ``--steps`` steps. Reported: the success rate, the median
steps to arrive (successes), the fall rate (torso outside 0.2 <= z <= 1.0) and the mean speed towards the goal
(units per second over the episode), with the stochastic policy (as the datasets drive it) and its mean.

First it prints what the mazes ask: the slowest average speed along the waypoints (BFS cells x 4 units) that reaches
each AntMaze task's evaluation goal from its start within the episode (umaze 0.69, medium 0.80, large 1.12 units/s):
a controller slower than that cannot make data in which the start reaches the goal.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from genpolicy.datagen.antmaze import ARRIVAL  # noqa: E402
from genpolicy.datagen.sac import load_actor  # noqa: E402
from genpolicy.rl.navigation import (EPISODE_STEPS, OPEN_ARENA, ROBOTICS_IDS, SCALES, STARTS, ant_fallen,  # noqa: E402
                                      robotics_gym, robotics_map, shown_goal, task_maze)

#: the 8 neighbours of the arena's centre cell (row, col), in the order episodes take them
NEIGHBOURS = [(-1, 0), (0, 1), (1, 0), (0, -1), (-1, 1), (1, 1), (1, -1), (-1, -1)]
CENTRE = (4, 4)  # the middle of the 7x7 free cells (row/col 1..7 of the 9x9 map)


def walk(actor, episodes: int, steps: int, deterministic: bool, seed: int = 0, goal_norm: float = 0.0) -> dict:
    """Success rate, median steps to arrive, fall rate and mean speed towards the goal over ``episodes``.
    ``goal_norm``: > 0 shows the controller the goal's direction at this distance (D4RL's driver showed its ant
    controller the waypoint's direction at distance 10, "in-distribution values"); 0: the vector itself."""
    gym = robotics_gym()
    env = gym.make(ROBOTICS_IDS["ant"], maze_map=robotics_map(OPEN_ARENA), continuing_task=True, reset_target=False,
                   include_cfrc_ext_in_observation=False, max_episode_steps=10**9).unwrapped
    dt = env.ant_env.dt
    torch.manual_seed(seed)  # the stochastic policy's draws: each row reproducible
    arrived, falls, speeds = [], 0, []
    for ep in range(episodes):
        dr, dc = NEIGHBOURS[ep % len(NEIGHBOURS)]
        goal_cell = np.array([CENTRE[0] + dr, CENTRE[1] + dc])
        o, _ = env.reset(seed=seed + ep, options={"reset_cell": np.array(CENTRE), "goal_cell": goal_cell})
        goal = o["desired_goal"].copy()
        d0 = float(np.linalg.norm(goal - o["achieved_goal"]))
        d, t = d0, 0
        for t in range(1, steps + 1):
            rel = shown_goal(goal - o["achieved_goal"], goal_norm)
            seen = np.concatenate([o["observation"], rel]).astype(np.float32)
            with torch.no_grad():
                a, _ = actor(torch.as_tensor(seen[None]), deterministic=deterministic)
            o, _, _, _, _ = env.step(a[0].numpy())
            d = float(np.linalg.norm(goal - o["achieved_goal"]))
            if d <= ARRIVAL:
                arrived.append(t)
                break
            if ant_fallen(env.ant_env):
                falls += 1
                break
        speeds.append((d0 - d) / (t * dt))
    env.close()
    return {"success": len(arrived) / episodes, "median_steps": float(np.median(arrived)) if arrived else None,
            "falls": falls / episodes, "speed": float(np.mean(speeds))}


def needed_speeds(dt: float = 0.05) -> dict:
    """Per AntMaze task: the shortest waypoint path from D4RL's start cell to the evaluation goal (units) and the
    slowest average speed (units/s) that covers it within the task's episode (``dt``: Ant's 5 x 0.01 s a step)."""
    out = {}
    for maze, steps in EPISODE_STEPS["ant"].items():
        m = task_maze(f"antmaze-{maze}")
        units = m.distances(STARTS[maze])[m.goal] * SCALES["ant"]
        out[f"antmaze-{maze}"] = {"path_units": units, "seconds": steps * dt, "speed": round(units / (steps * dt), 2)}
    return out


def snapshots(paths: list[str], every: int) -> list[Path]:
    out = []
    for p in map(Path, paths):
        files = sorted(p.glob("step_*.pt")) if p.is_dir() else [p]
        out += [f for f in files if not every or int(f.stem.split("_")[1]) % every == 0]
    if not out:
        raise SystemExit(f"no policy snapshots (step_*.pt) in {' '.join(paths)}")
    return out


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", help="policy snapshots (step_NNNNNNN.pt) or a policies/ folder")
    p.add_argument("--every", type=int, default=0, help="in a folder, only steps that are multiples of this")
    p.add_argument("--episodes", type=int, default=24)
    p.add_argument("--steps", type=int, default=300, help="steps allowed per neighbouring cell")
    p.add_argument("--goal-norms", nargs="+", type=float, default=[0.0],
                   help="show the goal's direction at these distances (0: the goal vector itself)")
    p.add_argument("--seed", type=int, default=0, help="episode i resets with seed + i (pick a snapshot on one seed, "
                   "report it on another)")
    p.add_argument("--out", help="write the rows as CSV here")
    ns = p.parse_args(argv)
    torch.set_num_threads(1)
    print("needed:", needed_speeds(), flush=True)
    rows = []
    for f in snapshots(ns.paths, ns.every):
        actor, meta = load_actor(f)
        for norm in ns.goal_norms:
            for mode in ("stochastic", "mean"):
                r = walk(actor, ns.episodes, ns.steps, deterministic=mode == "mean", seed=ns.seed, goal_norm=norm)
                rounded = {k: None if v is None else round(v, 3) for k, v in r.items()}
                row = {"step": meta["step"], "policy": mode, "goal_norm": norm, **rounded}
                print(row, flush=True)
                rows.append(row)
    if ns.out:
        with open(ns.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return rows


if __name__ == "__main__":
    main()
