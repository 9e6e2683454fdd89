"""What an AntMaze IQL critic learned, and where the actors' ants go (docs/research/2026-12-07-antmaze-rows.md).

    python benchmarks/research/antmaze_critic.py --suite runs/suite-antmaze --task antmaze-umaze-v0 --seed 0 \\
        --episodes 6 --algos bc iql

Reads the suite's shared critic of (task, seed) (through its ``iql`` run) and the dataset, and prints as JSON:

- **propagation**: V against the discounted Monte Carlo return (the suite's reward scale, γ of the config) on the
  rows of episodes that end at the goal (a timeout truncates the others' returns): correlation, means, and both
  within 10 steps of the goal;
- **weights**: the advantage's mean and std, exp(β A)'s effective sample per batch and clamped share at β 1, 3, 10;
- **falls**: over the episodes that hold a fall (torso outside 0.2 <= z <= 1.0, observation index 2), V of the
  state before the fall and of the first fallen state, beside V at the last state of episodes that ran out of time
  upright;
- **episodes**: for each algorithm's final policy, ``--episodes`` seeded evaluation episodes: reached, steps, the
  step it fell (or null), where it ended.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from iql_collapse import advantage_stats, critic_folder, critic_state, emit  # noqa: E402


def mc_returns(rewards: np.ndarray, dones: np.ndarray, ends: np.ndarray, gamma: float):
    """Discounted return to the episode's end of every row (SfBC's plain returns), and whether its episode ends at a
    terminal."""
    from genpolicy.rl.algos.sfbc import planning_returns

    last = np.nonzero(ends)[0]
    end_of = np.searchsorted(last, np.arange(len(rewards)))  # each row's episode's last row (index into ``last``)
    inside = end_of < len(last)
    reached = np.zeros(len(rewards), bool)
    reached[inside] = dones[last[end_of[inside]]] > 0
    return planning_returns(rewards, ends, gamma, None), reached


def fallen(obs: np.ndarray) -> np.ndarray:
    """The ant's torso outside its healthy range (observation: x, y, then the ant's qpos[2:], z first)."""
    from genpolicy.rl.navigation import ANT_HEALTHY_Z

    low, high = ANT_HEALTHY_Z
    return (obs[:, 2] < low) | (obs[:, 2] > high)


def episodes(run: Path, env_id: str, n: int) -> list[dict]:
    from genpolicy.policy import load_policy
    from genpolicy.rl.envs import make_env
    from genpolicy.rl.navigation import ant_fallen

    policy = load_policy(run / "checkpoint.pt")
    policy.eval()
    env, out = make_env(env_id), []
    for ep in range(n):
        o, _ = env.reset(seed=1000 + ep)
        fell_at, t = None, 0
        while True:
            o, _, term, trunc, _ = env.step(np.asarray(policy.act(torch.as_tensor(o[None]))).reshape(-1))
            t += 1
            if fell_at is None and ant_fallen(env.unwrapped.inner.ant_env):
                fell_at = t
            if term or trunc:
                break
        out.append({"reached": bool(term), "steps": t, "fell_at": fell_at, "end_xy": np.round(o[:2], 2).tolist()})
    env.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", required=True)
    ap.add_argument("--task", default="antmaze-umaze-v0")
    ap.add_argument("--env", default=None, help="default: genpolicy/antmaze-<maze>-v0 of --task")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--episodes", type=int, default=0)
    ap.add_argument("--algos", nargs="*", default=[])
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    from genpolicy.train import prepare_run, run_config

    torch.set_num_threads(1)
    env_id = a.env or f"genpolicy/antmaze-{a.task.split('-')[1]}-v0"
    run = Path(a.suite) / a.task / "iql" / f"seed-{a.seed}"
    cfg = run_config(run, "iql")
    algo, data = prepare_run("iql", cfg, a.task)
    critic_dir = critic_folder(run)  # the suite's shared critic that the actor run trained on
    algo.critic.load_state_dict(critic_state(critic_dir))
    with torch.no_grad():
        v = torch.cat([algo.critic.v(data.obs[i:i + 4096]) for i in range(0, data.size, 4096)]).numpy().ravel()
    rewards, dones = data.rewards.numpy().ravel(), data.dones.numpy().ravel()
    ends = data.episode_ends.numpy().ravel() > 0
    mc, reached = mc_returns(rewards, dones, ends, cfg.gamma)
    near = reached & (mc > -10)
    # the actor run's config has critic_steps 0 (its critic is the suite's shared one): the steps are the critic's
    report = {"task": a.task, "seed": a.seed, "critic_steps": run_config(critic_dir, "iql").critic_steps,
              "propagation": {"rows": int(reached.sum()), "corr": float(np.corrcoef(v[reached], mc[reached])[0, 1]),
                              "v_mean": float(v[reached].mean()), "mc_mean": float(mc[reached].mean()),
                              "v_near_goal": float(v[near].mean()), "mc_near_goal": float(mc[near].mean())},
              "weights": {str(b): advantage_stats(algo, data, b) for b in (1.0, 3.0, 10.0)}}
    down = fallen((data.next_obs * data.normalizer.std + data.normalizer.mean).numpy())  # raw next observations
    starts = np.r_[0, np.nonzero(ends)[0][:-1] + 1]
    into_fall, upright_end = [], []  # the row whose next state is the episode's first fallen one
    for s, e in zip(starts, np.nonzero(ends)[0]):
        f = np.nonzero(down[s:e + 1])[0]
        if len(f):
            into_fall.append(s + f[0])
        elif not dones[e]:
            upright_end.append(v[e])
    with torch.no_grad():
        v_fallen = algo.critic.v(data.next_obs[into_fall]).numpy().ravel() if into_fall else np.array([np.nan])
    report["falls"] = {"episodes": len(into_fall), "v_before": float(v[into_fall].mean()) if into_fall else None,
                       "v_fallen": float(v_fallen.mean()),
                       "v_timeout_upright_end": float(np.mean(upright_end)) if upright_end else None}
    for algo_name in a.algos:
        report[f"episodes_{algo_name}"] = episodes(Path(a.suite) / a.task / algo_name / f"seed-{a.seed}", env_id,
                                                   a.episodes)
    emit(report, a.out)


if __name__ == "__main__":
    main()
