"""GMPG benchmark (not a test).

``step``: time and peak memory of one GMPG policy step (Eq 8) for solver steps T, batch sizes, gradient modes
(direct backpropagation / torchdiffeq adjoint) and divergences (exact / Hutchinson). Each configuration runs in a
fresh subprocess so that its peak memory (CUDA: max allocated; CPU: peak RSS above the pre-step RSS) is its own.
Configurations whose estimated time exceeds ``--max-seconds`` are skipped and reported as such, not guessed.

    python benchmarks/research/gmpg_bench.py step --T 32 100 1000 --batch 256 4096 [--device cuda] [--max-seconds 120]

``scores``: train GMPG and GMPO on datasets with the same presets and print their normalized scores.

    python benchmarks/research/gmpg_bench.py scores --task hopper-medium-replay-v5:Hopper-v5 --preset cpu

``kl``: re-estimate a trained GMPG policy's KL (log pi - log mu on its own samples) on finer grids than the
training grid, to see whether training exploited the coarse grid's likelihood error::

    python benchmarks/research/gmpg_bench.py kl runs/bench/walker/walker2d-medium-gmpg walker2d-medium-v5

``bias``: the KL estimate at pi = mu (exactly 0 in truth) for a run's trained behaviour model, by training solver
and T: the discretization bias a policy can exploit, with the network evaluations per solve (the cost) beside it::

    python benchmarks/research/gmpg_bench.py bias runs/suite-six/walker2d-medium-v5/gmpg-c100k/seed-0 walker2d-medium-v5

``repolicy``: GMPG's policy stage again from a finished run's behaviour model and critic, with ``--set`` overrides::

    python benchmarks/research/gmpg_bench.py repolicy RUN hopper-medium-v5:Hopper-v5 --set train_steps=32 --out runs/rp

``curve``: the same for several policy-stage lengths, each run scored on rescore.py's 50 start states at T = 0, 1::

    python benchmarks/research/gmpg_bench.py curve RUN hopper-medium-v5:Hopper-v5 --steps 25 50 100 400 --out runs/curve

``qgap``: the critic's view against the environment's: on the same dataset states, the run's critic's Q of the
actions of its behaviour model mu, its policy and other runs' policies (e.g. IQL's actor on the same critic), each
minus Q of the data's actions, beside the runs' rescore.py scores where they have them::

    python benchmarks/research/gmpg_bench.py qgap runs/suite-fresh/hopper-medium-replay-v5/gmpg-c100k-rk4/seed-0 \
        hopper-medium-replay-v5 --other iql=runs/suite-fresh/hopper-medium-replay-v5/iql-c100k/seed-0

``curves``: several ``curve`` folders gathered into one CSV and plot (docs/results/NAME.csv and .png)::

    python benchmarks/research/gmpg_bench.py curves runs/gmpg-curve/*/seed-* --name gmpg-policy-steps

Results go to ``<out>/gmpg_step.json`` / ``<out>/gmpg_scores.json`` and are printed as tables.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

_here = Path(__file__).resolve()
sys.path[:0] = [str(_here.parents[2]), str(_here.parents[1])]  # genpolicy, rescore

import torch  # noqa: E402


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def one_config(T: int, batch: int, gradient: str, divergence: str, device: str, obs_dim: int, act_dim: int,
               hidden: list[int], repeats: int, solver: str) -> dict:
    """Run inside the child: build GMPG, do one warm-up step, then time ``repeats`` steps."""
    from genpolicy.rl.algos.gmpg import GMPG, GMPGConfig
    from genpolicy.rl.data import Batch

    torch.manual_seed(0)
    cfg = GMPGConfig(net="mlp", net_hidden=tuple(hidden), train_steps=T, gradient=gradient, divergence=divergence,
                     chunk_size=batch, device=device, train_solver=solver)
    algo = GMPG(obs_dim, act_dim, cfg).to(device)
    b = Batch(obs=torch.randn(batch, obs_dim, device=device), actions=torch.zeros(batch, act_dim, device=device),
              rewards=torch.zeros(batch, device=device), next_obs=torch.zeros(batch, obs_dim, device=device),
              dones=torch.zeros(batch, device=device))
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss0 = _rss_bytes()
    t = time.perf_counter()
    algo.update_policy(b)
    if cuda:
        torch.cuda.synchronize()
    first = time.perf_counter() - t
    peak = (torch.cuda.max_memory_allocated() - base) if cuda else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        m = algo.update_policy(b)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return {"T": T, "batch": batch, "gradient": gradient, "divergence": divergence, "device": device, "solver": solver,
            "step_seconds": min(times) if times else first, "first_step_seconds": first,
            "peak_mem_mb": round(peak / 2**20, 1), "kl_per_dim": float(m["kl_per_dim"]) if times else None,
            "threads": torch.get_num_threads()}


def cmd_step(ns) -> int:
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, rate = [], {}  # rate: seconds per (T * batch) measured so far, per (gradient, divergence)
    for gradient in ns.gradient:
        for divergence in ns.divergence:
            for batch in sorted(ns.batch):
                for T in sorted(ns.T):
                    key = (gradient, divergence)
                    est = rate.get(key, 0.0) * T * batch * (1 + ns.repeats)
                    if est > ns.max_seconds:
                        rows.append({"T": T, "batch": batch, "gradient": gradient, "divergence": divergence,
                                     "skipped": f"estimated {est:.0f} s > --max-seconds {ns.max_seconds}"})
                        print(json.dumps(rows[-1]), flush=True)
                        continue
                    args = [sys.executable, __file__, "_child", json.dumps(
                        {"T": T, "batch": batch, "gradient": gradient, "divergence": divergence,
                         "device": ns.device, "obs_dim": ns.obs_dim, "act_dim": ns.act_dim, "hidden": ns.hidden,
                         "repeats": ns.repeats, "solver": ns.solver})]
                    p = subprocess.run(args, capture_output=True, text=True)
                    if p.returncode != 0:
                        rows.append({"T": T, "batch": batch, "gradient": gradient, "divergence": divergence,
                                     "error": p.stderr.strip().splitlines()[-1] if p.stderr else f"rc {p.returncode}"})
                    else:
                        r = json.loads(p.stdout.strip().splitlines()[-1])
                        rate[key] = max(rate.get(key, 0.0), r["step_seconds"] / (T * batch))
                        rows.append(r)
                    print(json.dumps(rows[-1]), flush=True)
    (out / "gmpg_step.json").write_text(json.dumps({"args": vars(ns), "rows": rows}, indent=2, default=str))
    print("\n| T | batch | gradient | divergence | s/step | peak MB |\n|---|---|---|---|---|---|")
    for r in rows:
        if "step_seconds" in r:
            print(f"| {r['T']} | {r['batch']} | {r['gradient']} | {r['divergence']} | {r['step_seconds']:.3f} | "
                  f"{r['peak_mem_mb']:.0f} |")
        else:
            print(f"| {r['T']} | {r['batch']} | {r['gradient']} | {r['divergence']} | "
                  f"{r.get('skipped') or r.get('error')} | |")
    return 0


def cmd_scores(ns) -> int:
    from genpolicy.config import load_presets, resolve_config, task_presets
    from genpolicy.rl.algos import GMPGConfig, GMPOConfig
    from genpolicy.rl.datasets import load_dataset
    from genpolicy.train import prepare_run, train

    out = Path(ns.out)
    rows = []
    for task in ns.task:
        dataset, env = task.split(":")
        base = Path(dataset).name.removesuffix(".hdf5").removesuffix(".npz").removesuffix("-v5")  # the preset name
        ds = load_dataset(dataset)
        critic = None  # (IQL settings, state) of this task's first run, reused by the second when they match
        for algo_name, cls in (("gmpo", GMPOConfig), ("gmpg", GMPGConfig)):
            if algo_name not in ns.algo:
                continue
            presets = load_presets(algo_name)
            names = list(ns.preset) + task_presets(presets, ns.preset, base)
            cfg = resolve_config(cls, names, presets, {}, ns.set)
            key = (cfg.iql(), cfg.critic_steps, cfg.reward_scale, cfg.normalize_obs, cfg.batch_size, cfg.seed)
            shared = ns.share_critic and critic is not None and critic[0] == key
            if shared:
                cfg = dataclasses.replace(cfg, critic_steps=0)
            algo, data = prepare_run(algo_name, cfg, ds)
            if shared:
                algo.critic.load_state_dict(critic[1])
            s = train(algo, data, out / f"{base}-{algo_name}", env_id=env, meta={"dataset": dataset},
                      progress=ns.progress)
            if critic is None:
                critic = (key, {k: v.clone() for k, v in algo.critic.state_dict().items()})
            rows.append({"task": base, "algo": algo_name, "presets": names, "final_score": s["final_score"],
                         "best_score": s["best_score"], "wall_seconds": s["wall_seconds"],
                         "critic": "shared" if shared else "own", "stage_times": s["stage_times"]})
            print(json.dumps(rows[-1]), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gmpg_scores.json").write_text(json.dumps(rows, indent=2))
    print("\n| task | algo | final | best | critic | wall s |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['task']} | {r['algo']} | {r['final_score']:.1f} | {r['best_score']:.1f} | {r['critic']} | "
              f"{r['wall_seconds']:.0f} |")
    return 0


def _load_gmpg_run(path: str):
    """A finished GMPG run's algorithm from its final ``checkpoint.pt`` (not ``best.pt``), or a checkpoint file."""
    from genpolicy.policy import load_policy

    run = Path(path)
    algo = load_policy(run / "checkpoint.pt" if run.is_dir() else run)
    if not hasattr(algo, "behaviour"):
        raise SystemExit(f"{path} is not a GMPG run (no behaviour model)")
    return algo


def cmd_kl(ns) -> int:
    """Re-estimate a trained GMPG policy's KL on its own samples with finer grids than it was trained on."""
    from genpolicy.rl.datasets import load_dataset

    torch.manual_seed(ns.seed)
    algo = _load_gmpg_run(ns.run)
    ds = load_dataset(ns.dataset)
    idx = torch.randint(0, len(ds), (ns.states,))
    obs = algo.normalizer(torch.as_tensor(ds.observations[idx.numpy()]))
    solver, steps = algo.cfg.train_solver, algo.cfg.train_steps
    with torch.no_grad():
        a = algo.policy.sample(obs, solver=solver, steps=steps)
    print(f"actions: {ns.states} states, sampled with {solver} T={steps} (the training grid)")
    print("| grid | log pi | log mu | KL per action dim |\n|---|---|---|---|")
    for grid in [f"{solver}:{steps}"] + list(ns.grids):
        sv, t = grid.split(":")
        lp = algo.policy.log_prob(a, obs, divergence="exact", steps=int(t), solver=sv).detach()
        lm = algo.behaviour.log_prob(a, obs, divergence="exact", steps=int(t), solver=sv).detach()
        print(f"| {sv} T={t} | {lp.mean():.3f} | {lm.mean():.3f} | {(lp - lm).mean() / a.shape[1]:.3f} |")
    return 0


#: ``bias``'s (solver, steps) grid; network evaluations per step: 1 (euler), 2 (midpoint, heun), 4 (rk4)
BIAS_GRID = [("euler", 16), ("midpoint", 8), ("heun", 8), ("rk4", 4), ("rk4", 8), ("midpoint", 16),
             ("midpoint", 32), ("rk4", 16)]
EVALS_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}


def cmd_bias(ns) -> int:
    """GMPG's KL estimate (log pi on the sampling solve - log mu on the solve back, Eq 8) with pi = mu."""
    from genpolicy.rl.algos.gmpg import gmpg_terms
    from genpolicy.rl.data import OfflineData
    from genpolicy.rl.datasets import load_dataset

    algo = _load_gmpg_run(ns.run)
    mu = algo.behaviour.requires_grad_(False)
    data = OfflineData(load_dataset(ns.dataset), reward_scale="none", normalize_obs=True)
    obs = data.sample(ns.states, torch.Generator().manual_seed(0)).obs
    print(f"{ns.run}: KL(pi || mu) estimate at pi = mu, {ns.states} states of {ns.dataset}, act_dim {algo.act_dim}")
    print("| solver | T | evaluations per solve | KL estimate per dim | s.e. | seconds |\n|---|---|---|---|---|---|")
    for solver, steps in BIAS_GRID:
        torch.manual_seed(1)
        t0 = time.perf_counter()
        m = gmpg_terms(mu, mu, lambda c, a: a.sum(-1) * 0, obs, 1.0, solver=solver, steps=steps, divergence="exact")
        kl = m["kl"].detach() / algo.act_dim
        print(f"| {solver} | {steps} | {EVALS_PER_STEP[solver] * steps} | {kl.mean():+.4f} | "
              f"{kl.std() / len(kl) ** 0.5:.4f} | {time.perf_counter() - t0:.1f} |", flush=True)
    return 0


def _repolicy(run: str, task: str, sets: list[str], out: Path, progress: bool) -> dict:
    """GMPG's policy stage again, into ``out``, from the finished run ``run``'s behaviour model and critic, with
    ``sets`` (KEY=VALUE) over its config; returns the new run's summary."""
    from genpolicy.config import resolve_config
    from genpolicy.rl.algos import GMPGConfig
    from genpolicy.train import prepare_run, train

    old = _load_gmpg_run(run)
    cfg = resolve_config(GMPGConfig, [], {}, {}, sets, base=old.cfg)
    cfg = dataclasses.replace(cfg, behaviour_steps=0, critic_steps=0)
    dataset, env = task.split(":")
    algo, data = prepare_run("gmpg", cfg, dataset)
    algo.behaviour.load_state_dict(old.behaviour.state_dict())
    algo.critic.load_state_dict(old.critic.state_dict())
    return train(algo, data, out, env_id=env, meta={"dataset": dataset, "from": str(run), "set": sets},
                 progress=progress)


def cmd_repolicy(ns) -> int:
    """Run GMPG's policy stage again from a finished run's behaviour model and critic, with --set overrides
    (e.g. a finer training grid), so that policy-stage settings can be compared without retraining the rest."""
    s = _repolicy(ns.run, ns.task, ns.set, Path(ns.out), ns.progress)
    print(json.dumps({"run": ns.out, "set": ns.set, "final_score": s["final_score"], "best_score": s["best_score"],
                      "wall_seconds": s["wall_seconds"], "stage_times": s["stage_times"]}))
    return 0


def cmd_curve(ns) -> int:
    """GMPG's score against the length of its policy stage: for each K of --steps, the policy stage again (as
    ``repolicy``) with ``policy_steps=K`` into ``OUT/p{K}``, then that run scored as rescore.py scores (``genpolicy
    eval --checkpoint final --episodes E --seed S``) at temperature 0 and 1. Runs and scores already there are kept,
    so running the command again adds only what is missing. The table goes to stdout and ``OUT/curve.csv``."""
    from genpolicy.plotting import read_run

    from rescore import score

    out = Path(ns.out)
    rows = []
    for k in sorted(set(ns.steps)):
        d = out / f"p{k}"
        if not (d / "summary.json").exists():
            if d.exists():
                raise SystemExit(f"{d} holds an unfinished run: remove it to train it again")
            _repolicy(ns.run, ns.task, [*ns.set, f"policy_steps={k}", "eval_every=1000000000",
                                        "final_eval_episodes=1"], d, ns.progress)
        last = {k: v[-1][1] for k, v in read_run(d)["metrics"]["policy"].items()}  # the last logged policy step
        row = {"policy_steps": k, **{f"T{t}": round(score(d, f"act_temperature={t}", ns.seed, ns.episodes), 1)
                                     for t in (0, 1)},
               "kl_per_dim": round(last["kl_per_dim"], 3), "q_mean": round(last["q_mean"], 2),
               "eval_seed": ns.seed, "episodes": ns.episodes}
        rows.append(row)
        print(json.dumps(row), flush=True)
    with open(out / "curve.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"\n{ns.run}: {ns.episodes} episodes, seed {ns.seed}; KL and Q: the last logged policy step's\n")
    print("| policy steps | T = 0 | T = 1 | KL estimate per dim | Q |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['policy_steps']} | {r['T0']} | {r['T1']} | {r['kl_per_dim']} | {r['q_mean']} |")
    return 0


def _rescored(run: Path, setting: str) -> str:
    """The run's rescore.py score under ``setting`` (seed 0, 50 episodes) if it has one, else '-'."""
    from rescore import score_file

    f = score_file(run, setting, 0, 50)
    return f"{json.loads(f.read_text())['score_mean']:.1f}" if f.exists() else "-"


def cmd_qgap(ns) -> int:
    """The critic of a GMPG run scores the actions of mu, of the run's policy and of other runs' policies on the
    same dataset states (paired: each minus Q of the data's action in that state), beside their environment
    scores: where the critic ranks a policy above another and the environment the other way, the critic is
    being exploited (it is only fit on the data's actions)."""
    import numpy as np

    from genpolicy.policy import load_policy
    from genpolicy.rl.datasets import load_dataset

    torch.manual_seed(ns.seed)
    algo, run = _load_gmpg_run(ns.run), Path(ns.run)
    ds = load_dataset(ns.dataset)
    idx = np.random.default_rng(ns.seed).choice(len(ds), min(ns.states, len(ds)), replace=False)
    obs = torch.as_tensor(ds.observations[idx], dtype=torch.float32)
    on = algo.normalizer(obs)
    cfg = algo.cfg

    def q(a: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return algo.critic.q(on, a.clamp(-1.0, 1.0))

    q_data = q(torch.as_tensor(ds.actions[idx], dtype=torch.float32))
    rows = []
    with torch.no_grad():
        for name, model, score_of in (("mu (behaviour)", algo.behaviour, None), ("GMPG policy", algo.policy, run)):
            for t in (0, 1):
                a = model.sample(on, solver=cfg.act_solver, steps=cfg.act_steps, temperature=float(t))
                rows.append((f"{name}, T = {t}", q(a) - q_data,
                             _rescored(score_of, f"act_temperature={t}") if score_of else "-"))
    for spec in ns.other:
        name, path = spec.split("=", 1)
        p = Path(path)
        pol = load_policy(p / "checkpoint.pt" if p.is_dir() else p)
        a = torch.as_tensor(pol.act(obs.numpy()))  # at its config's act temperature (a Gaussian actor: its mean)
        t = getattr(pol.cfg, "act_temperature", 1.0)
        rows.append((f"{name} (T = {t:g})", q(a) - q_data, _rescored(p if p.is_dir() else p.parent,
                                                                     f"act_temperature={t:g}")))
    print(f"{ns.run}: its critic on {len(idx)} states of {ns.dataset} (Q of the data's actions: "
          f"{q_data.mean():.2f}); score: rescore.py's (seed 0, 50 episodes) where the run has it\n")
    print("| actions | Q − Q(data) | s.e. | score |\n|---|---|---|---|")
    for name, d, sc in rows:
        print(f"| {name} | {d.mean():+.2f} | {d.std() / len(d) ** 0.5:.2f} | {sc} |")
    return 0


def cmd_curves(ns) -> int:
    """Gather ``curve`` folders (``.../TASK/seed-K``) into one CSV and one plot (T = 0 score against policy steps, a
    line per task and seed). The source run's own score (its rescore.py scores on the same start states, when it has
    them) is added at its own policy_steps where the curve lacks that length, marked ``source_run``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import yaml

    from genpolicy.plotting import save_figure

    from rescore import score_file

    rows = []
    for folder in map(Path, ns.folders):
        first = sorted(folder.glob("p*/config.yaml"))[0]
        meta = yaml.safe_load(first.read_text())
        src = Path(meta["from"])
        src = src.parent if src.name.endswith(".pt") else src
        task, seed = meta["dataset"], int(meta["config"]["seed"])
        curve = list(csv.DictReader(open(folder / "curve.csv")))
        for r in curve:
            rows.append({"task": task, "seed": seed, "policy_steps": int(r["policy_steps"]), "T0": float(r["T0"]),
                         "T1": float(r["T1"]), "kind": "curve", "source": str(src)})
        own = yaml.safe_load((src / "config.yaml").read_text())["config"]["policy_steps"]
        at = int(curve[0]["eval_seed"]), int(curve[0]["episodes"])  # the curve's evaluation: the source's too
        scores = [score_file(src, f"act_temperature={t}", *at) for t in (0, 1)]
        if own not in {r["policy_steps"] for r in rows if r["source"] == str(src)} and all(f.exists() for f in scores):
            t0, t1 = (round(json.loads(f.read_text())["score_mean"], 1) for f in scores)
            rows.append({"task": task, "seed": seed, "policy_steps": own, "T0": t0, "T1": t1, "kind": "source_run",
                         "source": str(src)})
    if not rows:
        raise SystemExit("curves: no curve folders given")
    out = Path(ns.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows.sort(key=lambda r: (r["task"], r["seed"], r["policy_steps"]))
    with open(out / f"{ns.name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = {key: [r for r in rows if (r["task"], r["seed"]) == key] for key in sorted({(r["task"], r["seed"])
                                                                                         for r in rows})}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (task, seed), pts in lines.items():
        ax.plot([r["policy_steps"] for r in pts], [r["T0"] for r in pts], marker="o",
                label=f"{task.removesuffix('-v5')}, seed {seed}")
    ax.set_xscale("log")
    ax.set_xlabel("GMPG policy steps (128 states each)")
    ax.set_ylabel("normalized score, T = 0 (50 episodes)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(fig, out / f"{ns.name}.png")
    ks = sorted({r["policy_steps"] for r in rows})
    print("| task | seed | " + " | ".join(map(str, ks)) + " |\n|---|---|" + "---|" * len(ks))
    for (task, seed), pts in lines.items():
        by = {r["policy_steps"]: r["T0"] for r in pts}
        print(f"| {task} | {seed} | " + " | ".join(str(by.get(k, "")) for k in ks) + " |")
    print(f"wrote {out / ns.name}.csv and .png")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        print(json.dumps(one_config(**json.loads(argv[1]))))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("step", help="per-step time and peak memory")
    st.add_argument("--T", type=int, nargs="+", default=[32, 100, 1000])
    st.add_argument("--batch", type=int, nargs="+", default=[256, 4096])
    st.add_argument("--gradient", nargs="+", default=["direct", "adjoint"])
    st.add_argument("--divergence", nargs="+", default=["exact", "hutchinson"])
    st.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    st.add_argument("--obs-dim", type=int, default=17)
    st.add_argument("--act-dim", type=int, default=6)
    st.add_argument("--hidden", type=int, nargs="+", default=[256, 256, 256])
    st.add_argument("--repeats", type=int, default=2)
    st.add_argument("--solver", default="midpoint", help="training solver (euler, midpoint, rk4)")
    st.add_argument("--max-seconds", type=float, default=120.0, help="skip configs estimated to take longer")
    st.add_argument("--out", default="runs/bench")
    sc = sub.add_parser("scores", help="GMPG and GMPO normalized scores on datasets")
    sc.add_argument("--task", action="append", required=True, help="DATASET:ENV_ID, e.g. hopper-medium-v5:Hopper-v5")
    sc.add_argument("--algo", nargs="+", default=["gmpg", "gmpo"])
    sc.add_argument("--preset", action="append", default=[])
    sc.add_argument("--set", action="append", default=[])
    sc.add_argument("--out", default="runs/bench")
    sc.add_argument("--own-critics", dest="share_critic", action="store_false",
                    help="train a critic per algorithm (default: GMPG reuses GMPO's IQL critic when their IQL "
                         "settings match, so both policies are scored against the same critic)")
    sc.add_argument("--no-progress", dest="progress", action="store_false")
    kl = sub.add_parser("kl", help="a trained GMPG policy's KL estimate on its training grid vs finer grids")
    kl.add_argument("run", help="GMPG run folder or checkpoint")
    kl.add_argument("dataset", help="dataset whose states to use")
    kl.add_argument("--grids", nargs="+", default=["midpoint:32", "rk4:64"], help="SOLVER:STEPS")
    kl.add_argument("--states", type=int, default=256)
    kl.add_argument("--seed", type=int, default=0)
    bi = sub.add_parser("bias", help="the KL estimate at pi = mu (its discretization bias) by training solver and T")
    bi.add_argument("run", help="GMPG run folder or checkpoint (its behaviour model is used)")
    bi.add_argument("dataset", help="dataset whose states to use")
    bi.add_argument("--states", type=int, default=512)
    rp = sub.add_parser("repolicy", help="GMPG's policy stage again from a finished run's behaviour and critic")
    rp.add_argument("run", help="finished GMPG run folder or checkpoint")
    rp.add_argument("task", help="DATASET:ENV_ID (the run's dataset)")
    rp.add_argument("--set", action="append", default=[], help="KEY=VALUE override, e.g. train_steps=32")
    rp.add_argument("--out", required=True)
    rp.add_argument("--no-progress", dest="progress", action="store_false")
    cu = sub.add_parser("curve", help="GMPG's score after K policy steps, from a finished run's behaviour and critic")
    cu.add_argument("run", help="finished GMPG run folder or checkpoint")
    cu.add_argument("task", help="DATASET:ENV_ID (the run's dataset)")
    cu.add_argument("--steps", type=int, nargs="+", required=True, help="policy-stage lengths K")
    cu.add_argument("--set", action="append", default=[], help="KEY=VALUE override of the run's config")
    cu.add_argument("--episodes", type=int, default=50)
    cu.add_argument("--seed", type=int, default=0, help="evaluation seed (rescore.py's: 0)")
    cu.add_argument("--out", required=True)
    cu.add_argument("--no-progress", dest="progress", action="store_false")
    qg = sub.add_parser("qgap", help="the critic's Q of mu's, the policy's and other runs' actions vs their scores")
    qg.add_argument("run", help="finished GMPG run folder or checkpoint (its critic, mu and policy)")
    qg.add_argument("dataset", help="dataset whose states and actions to use")
    qg.add_argument("--other", nargs="*", default=[], metavar="NAME=RUN", help="other runs' policies to score")
    qg.add_argument("--states", type=int, default=2048)
    qg.add_argument("--seed", type=int, default=0)
    cs = sub.add_parser("curves", help="gather curve folders into one CSV and plot")
    cs.add_argument("folders", nargs="+", help="folders written by curve (--out)")
    cs.add_argument("--name", required=True, help="file stem: OUT_DIR/NAME.csv and .png")
    cs.add_argument("--out-dir", default="docs/results")
    ns = p.parse_args(argv)
    commands = {"step": cmd_step, "scores": cmd_scores, "kl": cmd_kl, "bias": cmd_bias, "repolicy": cmd_repolicy,
                "curve": cmd_curve, "curves": cmd_curves, "qgap": cmd_qgap}
    return commands[ns.cmd](ns)


if __name__ == "__main__":
    sys.exit(main())
