"""GMPO benchmark (not a test): train GMPO and the same model with beta=0 (behaviour cloning) on a dataset,
then report normalized scores, wall time, critic/policy steps/s and per-action latency.

    python benchmarks/gmpo_bench.py --dataset datasets/hopper-medium-replay-v5.hdf5 --env Hopper-v5 \
        --preset cpu --preset hopper-medium-replay [--set policy_steps=20000] [--out runs/bench]

Both runs share the seed, policy budget and network; BC differs only by beta = 0 (and skips the unused critic). Results go to
``<out>/bench.json`` and are printed as a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genpolicy.config import load_presets, resolve_config  # noqa: E402
from genpolicy.rl.algos import GMPOConfig  # noqa: E402
from genpolicy.rl.datasets import TransitionDataset, episode_returns, load_dataset  # noqa: E402
from genpolicy.rl.envs import env_family, normalized_score  # noqa: E402
from genpolicy.train import prepare_run, train  # noqa: E402


def action_latency(algo, obs_dim: int, batch: int, repeats: int = 50) -> float:
    """Median seconds per ``act`` call for a batch of raw observations."""
    obs = np.random.default_rng(0).normal(size=(batch, obs_dim)).astype(np.float32)
    for _ in range(5):
        algo.act(obs)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        algo.act(obs)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def run(cfg: GMPOConfig, ds: TransitionDataset, env: str, out: Path, label: str, dataset: str, progress: bool) -> dict:
    algo, data = prepare_run("gmpo", cfg, ds)
    t0 = time.perf_counter()
    summary = train(algo, data, out / label, env_id=env, meta={"dataset": dataset, "label": label}, progress=progress)
    algo.eval()
    return {"label": label, "beta": cfg.beta, "final_score": summary["final_score"], "best_score": summary["best_score"],
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "critic_steps_per_s": summary["stage_times"].get("critic", {}).get("steps_per_s"),
            "policy_steps_per_s": summary["stage_times"].get("policy", {}).get("steps_per_s"),
            "act_latency_ms_b1": round(1e3 * action_latency(algo, data.obs_dim, 1), 2),
            "act_latency_ms_b10": round(1e3 * action_latency(algo, data.obs_dim, 10), 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--preset", action="append", default=[])
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--out", default="runs/bench")
    p.add_argument("--skip-bc", action="store_true", help="train GMPO only")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    ns = p.parse_args(argv)
    cfg = resolve_config(GMPOConfig, ns.preset, load_presets("gmpo"), {}, ns.set)
    out = Path(ns.out)
    t0 = time.perf_counter()
    ds = load_dataset(ns.dataset)
    load_s = time.perf_counter() - t0
    rets = episode_returns(ds)
    info = {"dataset": ns.dataset, "env": ns.env, "transitions": len(ds), "episodes": len(rets),
            "data_return_mean": float(rets.mean()), "load_seconds": round(load_s, 2), "presets": ns.preset,
            "sets": ns.set, "torch_threads": torch.get_num_threads()}
    if env_family(ns.env):
        info["data_score_mean"] = float(normalized_score(ns.env, rets).mean())
    results = [run(cfg, ds, ns.env, out, "gmpo", ns.dataset, ns.progress)]
    if not ns.skip_bc:
        # beta = 0 weighs every action 1, so the critic is unused: skip its stage
        results.append(run(dataclasses.replace(cfg, beta=0.0, critic_steps=0), ds, ns.env, out, "bc", ns.dataset,
                           ns.progress))
    report = {"info": info, "config": dataclasses.asdict(cfg), "results": results,
              "total_seconds": round(time.perf_counter() - t0, 1)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(info, indent=1))
    cols = ["label", "beta", "final_score", "best_score", "wall_seconds", "critic_steps_per_s", "policy_steps_per_s",
            "act_latency_ms_b1", "act_latency_ms_b10"]
    print(" | ".join(cols))
    for r in results:
        print(" | ".join(f"{r[c]:.1f}" if isinstance(r[c], float) else str(r[c]) for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
