"""GMPG's KL estimate at pi = mu, by training solver and steps (not a test).

GMPG's loss (Eq 8) has log pi(a|s) from the sampling solve (noise -> action, instantaneous change of variables) and
log mu(a|s) from the solve back (action -> noise). With pi = mu the KL is exactly 0, so the estimate's mean there is
the bias of the discretization alone: the amount a policy can gain by exploiting it. This prints that mean (nats per
action dimension, +- s.e. over rows) for a run's trained behaviour model on dataset states, with the model
evaluations per row and solve (the cost) beside it.

    python benchmarks/gmpg_kl_bias.py runs/suite-six/walker2d-medium-v5/gmpg-c100k/seed-0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: (solver, steps): network evaluations per step are 1 (euler), 2 (midpoint, heun), 4 (rk4)
GRID = [("euler", 16), ("midpoint", 8), ("heun", 8), ("rk4", 4), ("rk4", 8), ("midpoint", 16), ("midpoint", 32),
        ("rk4", 16)]
EVALS = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a GMPG run folder (its checkpoint.pt holds the behaviour model)")
    p.add_argument("--rows", type=int, default=512, help="dataset states (one action each)")
    ns = p.parse_args(argv)

    import yaml

    from genpolicy.policy import load_policy
    from genpolicy.rl.algos.gmpg import gmpg_terms
    from genpolicy.rl.data import OfflineData
    from genpolicy.rl.datasets import load_dataset

    run = Path(ns.run)
    info = yaml.safe_load((run / "config.yaml").read_text())
    algo = load_policy(run / "checkpoint.pt")
    if algo.name != "gmpg":
        raise SystemExit(f"{run} holds a {algo.name!r} run, not gmpg")
    mu = algo.behaviour.requires_grad_(False)
    data = OfflineData(load_dataset(info["dataset"]), reward_scale="none", normalize_obs=True)
    obs = data.sample(ns.rows, torch.Generator().manual_seed(0)).obs
    print(f"{run}: KL(pi || mu) estimate at pi = mu, {ns.rows} states of {info['dataset']}, "
          f"act_dim {algo.act_dim}")
    print("| solver | T | evaluations per solve | KL estimate per dim | s.e. | seconds |")
    print("|---|---|---|---|---|---|")
    for solver, steps in GRID:
        torch.manual_seed(1)
        t0 = time.perf_counter()
        m = gmpg_terms(mu, mu, lambda c, a: a.sum(-1) * 0, obs, 1.0, solver=solver, steps=steps, divergence="exact")
        kl = m["kl"].detach() / algo.act_dim
        print(f"| {solver} | {steps} | {EVALS[solver] * steps} | {kl.mean():+.4f} | {kl.std() / len(kl) ** 0.5:.4f} "
              f"| {time.perf_counter() - t0:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
