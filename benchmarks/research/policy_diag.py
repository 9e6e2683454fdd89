"""Why does a trained policy score what it scores? (not a test). For QGPO runs: how closely the learned energy at
t -> 0 follows its target beta Q (``QGPO.energy_fit``). For SfBC runs: how far apart its Q puts a state's behaviour
candidates (the spread that ``select_alpha`` multiplies) and, with ``--critic`` (an IQL critic run on the same data,
e.g. a suite's ``critic/seed-0-*``), whether that critic ranks the same candidates alike (per-state-centred
correlation) and how much of its Q SfBC's choice gains over the candidates' mean, beside its own best candidate's.
For runs with an IQL critic (GMPO, GMPG, IQL, ...):

* on 4096 dataset rows: the advantage A = Q - V of the data's actions, the GMPO weights exp(beta A) clamped at
  ``weight_clamp`` (share at the clamp, effective sample size ESS/N = (sum w)^2 / (N sum w^2)), and the critic's
  advantage of the policy's own actions A(s, pi(s)) with their distance to the data's action and share at the box edge;
* a few seeded episodes: their lengths and returns (optionally one observation entry at each end), and V(s) with
  A(s, pi(s)) along the first one, to see whether the critic recognises the states the policy ends in (V falls before
  a fall in the data; a V that rises while the policy falls means the policy left the states the critic knows).

    python benchmarks/research/policy_diag.py runs/suite-six/walker2d-medium-v5/gmpo/seed-0 --episodes 5
    python benchmarks/research/policy_diag.py runs/suite-six/halfcheetah-medium-expert-v5/gmpo/seed-2 --episodes 10 \\
        --final-obs 1
    python benchmarks/research/policy_diag.py runs/suite-six/walker2d-medium-v5/sfbc/seed-0 \\
        --critic runs/suite-six/walker2d-medium-v5/critic/seed-0-e2005988
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def iql_critic(algo):
    """The algorithm's IQL critic (one with a V), or None."""
    critic = getattr(algo, "critic", None)
    return critic if hasattr(critic, "v") else None


def sfbc_diag(run: Path, algo, obs, ref, ref_obs, ref_path) -> int:
    """SfBC's Q over ``cfg.num_samples`` behaviour candidates per state, drawn as it acts (seeded), and optionally
    the IQL critic ``ref``'s Q over the same candidates."""
    from genpolicy.rl.algos.common import candidate_actions, within_state_fit
    from genpolicy.rl.critics import q_of_each

    cfg = algo.cfg
    torch.manual_seed(0)
    with torch.no_grad():
        a = candidate_actions(algo.policy, obs, cfg.num_samples, cfg)
        q = q_of_each(algo.q_values, obs, a)
    spread = float(q.std(1).median())
    print(f"{run} (sfbc, {cfg.critic} Q): over {cfg.num_samples} behaviour candidates per state its Q spreads "
          f"{spread:.4f} (std, median over states; times select_alpha {cfg.select_alpha:g}: "
          f"{spread * cfg.select_alpha:.2f})")
    if ref is None:
        return 0
    with torch.no_grad():
        qr = q_of_each(ref.critic.q, ref_obs, a)
    corr, _ = within_state_fit(qr, q)
    rows = torch.arange(len(q))
    print(f"against {ref_path}'s Q over the same candidates, both centred per state: correlation {corr:.3f}; its Q of "
          f"the candidate SfBC's Q ranks first: {float((qr[rows, q.argmax(1)] - qr.mean(1)).mean()):+.3f} over the "
          f"candidates' mean, of its own first: {float((qr.max(1).values - qr.mean(1)).mean()):+.3f}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run folder (its checkpoint.pt is read)")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--final-obs", type=int, metavar="I", help="also print observation entry I at each episode's end, "
                   "by return (e.g. 1: HalfCheetah's torso pitch in rad, beyond +-1.6 on its back)")
    p.add_argument("--beyond", type=float, metavar="X", help="with --final-obs: also the first step at which |entry I| "
                   "exceeded X in each episode (- where it never did)")
    p.add_argument("--critic", help="SfBC runs: an IQL critic run (folder) on the same dataset to compare its Q with")
    ns = p.parse_args(argv)
    if ns.beyond is not None and ns.final_obs is None:
        p.error("--beyond needs --final-obs (the observation entry it watches)")

    import yaml

    from genpolicy.policy import load_policy
    from genpolicy.rl.datasets import load_dataset

    run = Path(ns.run)
    info = yaml.safe_load((run / "config.yaml").read_text())
    algo = load_policy(run / "checkpoint.pt")
    critic = iql_critic(algo)
    if algo.name not in ("qgpo", "sfbc") and critic is None:
        raise SystemExit(f"{run}: {algo.name} has no IQL critic to diagnose with")
    ref = None
    if ns.critic:
        ref_info = yaml.safe_load((Path(ns.critic) / "config.yaml").read_text())
        if algo.name != "sfbc" or ref_info.get("dataset") != info["dataset"]:
            raise SystemExit(f"--critic: compares an SfBC run with an IQL critic of the same dataset; got {algo.name} "
                             f"on {info['dataset']} and a critic of {ref_info.get('dataset')}")
        ref = load_policy(Path(ns.critic) / "checkpoint.pt")
        if iql_critic(ref) is None:
            raise SystemExit(f"--critic {ns.critic}: {ref.name} has no IQL critic")
    ds = load_dataset(info["dataset"])
    idx = np.random.default_rng(0).choice(len(ds.observations), min(ns.rows, len(ds.observations)), replace=False)
    raw = torch.as_tensor(ds.observations[idx])
    obs = algo.normalizer(raw)
    if algo.name == "sfbc":
        return sfbc_diag(run, algo, obs, ref, None if ref is None else ref.normalizer(raw), ns.critic)
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
    lengths, returns, trace = [], [], []
    for ep in range(ns.episodes):
        o, _ = env.reset(seed=ep)
        done, t, ret, first = False, 0, 0.0, None
        while not done:
            torch.manual_seed(ep * 100_000 + t)
            ot = torch.as_tensor(o, dtype=torch.float32)[None]
            a = np.asarray(algo.act(ot))[0]
            if ep == 0:
                n = algo.normalizer(ot)
                with torch.no_grad():
                    trace.append((t, float(critic.v(n)), float(critic.advantage(n, torch.as_tensor(a)[None]))))
            o, r, term, trunc, _ = env.step(a)
            done, t, ret = term or trunc, t + 1, ret + float(r)
            if first is None and ns.beyond is not None and abs(float(o[ns.final_obs])) > ns.beyond:
                first = t
        lengths.append(t)
        returns.append((ret, float(o[ns.final_obs]) if ns.final_obs is not None else None, first))
    print(f"episode lengths (seeds 0-{ns.episodes - 1}): {lengths}")
    returns.sort(key=lambda r: r[0])
    print(f"episode returns, sorted (a bimodal policy shows two groups): {[round(r[0]) for r in returns]}")
    if ns.final_obs is not None:
        print(f"observation {ns.final_obs} at each episode's end, in that order: {[round(r[1], 2) for r in returns]}")
    if ns.beyond is not None:
        print(f"first step with |observation {ns.final_obs}| > {ns.beyond:g}, in that order: "
              f"{[r[2] if r[2] is not None else '-' for r in returns]}")
    step = max(1, len(trace) // 12)
    print("episode 0, V(s) and A(s, pi(s)) along it: " + ", ".join(f"t={t}: V {v:.1f} A {a:+.2f}"
                                                                  for t, v, a in trace[::step] + trace[-2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
