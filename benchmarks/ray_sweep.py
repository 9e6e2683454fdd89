"""Wall time of one 12-run sweep, local backend vs Ray on this machine (issue 41's benchmark).

    python benchmarks/ray_sweep.py --out /tmp/ray-sweep [--cpus 2] [--steps 2000]

The sweep: iql and gmpo x beta in {1, 3, 8} x seeds {0, 1} on hopper-medium-v5 (12 runs, 2 shared critics), each
run at a small fixed budget (--steps critic and policy steps, 5 final evaluation episodes). The local backend runs
them one after the other in this process (torch with --cpus threads); Ray runs one task per run on a fresh local
cluster of --cpus CPUs (one thread each). Both tables are compared (same runs: same scores) and the times printed
as JSON (also written to OUT/timing.json).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/ray-sweep")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--fresh", action="store_true", help="delete OUT first")
    a = ap.parse_args()
    import torch

    from genpolicy.suite import parse_task, run_suite

    out = Path(a.out)
    if a.fresh and out.exists():
        shutil.rmtree(out)
    sets = [f"critic_steps={a.steps}", f"policy_steps={a.steps}", "eval_every=0", "final_eval_episodes=5"]
    kw = dict(algos=["iql", "gmpo"], tasks=[parse_task("hopper-medium-v5:Hopper-v5")], seeds=[0, 1],
              budget=["cpu"], sets=sets, sweep=["beta=1,3,8"], progress=False)
    times = {}
    torch.set_num_threads(a.cpus)
    t = time.perf_counter()
    run_suite(out=out / "local", **kw)
    times["local_s"] = round(time.perf_counter() - t, 1)
    import ray

    t = time.perf_counter()
    ray.init(num_cpus=a.cpus, include_dashboard=False, log_to_driver=False)
    try:
        run_suite(out=out / "ray", backend="ray", **kw)
    finally:
        ray.shutdown()
    times["ray_s"] = round(time.perf_counter() - t, 1)
    rows = {b: {(r["task"], r["algo"]): r["scores"] for r in csv.DictReader(open(out / b / "results.csv"))}
            for b in ("local", "ray")}
    times |= {"runs": 12, "critics": 2, "cpus": a.cpus, "steps": a.steps, "torch_threads_local": a.cpus,
              "same_scores": rows["local"] == rows["ray"], "speedup": round(times["local_s"] / times["ray_s"], 2)}
    (out / "timing.json").write_text(json.dumps(times, indent=1))
    print(json.dumps(times))


if __name__ == "__main__":
    main()
