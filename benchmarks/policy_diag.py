"""Why does a trained policy score what it scores? (not a test). For QGPO runs: how closely the learned energy at
t -> 0 follows its target beta Q (``QGPO.energy_fit``). For runs with an IQL critic (GMPO, GMPG, IQL, ...):

* on 4096 dataset rows: the advantage A = Q - V of the data's actions, the GMPO weights exp(beta A) clamped at
  ``weight_clamp`` (share at the clamp, effective sample size ESS/N = (sum w)^2 / (N sum w^2)), and the critic's
  advantage of the policy's own actions A(s, pi(s)) with their distance to the data's action and share at the box edge;
* a few seeded episodes: their lengths, and V(s) with A(s, pi(s)) along the first one, to see whether the critic
  recognises the states the policy ends in (V falls before a fall in the data; a V that rises while the policy falls
  means the policy left the states the critic knows).

    python benchmarks/policy_diag.py runs/suite-six/walker2d-medium-v5/gmpo/seed-0 --episodes 5
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run folder (its checkpoint.pt is read)")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--rows", type=int, default=4096)
    ns = p.parse_args(argv)

    import yaml

    from genpolicy.policy import load_policy
    from genpolicy.rl.datasets import load_dataset

    run = Path(ns.run)
    info = yaml.safe_load((run / "config.yaml").read_text())
    algo = load_policy(run / "checkpoint.pt")
    critic = getattr(algo, "critic", None)
    if algo.name != "qgpo" and (critic is None or not hasattr(critic, "v")):
        raise SystemExit(f"{run}: {algo.name} has no IQL critic to diagnose with")
    ds = load_dataset(info["dataset"])
    idx = np.random.default_rng(0).choice(len(ds.observations), min(ns.rows, len(ds.observations)), replace=False)
    obs = algo.normalizer(torch.as_tensor(ds.observations[idx]))
    if algo.name == "qgpo":
        fit = algo.energy_fit(obs)
        print(f"{run} (qgpo, beta {algo.cfg.beta:g}): over {algo.cfg.support_samples} behaviour actions per state, "
              f"Q spreads {fit['q_spread']:.3f} (std); softmax(beta Q) has entropy {fit['target_entropy']:.3f} "
              f"(uniform: {fit['ln_m']:.3f}); the energy at t = {fit['t']:g} against beta Q, both centred per state: "
              f"correlation {fit['corr']:.3f}, slope {fit['slope']:.3f} (exact: 1 and 1)")
        return 0
    act = torch.as_tensor(ds.actions[idx])
    torch.manual_seed(0)
    with torch.no_grad():
        adv = critic.advantage(obs, act)
        pi = algo.act_normalized(obs).clamp(-1, 1)
        adv_pi = critic.advantage(obs, pi)
    cfg = algo.cfg
    print(f"{run} ({algo.name})")
    print(f"data actions: A mean {adv.mean():+.3f}, std {adv.std():.3f}")
    beta = getattr(cfg, "beta", None)
    if beta:
        clamp = getattr(cfg, "weight_clamp", 100.0)
        w = torch.exp(torch.clamp(beta * adv, max=math.log(clamp)))
        print(f"weights exp({beta:g} A) clamped at {clamp:g}: at the clamp {(w >= clamp * 0.9999).float().mean():.3f}, "
              f"ESS/N {float(w.sum() ** 2 / (w ** 2).sum() / len(w)):.3f}")
    print(f"policy actions: A(s, pi(s)) mean {adv_pi.mean():+.3f}, median {adv_pi.median():+.3f}; "
          f"|a| > 0.99: {(pi.abs() > 0.99).float().mean():.3f} (data {(act.abs() > 0.99).float().mean():.3f}); "
          f"mean distance to the data's action {(pi - act).norm(dim=1).mean():.3f}")
    env_id = info.get("env")
    if not env_id:
        return 0
    import gymnasium as gym

    env = gym.make(env_id)
    lengths, trace = [], []
    for ep in range(ns.episodes):
        o, _ = env.reset(seed=ep)
        done, t = False, 0
        while not done:
            torch.manual_seed(ep * 100_000 + t)
            ot = torch.as_tensor(o, dtype=torch.float32)[None]
            a = np.asarray(algo.act(ot))[0]
            if ep == 0:
                n = algo.normalizer(ot)
                with torch.no_grad():
                    trace.append((t, float(critic.v(n)), float(critic.advantage(n, torch.as_tensor(a)[None]))))
            o, _, term, trunc, _ = env.step(a)
            done, t = term or trunc, t + 1
        lengths.append(t)
    print(f"episode lengths (seeds 0-{ns.episodes - 1}): {lengths}")
    step = max(1, len(trace) // 12)
    print("episode 0, V(s) and A(s, pi(s)) along it: " + ", ".join(f"t={t}: V {v:.1f} A {a:+.2f}"
                                                                  for t, v, a in trace[::step] + trace[-2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
