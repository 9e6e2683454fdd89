"""Speed benchmark (not a test): steps/s of each training stage in isolation and in the full loop, act latency,
peak memory, eager vs whole-step compiled, and the paper-budget projection. Writes JSON so that two commits can be
compared side by side (run both in one session: machines are noisy).

    python benchmarks/speed.py                       # CPU: threads as torch sets them
    python benchmarks/speed.py --device cuda --out runs/speed-gpu.json
    python benchmarks/speed.py --quick               # fewer steps, skips the slow rows

Shapes are walker2d's (17-D observations, 6-D actions); batches are drawn from 100k random transitions on the
device, as the loop draws them. "compiled" is RunConfig.compile=on: torch.compile(fullgraph=True) of the stage's
functional form (CUDA graphs on a GPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]  # genpolicy, harness

from harness import sync, synthetic_data  # noqa: E402

from genpolicy.rl.algos import GMPGConfig, GMPOConfig, build_algorithm  # noqa: E402
from genpolicy.train import stage_update, train  # noqa: E402

OBS, ACT = 17, 6
PAPER_CRITIC_STEPS, PAPER_POLICY_STEPS = 122_000, 244_000  # the paper code's walker2d-medium epochs on 100k rows


def _prepared(algo_name: str, cfg, stage_name: str, data, batch: int, compiled: bool):
    """The loop's update function for one stage (compiled and warmed up when asked), or None without a
    compiled form; plus the first call's seconds (compile time)."""
    cfg = type(cfg)(**{**cfg.__dict__, "compile": "on" if compiled else "off"})
    torch.manual_seed(0)
    algo = build_algorithm(algo_name, OBS, ACT, cfg, data.normalizer).to(cfg.device)
    stage = next(s for s in algo.stages() if s.name == stage_name)
    if compiled and stage.functional is None:
        return None, None
    if stage.prepare is not None:  # as the loop does on entering the stage (GMPG: pi <- mu, chunk size)
        stage.prepare(data)
    fn = stage_update(algo, stage)
    gen = torch.Generator(device=data.device).manual_seed(0)
    t = time.perf_counter()
    fn(data.sample(batch, generator=gen))
    sync(cfg.device)
    first = time.perf_counter() - t
    for _ in range(2):
        fn(data.sample(batch, generator=gen))
    sync(cfg.device)
    return (fn, gen), first


def _time(prepared, data, batch: int, steps: int, device: str) -> float:
    fn, gen = prepared
    t = time.perf_counter()
    for _ in range(steps):
        m = fn(data.sample(batch, generator=gen))
    float(next(iter(m.values())))
    sync(device)
    return steps / (time.perf_counter() - t)


def stage_rates(algo_name: str, cfg, stage_name: str, data, batch: int, steps: int, modes: list[bool],
                rounds: int) -> dict:
    """Steps/s of one stage, eager and compiled timed in alternation ``rounds`` times (median, min, max)."""
    prepared = {c: _prepared(algo_name, cfg, stage_name, data, batch, c) for c in modes}
    if str(cfg.device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rates: dict[bool, list] = {c: [] for c in modes}
    for _ in range(rounds):
        for c in modes:
            if prepared[c][0] is not None:
                rates[c].append(_time(prepared[c][0], data, batch, steps, cfg.device))
    out = {}
    for c in modes:
        key = "compiled" if c else "eager"
        if not rates[c]:
            out[key] = {"steps_per_s": None, "note": "no compiled form (eager only)"}
            continue
        out[key] = {"steps_per_s": round(float(np.median(rates[c])), 1), "min": round(min(rates[c]), 1),
                    "max": round(max(rates[c]), 1), "first_call_s": round(prepared[c][1], 2)}
    if str(cfg.device).startswith("cuda"):
        out["peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return out


def step_mflop(algo_name: str, cfg, stage_name: str, data, batch: int) -> float:
    """Millions of floating-point operations in one eager step of the stage (forward, backward, optimizer), as
    torch's ``FlopCounterMode`` counts them (matmuls and convolutions: nearly all of an MLP's arithmetic)."""
    from torch.utils.flop_counter import FlopCounterMode

    (fn, gen), _ = _prepared(algo_name, cfg, stage_name, data, batch, False)
    with FlopCounterMode(display=False) as counter:
        fn(data.sample(batch, generator=gen))
    return round(counter.get_total_flops() / 1e6, 1)


def matmul_gflops(device: str, rows: int = 1024, width: int = 256, seconds: float = 1.0) -> float:
    """The device's rate on the layer shapes these steps are made of ((rows, width) @ (width, width), fp32): the
    ceiling a step of F MFLOP cannot beat is ``1000 * rate / F`` steps/s."""
    a, b = torch.randn(rows, width, device=device), torch.randn(width, width, device=device)
    for _ in range(20):
        a @ b
    sync(device)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        for _ in range(50):
            a @ b
        n += 50
        sync(device)
    return round(2 * rows * width * width * n / (time.perf_counter() - t) / 1e9, 1)


def act_latency(cfg, device: str, compiled: bool, repeats: int = 30) -> float:
    """Median milliseconds of one ``act`` call on one raw observation (after warm-up / compiling)."""
    torch.manual_seed(0)
    algo = build_algorithm("gmpo", OBS, ACT, cfg).to(device).eval()
    obs = np.zeros((1, OBS), np.float32)
    for _ in range(3):
        algo.act(obs, compiled=compiled)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        algo.act(obs, compiled=compiled)
        times.append(time.perf_counter() - t)
    return round(1e3 * float(np.median(times)), 2)


def full_loop(cfg, data, steps: int, compiled: bool, out: Path) -> dict:
    cfg = type(cfg)(**{**cfg.__dict__, "compile": "on" if compiled else "off", "critic_steps": steps,
                       "policy_steps": steps, "log_every": 100, "ckpt_every": 10**9})
    torch.manual_seed(0)
    algo = build_algorithm("gmpo", OBS, ACT, cfg, data.normalizer).to(cfg.device)
    s = train(algo, data, out / ("compiled" if compiled else "eager"), progress=False)
    return {k: {"steps_per_s": v["steps_per_s"], "first_step_s": v["first_step_seconds"]}
            for k, v in s["stage_times"].items()}


def _seed_models(stage: str, n: int, device: str):
    """N single models' update functions and the stacked model of the same N (genpolicy.rl.stacking) for ``stage``:
    ``critic`` (IQL, 2x256), ``policy`` (GMPO's awr policy stage, mlp 3x256), ``policy-unet`` (the paper's
    U-Net 512-256-128), ``iql-actor`` (IQL's Gaussian actor, 2x256, weighted by its critic) or ``td3bc`` (TD3+BC's
    step, 2x256)."""
    from genpolicy.rl.algos import IQLAWRConfig
    from genpolicy.rl.algos.td3bc import TD3BCConfig
    from genpolicy.rl.stacking import StackedStage

    def cfg(s):
        if stage in ("critic", "iql-actor"):
            return "iql", IQLAWRConfig(device=device, critic_hidden=(256, 256), seed=s)
        if stage == "td3bc":
            return "td3bc", TD3BCConfig(device=device, seed=s)
        net = dict(net="unet", net_hidden=(512, 256, 128)) if stage == "policy-unet" else dict(
            net="mlp", net_hidden=(256, 256, 256))
        return "gmpo", GMPOConfig(device=device, critic_hidden=(256, 256), beta=8.0, seed=s, **net)

    algos = []
    for s in range(n):
        torch.manual_seed(s)
        name, c = cfg(s)
        algos.append(build_algorithm(name, OBS, ACT, c).to(device))
    si = {"critic": 0, "td3bc": 0}.get(stage, 1)
    return [a.stages()[si].update for a in algos], StackedStage(algos, si).to(device)


def seed_scaling(data, device: str, batch: int, steps: int, stage: str = "critic", counts=(1, 4, 8)) -> dict:
    """Steps/s of N seeds' ``stage`` trained as one stacked model against N separate models stepped one after another
    in the same process: seed-steps/s for each N and the speed-up of stacking."""
    from genpolicy.rl.stacking import stack_batches

    out = {}
    for n in counts:
        singles, stack = _seed_models(stage, n, device)
        gens = [torch.Generator(device=device).manual_seed(s) for s in range(n)]
        noise = [torch.Generator(device=device).manual_seed(100 + s) for s in range(n)]
        rates = {"stacked": [], "separate": []}
        for _ in range(2):  # alternate, so both see the same machine load
            for _ in range(max(3, steps // 10)):  # warm-up
                stack.update(stack_batches([data.sample(batch, generator=g) for g in gens]), noise)
            sync(device)
            t = time.perf_counter()
            for _ in range(steps):
                m = stack.update(stack_batches([data.sample(batch, generator=g) for g in gens]), noise)
            float(next(iter(m.values()))[0])
            sync(device)
            rates["stacked"].append(n * steps / (time.perf_counter() - t))
            t = time.perf_counter()
            for _ in range(steps):
                for update, g in zip(singles, gens):
                    m = update(data.sample(batch, generator=g))
            float(next(iter(m.values())))
            sync(device)
            rates["separate"].append(n * steps / (time.perf_counter() - t))
        st, sep = max(rates["stacked"]), max(rates["separate"])
        out[str(n)] = {"stacked_seed_steps_per_s": round(st, 1), "separate_seed_steps_per_s": round(sep, 1),
                       "speedup": round(st / sep, 2)}
        print(json.dumps({"stage": stage, "seeds": n, "batch": batch, **out[str(n)]}), flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--compile", choices=["off", "on", "both"], default="both")
    p.add_argument("--quick", action="store_true", help="fewer steps; skip the unet batch-4096 and GMPG rows on CPU")
    p.add_argument("--rounds", type=int, default=3, help="alternating eager/compiled timing rounds per row")
    p.add_argument("--out", default="runs/speed.json")
    p.add_argument("--only", nargs="+", default=None, metavar="WORD",
                   help="measure only the stage rows whose name contains one of these words (e.g. critic mlp); "
                        "skips the act, full-loop and seed rows")
    ns = p.parse_args(argv)
    if ns.threads:
        torch.set_num_threads(ns.threads)
    dev = ns.device
    cpu = not dev.startswith("cuda")
    data = synthetic_data(OBS, ACT, dev)
    n = 20 if ns.quick else 100
    modes = {"off": [False], "on": [True], "both": [False, True]}[ns.compile]
    base = dict(device=dev, critic_hidden=(256, 256))
    mlp = GMPOConfig(**base, net="mlp", net_hidden=(256, 256, 256))
    unet = GMPOConfig(**base, net="unet")
    batched = GMPOConfig(**base, net="mlp", net_hidden=(256, 256, 256), critic_batched=True)
    mlp_bf16, unet_bf16 = (dataclasses.replace(c, policy_precision="bf16") for c in (mlp, unet))
    rows = [("IQL critic (twin Q + V, 2x256), batch 256", "gmpo", mlp, "critic", 256, n * 3),
            ("IQL critic, batch 4096", "gmpo", mlp, "critic", 4096, n),
            ("IQL critic, batched twin Q, batch 256", "gmpo", batched, "critic", 256, n * 3),
            ("IQL critic, batched twin Q, batch 4096", "gmpo", batched, "critic", 4096, n),
            ("GMPO policy, unet 512-256-128, batch 4096", "gmpo", unet, "policy", 4096, max(3, n // 10 if cpu else n)),
            ("GMPO policy, unet 512-256-128, batch 4096, bf16", "gmpo", unet_bf16, "policy", 4096,
             max(3, n // 10 if cpu else n)),
            ("GMPO policy, mlp 3x256, batch 256", "gmpo", mlp, "policy", 256, n * 3),
            # the recipe's shape (1024 rows per policy step), in fp32 and with the policy network in bfloat16
            ("GMPO policy, mlp 3x256, batch 1024", "gmpo", mlp, "policy", 1024, n),
            ("GMPO policy, mlp 3x256, batch 1024, bf16", "gmpo", mlp_bf16, "policy", 1024, n),
            # on a CPU the cpu preset's shape (T=8, 128 states): compiling T=32 takes ~13 minutes there
            (f"GMPG step, midpoint T={8 if cpu else 32}, exact divergence, batch {128 if cpu else 4096}", "gmpg",
             GMPGConfig(**base, net="mlp", net_hidden=(256, 256, 256), train_steps=8 if cpu else 32, chunk_size=4096),
             "policy", 128 if cpu else 4096, 10 if cpu else 20)]
    if ns.quick and cpu:
        rows = [r for r in rows if "unet" not in r[0] and "GMPG" not in r[0]]
    if ns.only:
        rows = [r for r in rows if any(w in r[0] for w in ns.only)]
    results = {"device": torch.cuda.get_device_name() if not cpu else platform.processor() or platform.machine(),
               "torch": torch.__version__, "threads": torch.get_num_threads(), "rows": [],
               "matmul_gflops_1024x256x256": matmul_gflops(dev)}
    out = Path(ns.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():  # after every row: a run stopped by a time limit keeps what it measured
        out.write_text(json.dumps(results, indent=2))

    def measure(label, algo, cfg, stage, batch, steps):
        row = {"step": label, "batch": batch, **stage_rates(algo, cfg, stage, data, batch, steps, modes, ns.rounds),
               "mflop_per_step": step_mflop(algo, cfg, stage, data, batch)}
        print(json.dumps(row), flush=True)
        results["rows"].append(row)
        save()

    gmpg_rows = [r for r in rows if r[1] == "gmpg"]  # last: compiling GMPG's unrolled solves takes minutes
    for r in rows:
        if r[1] != "gmpg":
            measure(*r)
    if not ns.only:  # act latency, the full loop, the projection, seed scaling
        act_cfg = GMPOConfig(**base, net="unet", act_steps=16)
        results["act_ms_batch1_unet_16_euler"] = {("compiled" if c else "eager"): act_latency(act_cfg, dev, c)
                                                  for c in modes}
        results["full_loop_steps_per_s"] = {("compiled" if c else "eager"): full_loop(mlp, data, n * 10, c,
                                                                                       out.parent / "speed_runs")
                                            for c in modes}
        save()
        by = {r["step"]: r for r in results["rows"]}
        proj = {}
        for mode in ("eager", "compiled"):
            c = by["IQL critic, batch 4096"].get(mode, {}).get("steps_per_s")
            u = by.get("GMPO policy, unet 512-256-128, batch 4096", {}).get(mode, {}).get("steps_per_s")
            if c and u:
                proj[mode] = round((PAPER_CRITIC_STEPS / c + PAPER_POLICY_STEPS / u) / 60, 1)
        results["paper_budget_minutes"] = proj
        results["vectorized_seeds_iql_critic_batch_256"] = seed_scaling(data, dev, 256, n)
        save()
        results["vectorized_seeds_gmpo_policy_mlp_batch_256"] = seed_scaling(data, dev, 256, n, "policy")
        save()
        results["vectorized_seeds_iql_actor_batch_256"] = seed_scaling(data, dev, 256, n, "iql-actor")
        results["vectorized_seeds_td3bc_batch_256"] = seed_scaling(data, dev, 256, n, "td3bc")
        save()
        if not cpu:  # the moonshot's shape: 8 seeds of the paper's policy stage at once (too slow to time on a CPU)
            results["vectorized_seeds_gmpo_policy_unet_batch_4096"] = seed_scaling(data, dev, 4096, n // 2,
                                                                                   "policy-unet")
            save()
    for r in gmpg_rows:
        measure(*r)
    print(f"\ndevice {results['device']}, torch {results['torch']}, {results['threads']} threads\n")
    print(f"steps/s: median of {ns.rounds} alternating rounds (min-max)\n")
    rate = results["matmul_gflops_1024x256x256"]
    print(f"MFLOP/step: torch's FlopCounterMode over one eager step; ceiling: the steps/s at this device's rate on a "
          f"(1024, 256) @ (256, 256) matmul, {rate} GFLOP/s\n")
    print("| step | eager steps/s | compiled steps/s | compile s | MFLOP/step | GFLOP/s (best) | ceiling steps/s |\n"
          "|---|---|---|---|---|---|---|")

    def cell(d):
        return f"{d['steps_per_s']} ({d['min']}-{d['max']})" if d.get("steps_per_s") else d.get("note", "-")

    for r in results["rows"]:
        e, c = r.get("eager", {}), r.get("compiled", {})
        best = max(d.get("steps_per_s") or 0 for d in (e, c))
        mf = r["mflop_per_step"]
        ceiling = "-" if "bf16" in r["step"] else round(1e3 * rate / mf)  # (the rate is fp32's)
        print(f"| {r['step']} | {cell(e)} | {cell(c)} | {c.get('first_call_s', '-')} | {mf} | "
              f"{round(best * mf / 1e3, 1)} | {ceiling} |")
    if not ns.only:
        print(f"\nact, batch 1, unet, 16 Euler steps, ms: {results['act_ms_batch1_unet_16_euler']}")
        print(f"full loop (GMPO mlp, batch 256, data sampling and logging included): "
              f"{results['full_loop_steps_per_s']}")
        proj = results["paper_budget_minutes"]
        print(f"paper budget (122k critic + 244k unet policy steps at batch 4096), minutes: "
              f"{proj or 'needs both rows'}")
    for key, what in (("vectorized_seeds_iql_critic_batch_256", "IQL critic, batch 256"),
                      ("vectorized_seeds_gmpo_policy_mlp_batch_256", "GMPO policy, mlp 3x256, batch 256"),
                      ("vectorized_seeds_iql_actor_batch_256", "IQL's Gaussian actor, 2x256, batch 256"),
                      ("vectorized_seeds_td3bc_batch_256", "TD3+BC, 2x256, batch 256"),
                      ("vectorized_seeds_gmpo_policy_unet_batch_4096", "GMPO policy, unet, batch 4096")):
        if key not in results:
            continue
        print(f"vectorized seeds, {what} (seed-steps/s, stacked vs separate):")
        for k, v in results[key].items():
            print(f"  {k} seeds: {v['stacked_seed_steps_per_s']} vs {v['separate_seed_steps_per_s']} "
                  f"({v['speedup']}x)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
