"""Before and after: the speed
CPU rows measured for two checkouts of this repository, each in its own subprocess, the two alternating round by
round so that both see the same machine load; the median over rounds. Each checkout eager and compiled whole
(``compile=on``), where it has that.

    git worktree add /tmp/before d46d65b~1      # the library before the speed work
    python benchmarks/before_after.py --before /tmp/before --after . --threads 1 --rounds 3

Rows (walker2d shapes: 17-D observations, 6-D actions; batches drawn from 100k random transitions by the library's
own sampler): the IQL critic at batch 256 and 4096, GMPO's policy stage with the mlp 3x256 at batch 256 and the
paper's U-Net at batch 4096, and ``act`` on one observation (U-Net, 16 Euler steps). "eager" is each checkout's
``Stage.update``; "compiled" (a checkout that has it) is what its loop runs with ``compile=on``. Only the public API
that both checkouts share is used here (``build_algorithm``, ``OfflineData.sample``, ``Algorithm.stages``/``act``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROWS = [("IQL critic (twin Q + V, 2x256), batch 256", "mlp", "critic", 256, 300),
        ("IQL critic, batch 4096", "mlp", "critic", 4096, 20),
        ("GMPO policy, mlp 3x256, batch 256", "mlp", "policy", 256, 300),
        ("GMPO policy, unet 512-256-128, batch 4096", "unet", "policy", 4096, 3)]


def measure(compiled: bool, threads: int, only: tuple = ()) -> dict:
    """One checkout's rows (run inside its subprocess, with that checkout first on sys.path)."""
    import numpy as np
    import torch

    from genpolicy.rl.algos import GMPOConfig, build_algorithm
    from genpolicy.rl.data import OfflineData
    from genpolicy.rl.datasets import TransitionDataset

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    n = 100_000
    ds = TransitionDataset(rng.normal(size=(n, 17)).astype(np.float32), rng.uniform(-1, 1, (n, 6)).astype(np.float32),
                           rng.normal(size=n).astype(np.float32), rng.normal(size=(n, 17)).astype(np.float32),
                           np.zeros(n, bool), np.arange(n) % 1000 == 999)
    data = OfflineData(ds, reward_scale="none", normalize_obs=True)
    extra = {"compile": "on"} if compiled else {}

    def cfg(net):
        hidden = {"net_hidden": (256, 256, 256)} if net == "mlp" else {}
        return GMPOConfig(net=net, critic_hidden=(256, 256), act_steps=16, **hidden, **extra)

    out = {}
    for label, net, stage_name, batch, steps in ROWS:
        if only and not any(o in label for o in only):
            continue
        torch.manual_seed(0)
        algo = build_algorithm("gmpo", 17, 6, cfg(net), data.normalizer)
        stage = next(s for s in algo.stages() if s.name == stage_name)
        if compiled:
            from genpolicy.train import stage_update

            fn = stage_update(algo, stage)
        else:
            fn = stage.update
        gen = torch.Generator().manual_seed(0)
        for _ in range(3):
            fn(data.sample(batch, generator=gen))
        t = time.perf_counter()
        for _ in range(steps):
            m = fn(data.sample(batch, generator=gen))
        float(next(iter(m.values())))
        out[label] = steps / (time.perf_counter() - t)
    if only and not any(o in "act" for o in only):
        import genpolicy

        return {"module": genpolicy.__file__, "rows": out}
    torch.manual_seed(0)
    algo = build_algorithm("gmpo", 17, 6, cfg("unet")).eval()
    obs = np.zeros((1, 17), np.float32)
    act = (lambda o: algo.act(o, compiled=True)) if compiled else algo.act
    for _ in range(3):
        act(obs)
    times = []
    for _ in range(30):
        t = time.perf_counter()
        act(obs)
        times.append(time.perf_counter() - t)
    out["act, batch 1, unet, 16 Euler steps (ms)"] = 1e3 * float(np.median(times))
    import genpolicy

    return {"module": genpolicy.__file__, "rows": out}


def _child(repo: Path, compiled: bool, threads: int, only: tuple = ()) -> dict:
    code = (f"import sys, json; sys.path.insert(0, {str(repo)!r}); sys.path.insert(1, {str(Path(__file__).parent)!r});"
            f"import before_after as b; print(json.dumps(b.measure({compiled}, {threads}, {tuple(only)!r})))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo,
                         env={"OMP_NUM_THREADS": str(threads), "PATH": "/usr/bin:/bin"})
    if res.returncode:
        raise SystemExit(f"{repo} (compiled={compiled}) failed: {res.stderr.strip().splitlines()[-1]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="checkout of the old code")
    p.add_argument("--after", default=".", help="checkout of the new code (default: this one)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="runs/before_after.json")
    p.add_argument("--only", nargs="+", default=(), metavar="TEXT",
                   help="only the rows whose label contains one of these (e.g. 'batch 256' 'mlp'; 'act' for act)")
    ns = p.parse_args(argv)
    import numpy as np

    sides = {"before (eager)": (Path(ns.before).resolve(), False), "after, eager": (Path(ns.after).resolve(), False),
             "before, compiled": (Path(ns.before).resolve(), True), "after, compiled": (Path(ns.after).resolve(), True)}
    got = {k: [] for k in sides}
    for r in range(ns.rounds):
        for name, (repo, compiled) in sides.items():
            res = _child(repo, compiled, ns.threads, tuple(ns.only))
            if not res["module"].startswith(str(repo)):
                raise SystemExit(f"{name}: imported genpolicy from {res['module']}, not from {repo}")
            got[name].append(res["rows"])
            print(f"round {r + 1}: {name}: {json.dumps({k: round(v, 2) for k, v in res['rows'].items()})}",
                  flush=True)
    rows = {}
    for name, runs in got.items():
        rows[name] = {k: round(float(np.median([x[k] for x in runs])), 2) for k in runs[0]}
    Path(ns.out).parent.mkdir(parents=True, exist_ok=True)
    Path(ns.out).write_text(json.dumps({"threads": ns.threads, "rounds": ns.rounds, "median": rows}, indent=2))
    print(f"\n{ns.threads} thread(s), median of {ns.rounds} alternating rounds (steps/s; act in ms)\n")
    print("| row | " + " | ".join(sides) + " |\n|---|" + "---|" * len(sides))
    for k in rows["before (eager)"]:
        print(f"| {k} | " + " | ".join(str(rows[s][k]) for s in sides) + " |")
    print(f"wrote {ns.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
