"""The suite runner: algorithms x tasks x seeds at a named budget, resumable, with one IQL critic per (task, seed)
shared by every algorithm whose critic settings match, and a results table (mean +- s.e. over seeds, the data's own
score beside it) plus learning curves per task.

    genpolicy bench --algos bc iql gmpo --tasks hopper-medium-v5:Hopper-v5 --seeds 0 1 2 --budget cpu

Layout under ``--out``: ``TASK/ALGO/seed-K/`` (one ordinary run folder each), ``TASK/critic/seed-K/`` (the shared
critic's run), ``results.md``, ``results.csv``, ``curves-TASK.png``. Running the same command again skips finished
runs (they have ``summary.json``), resumes a half-finished one from its checkpoint, and rewrites the table from
the run folders (so rows are never duplicated).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np

__all__ = ["Task", "parse_task", "run_suite", "collect", "write_table", "plot_curves"]


@dataclasses.dataclass(frozen=True)
class Task:
    """A dataset and the environment that evaluates it (None: no evaluation)."""

    dataset: str
    env: str | None

    @property
    def name(self) -> str:
        return Path(self.dataset).name.removesuffix(".hdf5").removesuffix(".npz")


def parse_task(spec: str) -> Task:
    """``DATASET:ENV`` or ``DATASET`` (no evaluation)."""
    dataset, _, env = spec.partition(":")
    return Task(dataset, env or None)


def _config(algo: str, budget: list[str], task: Task, sets: list[str]):
    from .config import load_presets, resolve_config, task_presets
    from .rl.algos import ALGORITHMS

    presets = load_presets(algo)
    names = [b for b in budget if b in presets] + task_presets(presets, budget, task.name.removesuffix("-v5"))
    missing = [b for b in budget if b not in presets]
    if missing:
        raise ValueError(f"{algo} has no preset {missing}; its presets: {sorted(presets)}")
    cls = ALGORITHMS[algo].Config
    fields = {f.name for f in dataclasses.fields(cls)}
    own_sets = [s for s in sets if s.split("=", 1)[0].strip() in fields]  # --set keys apply where they exist
    return resolve_config(cls, names, presets, {}, own_sets), names


def _critic_key(cfg) -> tuple | None:
    from .rl.algos.common import CriticConfig

    if not isinstance(cfg, CriticConfig) or cfg.critic_steps == 0 or getattr(cfg, "critic", "iql") != "iql":
        return None  # no IQL critic (or a different kind: QGPO's in-support, SfBC's planning)
    iql = cfg.iql()
    key = (iql, cfg.critic_steps, cfg.reward_scale, cfg.normalize_obs, cfg.batch_size, cfg.seed, cfg.device)
    return key + (("batched",) if iql.batched else ())  # a batched critic's weights are stored differently


def _check_same_settings(d: Path, algo: str, cfg, shared: bool) -> None:
    """A run folder that exists must hold the run asked for: a one-line error naming the fields that differ (a
    changed --set would otherwise be skipped or resumed with the old settings without a word)."""
    from .config import _class_dict, _class_union
    from .train import CHECKPOINT, run_config

    if not (d / CHECKPOINT).exists():
        return
    old = run_config(d, algo, device=cfg.device)
    ignore = _class_union(type(cfg), "resume_safe") | {"seed"}
    epochs = _class_dict(type(cfg), "epoch_fields")  # a budget in epochs is stored as steps: compare the epochs
    ignore |= {steps for e, steps in epochs.items() if getattr(cfg, e) > 0}
    if shared and getattr(old, "critic_steps", None) == 0:
        ignore.add("critic_steps")  # trained by the shared critic
    differ = sorted(f.name for f in dataclasses.fields(cfg)
                    if f.name not in ignore and getattr(cfg, f.name) != getattr(old, f.name))
    if differ:
        raise ValueError(f"{d} holds a run with other settings ({', '.join(f'{k}={getattr(old, k)!r}' for k in differ)}"
                         f" there, {', '.join(f'{k}={getattr(cfg, k)!r}' for k in differ)} asked); use another --out "
                         f"or --label, or {' '.join(f'--set {k}={_set_value(getattr(old, k))}' for k in differ)} to "
                         f"continue with its settings (a preset that changed since)")


def _set_value(v) -> str:
    """``v`` as ``--set KEY=VALUE`` takes it (YAML: lists in brackets, strings bare)."""
    if isinstance(v, (tuple, list)):
        return "[" + ",".join(_set_value(x) for x in v) + "]"
    return str(v).lower() if isinstance(v, bool) else str(v)


def _finished(d: Path) -> bool:
    return (d / "summary.json").exists()


def _fresh(algo: str, cfg, task: Task, ds, critic_state=None):
    """A new run's algorithm and data, as every caller starts one: prepared, checked (preflight), with the shared
    critic's weights when given."""
    from .preflight import preflight
    from .train import prepare_run

    a, data = prepare_run(algo, cfg, ds)
    preflight(a, data, task.env)
    if critic_state is not None:
        a.critic.load_state_dict(critic_state)
    return a, data


def _run(algo: str, cfg, task: Task, d: Path, ds, meta: dict, progress: bool, critic_state=None) -> None:
    from .train import CHECKPOINT, prepare_run, run_config, train

    resume = (d / CHECKPOINT).exists()
    if resume:
        a, data = prepare_run(algo, run_config(d, algo, device=cfg.device), ds)
    else:
        a, data = _fresh(algo, cfg, task, ds, critic_state)
    train(a, data, d, env_id=task.env, meta=meta, resume=resume, progress=progress)


def _start(algo: str, cfg, names: list[str], task: Task, d: Path, out: Path, ds, share_critic: bool,
           progress: bool) -> tuple:
    """``(cfg, folder, meta, critic_state)`` of the run in ``d``: a new run that shares its task and seed's IQL
    critic gets the critic's weights (trained first if needed) and no critic steps of its own."""
    meta = {"dataset": task.dataset, "presets": names, "suite": str(out)}
    key = _critic_key(cfg) if share_critic else None
    state = None
    if key is not None and not (d / "checkpoint.pt").exists():
        cdir = _critic_dir(out, task, cfg)
        state = _shared_critic(task, cfg, cdir, ds, progress)
        cfg = dataclasses.replace(cfg, critic_steps=0)
        meta["critic_from"] = str(cdir)
    return cfg, d, meta, state


def _run_stacked(algo: str, starts: list, task: Task, ds, progress: bool) -> None:
    """New runs of one algorithm, one per seed (``starts``: ``(cfg, folder, meta, critic_state)`` each, as
    :func:`_start` gives them), trained as one vectorized model where the algorithm has one
    (:func:`genpolicy.train.train_stacked`; ``--stack-seeds``)."""
    from .train import device_rng_state, train_stacked

    runs, states = [], []
    for cfg, _, _, critic_state in starts:
        runs.append(_fresh(algo, cfg, task, ds, critic_state))
        states.append(device_rng_state(runs[-1][1].device))  # the global RNG this run's single run trains from
    train_stacked([a for a, _ in runs], runs[0][1], [d for _, d, _, _ in starts], [m for _, _, m, _ in starts],
                  states, task.env, progress)


def _critic_run_config(seed_cfg):
    """The ``iql`` run (no actor steps) that trains the shared critic for ``seed_cfg``'s critic settings."""
    from .rl.algos import IQLAWRConfig
    from .rl.algos.common import CriticConfig

    shared = {f.name: getattr(seed_cfg, f.name) for f in dataclasses.fields(CriticConfig)}
    return IQLAWRConfig(**{**shared, "policy_steps": 0, "final_eval_episodes": 1})


def _critic_dir(out: Path, task: Task, cfg) -> Path:
    digest = hashlib.sha256(repr(_critic_key(cfg)).encode()).hexdigest()[:8]  # stable across processes
    return out / task.name / "critic" / f"seed-{cfg.seed}-{digest}"


def _stack_new_critics(task: Task, wanted: list, out: Path, ds, progress: bool) -> None:
    """Train the shared critics that ``wanted`` (configs of runs still to start) need and that do not exist yet,
    several seeds with the same critic settings at a time as one stacked model (``--stack-critics``)."""
    from .train import CHECKPOINT

    groups: dict = {}
    for cfg in wanted:
        key = _critic_key(cfg)
        d = _critic_dir(out, task, cfg)
        if key is None or "batched" in key or (d / CHECKPOINT).exists():
            continue
        groups.setdefault(repr(key[:5] + key[6:]), {})[cfg.seed] = (cfg, d)  # the key without its seed
    for group in groups.values():
        if len(group) < 2:
            continue  # one seed: the ordinary single run
        members = [group[seed] for seed in sorted(group)]
        _run_stacked("iql", [(_critic_run_config(cfg), d, {"dataset": task.dataset, "role": "shared critic"}, None)
                             for cfg, d in members], Task(task.dataset, None), ds, progress)


def _shared_critic(task: Task, seed_cfg, d: Path, ds, progress: bool) -> dict:
    """The IQL critic for this (task, seed, critic settings), trained once in ``d`` (resumable) and reused."""
    from .train import CHECKPOINT, load_checkpoint

    if not _finished(d):
        _run("iql", _critic_run_config(seed_cfg), Task(task.dataset, None), d, ds,
             {"dataset": task.dataset, "role": "shared critic"}, progress)
    modules = load_checkpoint(d / CHECKPOINT)["state"]["modules"]
    return {k[len("critic."):]: v for k, v in modules.items() if k.startswith("critic.")}


def run_suite(algos: list[str], tasks: list[Task], seeds: list[int], budget: list[str], out: str | Path,
              sets: list[str] | None = None, share_critic: bool = True, progress: bool = True,
              label: str | None = None, stack_critics: bool = False, stack_seeds: bool = False) -> Path:
    """Train every (task, algorithm, seed) not yet finished, then write the table and curves; returns the table.

    ``label``: with one algorithm, its folder and table column (``TASK/LABEL/seed-K``) instead of its name, so that
    variants (``--set`` ablations) sit beside it in one suite and share its critics. ``stack_critics``: the shared
    critics of several seeds that do not exist yet are trained together as one stacked model. ``stack_seeds``: that,
    and every algorithm's new runs of several seeds are trained together, stage by stage, wherever the stage has a
    vectorized form (:func:`genpolicy.train.train_stacked`). Both equal their single runs up to batched-matmul
    rounding."""
    from .rl.datasets import load_dataset

    from .rl.algos import ALGORITHMS

    out = Path(out)
    sets = list(sets or [])
    known = {f.name for a in algos for f in dataclasses.fields(ALGORITHMS[a].Config)}
    unknown = sorted({k.split("=", 1)[0].strip() for k in sets} - known)
    if unknown:  # a --set key no algorithm has would otherwise be dropped without a word
        raise ValueError(f"--set key(s) {unknown} are fields of none of {algos}")
    if label is not None and (len(algos) != 1 or not label or "/" in label or label in ("critic",)):
        raise ValueError(f"--label {label!r} names one algorithm's variant: give one --algos and a plain name")
    folders = {a: label or a for a in algos}

    def run_dir(algo, seed):
        cfg, names = _config(algo, budget, task, sets + [f"seed={seed}"])
        d = out / task.name / folders[algo] / f"seed-{seed}"
        _check_same_settings(d, algo, cfg, share_critic and _critic_key(cfg) is not None)
        return cfg, names, d

    for task in tasks:
        ds = None
        if (stack_critics or stack_seeds) and share_critic:
            wanted = [cfg for seed in seeds for algo in algos
                      for cfg in [_config(algo, budget, task, sets + [f"seed={seed}"])[0]]
                      if not (out / task.name / folders[algo] / f"seed-{seed}" / "checkpoint.pt").exists()]
            if wanted:
                ds = load_dataset(task.dataset)
                _stack_new_critics(task, wanted, out, ds, progress)
        if stack_seeds:  # new runs (no checkpoint) of several seeds: together; the others alone below
            for algo in algos:
                new = [r for r in (run_dir(algo, seed) for seed in seeds) if not (r[2] / "checkpoint.pt").exists()]
                if len(new) > 1:
                    ds = ds if ds is not None else load_dataset(task.dataset)
                    starts = [_start(algo, cfg, names, task, d, out, ds, share_critic, progress)
                              for cfg, names, d in new]
                    _run_stacked(algo, starts, task, ds, progress)
        for seed in seeds:
            for algo in algos:
                cfg, names, d = run_dir(algo, seed)
                if _finished(d):
                    continue
                ds = ds if ds is not None else load_dataset(task.dataset)
                cfg, d, meta, state = _start(algo, cfg, names, task, d, out, ds, share_critic, progress)
                _run(algo, cfg, task, d, ds, meta, progress, state)
    tasks, columns = everything_in(out, tasks, list(folders.values()))
    table = write_table(collect(out, tasks, columns), out)
    for task in tasks:
        plot_curves(out, task, columns)
    return table


def everything_in(out: str | Path, tasks: list[Task], algos: list[str]) -> tuple[list[Task], list[str]]:
    """The tasks and algorithm folders to tabulate: the ones asked for first, then every other one in ``out`` that
    holds a finished run, so that a second ``bench`` into the same folder (other algorithms, a ``--label``
    variant) rewrites the table with all of them instead of replacing it with its own."""
    out = Path(out)
    done = sorted({f.parent.parent for f in out.glob("*/*/seed-*/summary.json") if f.parent.parent.name != "critic"})
    names = {t.name for t in tasks}
    tasks = list(tasks) + [Task(n, None) for n in sorted({d.parent.name for d in done} - names)]
    return tasks, list(dict.fromkeys(list(algos) + [d.name for d in done]))


def act_latency(run_dir: Path, repeats: int = 20) -> float:
    """Median milliseconds of one eager ``act`` on one observation (the data's mean) of the run's final policy,
    measured once and kept in ``act_latency.json`` (with the torch version and thread count it was measured with)."""
    import time

    import torch

    from .checkpoint import atomic_write
    from .policy import load_policy

    f = run_dir / "act_latency.json"
    if f.exists():
        return json.loads(f.read_text())["ms_batch1"]
    policy = load_policy(run_dir / "checkpoint.pt")
    obs = policy.normalizer.mean.numpy()[None].astype(np.float32)
    times = []
    for i in range(repeats + 3):  # 3 warm-up calls
        t = time.perf_counter()
        policy.act(obs, compiled=False)
        if i >= 3:
            times.append(time.perf_counter() - t)
    ms = round(1e3 * float(np.median(times)), 2)
    info = {"ms_batch1": ms, "repeats": repeats, "torch": torch.__version__, "threads": torch.get_num_threads()}
    atomic_write(f, lambda fh: fh.write(json.dumps(info, indent=1).encode()))
    return ms


def _seed_seconds(summary: dict) -> float:
    """A run's share of training time: a run trained with other seeds as one model (``--stack-seeds``) counts its
    share of the time they shared (``seed_seconds``; summaries written before it was recorded were stacked whole,
    so their time is split evenly)."""
    if "seed_seconds" in summary:
        return summary["seed_seconds"] or 0.0
    return (summary.get("wall_seconds") or 0.0) / len(summary.get("stacked_seeds") or [0])


def collect(out: str | Path, tasks: list[Task], algos: list[str]) -> list[dict]:
    """One row per (task, algorithm): final scores of the finished seeds, mean and standard error, train minutes
    (per seed and their mean) and batch-1 act latency."""
    from .rl.datasets import available_datasets

    data_scores = {r["name"]: r.get("score_mean") for r in available_datasets()}
    rows = []
    for task in tasks:
        for algo in algos:
            scores, seeds, secs, act_ms, warned = [], [], [], [], []
            for f in sorted((Path(out) / task.name / algo).glob("seed-*/summary.json")):
                s = json.loads(f.read_text())
                if s.get("final_score") is not None:
                    scores.append(s["final_score"])
                    seeds.append(int(f.parent.name.split("-")[1]))
                    secs.append(_seed_seconds(s))
                    act_ms.append(act_latency(f.parent))
                    warned += [{"seed": seeds[-1], **w} for w in s.get("warnings", [])]
            n = len(scores)
            rows.append({"task": task.name, "algo": algo, "seeds": seeds, **score_stats(scores),
                         "scores": scores, "data_score": data_scores.get(task.name),
                         "seed_minutes": [x / 60 for x in secs],
                         "train_minutes": round(float(np.mean(secs)) / 60, 1) if n else None,
                         "act_ms": round(float(np.median(act_ms)), 2) if n else None, "warnings": warned})
    return rows


def score_stats(scores: list[float]) -> dict:
    """``n``, ``mean`` and the standard error ``se`` of seeds' scores (None where there are too few)."""
    n = len(scores)
    return {"n": n, "mean": float(np.mean(scores)) if n else None,
            "se": float(np.std(scores, ddof=1) / math.sqrt(n)) if n > 1 else None}


def score_cell(r: dict | None) -> str:
    """A table cell: ``mean ± se (n)`` of :func:`score_stats` (``-`` without scores)."""
    if not r or r["mean"] is None:
        return "-"
    se = f" ± {r['se']:.1f}" if r["se"] is not None else ""
    return f"{r['mean']:.1f}{se} ({r['n']})"


def _cost(r) -> str:
    if not r or r["mean"] is None:
        return "-"
    act = "-" if r.get("act_ms") is None else f"{r['act_ms']:g} ms"
    return f"{r['train_minutes']:g} min / {act}"


def write_table(rows: list[dict], out: str | Path) -> Path:
    """``results.md`` (tasks as rows, algorithms as columns, mean +- s.e. (n)) and ``results.csv`` (one row per
    task and algorithm, with every seed's score)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    algos = list(dict.fromkeys(r["algo"] for r in rows))
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    by = {(r["task"], r["algo"]): r for r in rows}

    lines = ["| task | data | " + " | ".join(algos) + " |", "|---|---|" + "---|" * len(algos)]
    for t in tasks:
        ds = next((by[(t, a)]["data_score"] for a in algos if (t, a) in by), None)
        lines.append(f"| {t} | {'-' if ds is None else f'{ds:.1f}'} | "
                     + " | ".join(score_cell(by.get((t, a))) for a in algos) + " |")
    lines += ["", "Final D4RL-normalized score, mean ± standard error over seeds (number of seeds); "
                  "data: the dataset's own mean normalized score.", "",
              "| task | " + " | ".join(algos) + " |", "|---|" + "---|" * len(algos)]
    for t in tasks:
        lines.append(f"| {t} | " + " | ".join(_cost(by.get((t, a))) for a in algos) + " |")
    lines += ["", "Cost: training minutes per seed (wall time, this machine; seeds trained as one model share "
                  "theirs) / milliseconds per act call on one observation (eager, median of 20)."]
    warned = [(r, w) for r in rows for w in r.get("warnings", [])]
    if warned:  # what the runs' stage monitors flagged (summary.json "warnings"), so a score is read with it
        lines += ["", "Warnings and notes recorded during training:", ""]
        data_notes = dict.fromkeys((r["task"], w["message"]) for r, w in warned if w["stage"] == "data")
        lines += [f"- {t} (every run on this data): {m}" for t, m in data_notes]  # once per task, not per run
        lines += [f"- {r['task']} {r['algo']} seed {w['seed']} ({w['stage']} step {w['step']}): {w['message']}"
                  for r, w in warned if w["stage"] != "data"]
    from .checkpoint import atomic_write

    md = out / "results.md"
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["task", "algo", "n", "mean", "se", "data_score", "train_minutes", "act_ms", "seeds", "scores"])
    for r in rows:
        w.writerow([r["task"], r["algo"], r["n"], r["mean"], r["se"], r["data_score"], r["train_minutes"],
                    r.get("act_ms"), " ".join(map(str, r["seeds"])), " ".join(f"{s:.3f}" for s in r["scores"])])
    # atomic: two suites writing into one folder leave one whole table, never a mix
    atomic_write(md, lambda fh: fh.write(("\n".join(lines) + "\n").encode()))
    atomic_write(out / "results.csv", lambda fh: fh.write(buf.getvalue().encode()))
    return md


def plot_curves(out: str | Path, task: Task, algos: list[str]) -> Path | None:
    """``curves-TASK.png``: evaluation score against step per algorithm, mean over seeds with a shaded s.e."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import mean_curve, read_run, save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    drew = False
    for algo in algos:
        curves = [read_run(d)["evals"] for d in sorted((Path(out) / task.name / algo).glob("seed-*"))
                  if (d / "metrics.jsonl").exists()]
        curves = [{step: score for _, step, score in c} for c in curves if c]
        got = mean_curve(curves)
        if got is None:
            continue
        steps, mean, se = got
        ax.plot(steps, mean, marker=".", label=f"{algo} ({len(curves)} seeds)")
        ax.fill_between(steps, mean - se, mean + se, alpha=0.2)
        drew = True
    if not drew:
        plt.close(fig)
        return None
    from .rl.datasets import available_datasets

    data = next((r.get("score_mean") for r in available_datasets() if r["name"] == task.name), None)
    if data is not None:
        ax.axhline(data, ls="--", color="0.35", lw=1, label="the data's own score")
    ax.set(title=f"{task.name}", xlabel="step of the evaluating stage", ylabel="score (D4RL-normalized)")
    ax.legend(fontsize=8, loc="best")
    return save_figure(fig, Path(out) / f"curves-{task.name}.png")
