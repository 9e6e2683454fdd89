"""How close the training loop's IQL critic step comes to its matrix products' floor (a benchmark, not a test).

The floor: every GEMM one IQL step makes (target twin Q, V forward and backward, V(s'), both Qs forward and
backward), each timed alone with ``torch.mm`` on tensors of its shape; their summed time is the step's lower bound
for a framework that adds nothing around them. Beside it, the critic stage's steps/s in the real loop
(``genpolicy.train.train``: batches drawn, update, metrics accumulated), eager and compiled whole.

    python benchmarks/critic_floor.py                 # hopper shapes (11-D obs, 3-D actions), batch 256, 1 thread
                                                      # 3 rounds, each ratio from numbers taken side by side
    python benchmarks/critic_floor.py --threads 2 --obs 17 --act 6
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import synthetic_data  # noqa: E402

from genpolicy.rl.algos import IQLAWRConfig, build_algorithm  # noqa: E402
from genpolicy.train import train  # noqa: E402
from genpolicy.train.run import Run  # noqa: E402


def gemm_shapes(obs: int, act: int, hidden: tuple[int, ...], batch: int) -> list[tuple[int, int, int]]:
    """(m, k, n) of every matrix product of one IQL critic step: ``(B, in) @ (in, out)`` forward; backward
    ``dW = G^T X`` per layer and ``dX = G W`` for all but the first layer."""
    def net(inp):
        dims = [inp, *hidden, 1]
        return list(zip(dims[:-1], dims[1:]))

    def fwd(layers):
        return [(batch, i, o) for i, o in layers]

    def bwd(layers):
        return [(o, batch, i) for i, o in layers] + [(batch, o, i) for i, o in layers[1:]]

    q, v = net(obs + act), net(obs)
    return fwd(q) * 2 + fwd(v) + bwd(v) + fwd(v) + (fwd(q) + bwd(q)) * 2


def floor_rates(shapes, repeats: int = 200) -> tuple[float, float]:
    """Steps/s if a step were only its GEMMs, each timed alone (median of ``repeats`` calls): as the step's shapes
    are, and with each product taken in its faster orientation (``(m, k, n)`` or its transpose ``(n, k, m)``: the
    floor of a step free to turn its products, as the compiled step turns its first layers' weight gradients)."""
    def median_time(m, k, n):
        a, b, out = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
        for _ in range(10):
            torch.mm(a, b, out=out)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            torch.mm(a, b, out=out)
            times.append(time.perf_counter() - t)
        times.sort()
        return times[len(times) // 2]

    pairs = [(median_time(m, k, n), median_time(n, k, m)) for m, k, n in shapes]
    return 1.0 / sum(t for t, _ in pairs), 1.0 / sum(min(pair) for pair in pairs)


def loop_rate(obs: int, act: int, batch: int, steps: int, compile_mode: str, block: int = 250) -> dict:
    """The critic stage's steps/s in the training loop (first step, which compiles, excluded): over the stage
    (``rate``), and over its blocks of ``block`` steps (the loop timed at each log, every ``block`` steps): the
    median block and the fastest. This machine switches between a fast and a slow state (a 256^3 product: 332 or
    590-660 us, back to back); the floor's per-product medians are taken in the fast state, the stage's rate
    averages both, the fastest block is the loop in the fast state."""
    data = synthetic_data(obs, act, n=20_000)
    cfg = IQLAWRConfig(critic_steps=steps, policy_steps=0, batch_size=batch, compile=compile_mode, log_every=block,
                       ckpt_every=10 * steps, reward_scale="none")
    torch.manual_seed(0)
    algo = build_algorithm("iql", obs, act, cfg, data.normalizer)
    stamps = []
    log = Run.log

    def timed_log(self, stage, done, *args, **kw):
        stamps.append((done, time.perf_counter()))
        return log(self, stage, done, *args, **kw)

    Run.log = timed_log
    try:
        with tempfile.TemporaryDirectory() as d:
            summary = train(algo, data, d, progress=False)
    finally:
        Run.log = log
    logged = [(n, t) for n, t in stamps if n % block == 0]
    blocks = sorted(block / (t1 - t0) for (_, t0), (_, t1) in zip(logged[1:-1], logged[2:]))  # the first: compile
    return {"rate": summary["stage_times"]["critic"]["steps_per_s"], "block_median": blocks[len(blocks) // 2],
            "block_best": blocks[-1]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--obs", type=int, default=11)
    p.add_argument("--act", type=int, default=3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3, help="floor and loop measured side by side this many times")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="write the numbers as JSON here")
    ns = p.parse_args(argv)
    torch.set_num_threads(ns.threads)
    shapes = gemm_shapes(ns.obs, ns.act, (256, 256), ns.batch)
    rounds = []
    for r in range(ns.rounds):  # this machine's speed drifts: each ratio from numbers taken back to back
        floor, best = floor_rates(shapes)
        row = {"floor": floor, "floor_best_orientation": best}
        for mode, key in (("off", "eager"), ("on", "compiled")):
            rates = loop_rate(ns.obs, ns.act, ns.batch, ns.steps, mode)
            row[key] = rates["rate"]
            row.update({f"{key}_{k}": v for k, v in rates.items() if k != "rate"})
        row = {k: round(v, 1) for k, v in row.items()}
        row.update({f"{k}_of_floor": round(row[k] / row["floor"], 3) for k in ("eager", "compiled")})
        row["compiled_of_best_orientation_floor"] = round(row["compiled"] / row["floor_best_orientation"], 3)
        for k in ("compiled_block_median", "compiled_block_best"):
            row[f"{k}_of_floor"] = round(row[k] / row["floor"], 3)
        print(json.dumps(row), flush=True)
        rounds.append(row)
    med = lambda k: sorted(x[k] for x in rounds)[len(rounds) // 2]  # noqa: E731
    res = {"threads": ns.threads, "batch": ns.batch, "gemms_per_step": len(shapes), "rounds": rounds,
           "median": {k: med(k) for k in rounds[0]}}
    print(json.dumps(res["median"], indent=1))
    if ns.out:
        Path(ns.out).write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
