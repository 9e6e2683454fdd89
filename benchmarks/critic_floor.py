"""How close the training loop's IQL critic step comes to its matrix products' floor (a benchmark, not a test).

The floor: every GEMM one IQL step makes (target twin Q, V forward and backward, V(s'), both Qs forward and
backward), each timed alone with ``torch.mm`` on tensors of its shape; their summed time is the step's lower bound
for a framework that adds nothing around them. Beside it, the critic stage's steps/s in the real loop
(``genpolicy.train.train``: batches drawn, update, metrics accumulated), eager and compiled whole.

    python benchmarks/critic_floor.py                 # hopper shapes (11-D obs, 3-D actions), batch 256, 1 thread
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


def floor_rate(shapes, repeats: int = 200) -> float:
    """Steps/s if a step were only its GEMMs, each timed alone (median of ``repeats`` calls)."""
    total = 0.0
    for m, k, n in shapes:
        a, b, out = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
        for _ in range(10):
            torch.mm(a, b, out=out)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            torch.mm(a, b, out=out)
            times.append(time.perf_counter() - t)
        times.sort()
        total += times[len(times) // 2]
    return 1.0 / total


def loop_rate(obs: int, act: int, batch: int, steps: int, compile_mode: str) -> float:
    """The critic stage's steps/s in the training loop (first step, which compiles, excluded)."""
    data = synthetic_data(obs, act, n=20_000)
    cfg = IQLAWRConfig(critic_steps=steps, policy_steps=0, batch_size=batch, compile=compile_mode, log_every=1000,
                       ckpt_every=10 * steps, reward_scale="none")
    torch.manual_seed(0)
    algo = build_algorithm("iql", obs, act, cfg, data.normalizer)
    with tempfile.TemporaryDirectory() as d:
        summary = train(algo, data, d, progress=False)
    return summary["stage_times"]["critic"]["steps_per_s"]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--obs", type=int, default=11)
    p.add_argument("--act", type=int, default=3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="write the numbers as JSON here")
    ns = p.parse_args(argv)
    torch.set_num_threads(ns.threads)
    shapes = gemm_shapes(ns.obs, ns.act, (256, 256), ns.batch)
    floor = floor_rate(shapes)
    res = {"threads": ns.threads, "batch": ns.batch, "gemms_per_step": len(shapes), "floor_steps_per_s": round(floor, 1)}
    for mode in ("off", "on"):
        rate = loop_rate(ns.obs, ns.act, ns.batch, ns.steps, mode)
        res[f"loop_{'eager' if mode == 'off' else 'compiled'}_steps_per_s"] = rate
        res[f"{'eager' if mode == 'off' else 'compiled'}_of_floor"] = round(rate / floor, 3)
    print(json.dumps(res, indent=1))
    if ns.out:
        Path(ns.out).write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
