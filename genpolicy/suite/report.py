"""The suite's table and curves: one row per (task, algorithm) from the run folders (mean +- s.e. over seeds, the
data's own score beside it, train minutes and act latency), and learning curves per task."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import atomic_write
from ..plotting import mean_curve, read_run, save_figure
from ..policy import load_policy
from ..rl.evaluate import evaluate_many
from ..rl.datasets import available_datasets
from ..rl.envs import env_family, is_dm_control
from ..train.rundir import read_summary
from .task import Task

__all__ = ["everything_in", "act_latency", "selected_checkpoint", "HELD_OUT_SEEDS", "collect", "data_score",
           "score_stats", "score_cell", "write_table", "plot_curves"]


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


#: env seeds of the episodes a selected checkpoint is reported on: run seed + this + i (training evaluations, the
#: closing one included, reset with run seed + 10000 + i: genpolicy.train.run.evaluate_runs), so never the same
HELD_OUT_SEEDS = 20_000


def selected_checkpoint(run_dir: Path) -> dict | None:
    """The run's checkpoint selected by its evaluations (``best.pt``: the best of the in-training evaluations and
    the closing one, on episodes reset with seeds ``seed + 10000 + i``), scored again on as many episodes as the
    closing evaluation reset with held-out seeds ``seed + 20000 + i``: a score that its selection did not see.
    Computed once and kept in ``selected.json``; None for a run without evaluations."""
    f = run_dir / "selected.json"
    if f.exists():
        return json.loads(f.read_text())
    s = read_summary(run_dir)
    if s is None or not s.get("env") or s.get("best_score") is None or not (run_dir / "best.pt").exists():
        return None
    policy = load_policy(run_dir / "best.pt")
    seed, episodes = policy.cfg.seed, policy.cfg.final_eval_episodes
    policy.eval()
    res = evaluate_many([policy.act], s["env"], episodes, seeds=[seed + HELD_OUT_SEEDS],
                        policy_seeds=[seed + HELD_OUT_SEEDS + 2345])[0]
    chosen_on = [e["episodes"] for e in s.get("evals", [])]
    info = {"score": float(res.score), "score_se": res.as_dict().get("score_se"), "episodes": episodes,
            "selected_at": s.get("best_at"), "selection_score": s["best_score"],
            "selection_env_seeds": [seed + 10_000, seed + 10_000 + max(chosen_on, default=1) - 1],
            "report_env_seeds": [seed + HELD_OUT_SEEDS, seed + HELD_OUT_SEEDS + episodes - 1]}
    atomic_write(f, lambda fh: fh.write(json.dumps(info, indent=1).encode()))
    return info


def _seed_seconds(summary: dict) -> float:
    """A run's share of training time: a run trained with other seeds as one model (``--stack-seeds``) counts its
    share of the time they shared (``seed_seconds``; summaries written before it was recorded were stacked whole,
    so their time is split evenly)."""
    if "seed_seconds" in summary:
        return summary["seed_seconds"] or 0.0
    return (summary.get("wall_seconds") or 0.0) / len(summary.get("stacked_seeds") or [0])


def data_score(dataset: dict) -> float | None:
    """A dataset's own score (a row of ``available_datasets``): its mean normalized score; a DeepMind Control task's
    score is its raw return (no D4RL reference), so there its mean return."""
    if dataset.get("score_mean") is not None or not is_dm_control(dataset["name"]):
        return dataset.get("score_mean")
    return dataset.get("return_mean")


def score_words(rows: list[dict]) -> str:
    """What the scores of a table's ``rows`` (of :func:`collect`) are, from each row's environment (its task's name
    where it has none): one :func:`score_label` for all, or each label with its tasks."""
    by_label: dict[str, dict[str, None]] = {}
    for r in rows:
        by_label.setdefault(score_label(r.get("env") or r["task"]), {})[r["task"]] = None
    words = {"episode return": "episode return (raw: no D4RL reference returns for this environment)"}
    if len(by_label) == 1:
        label = next(iter(by_label))
        return words.get(label, label)
    return "score (" + "; ".join(f"{label} on {', '.join(tasks)}" for label, tasks in by_label.items()) + ")"


def score_label(env_id: str | None) -> str:
    """A plot's y label for the scores on ``env_id`` (a Gymnasium id or a dataset name): D4RL's normalization where
    its family has reference returns (success x 100 for the mazes), else the raw episode return, as
    :func:`genpolicy.rl.evaluate.evaluate` scores it."""
    fam = env_family(env_id) if env_id else None
    if fam is None:
        return "episode return"
    return "success rate (%)" if fam.endswith("maze") else "D4RL-normalized score"


def collect(out: str | Path, tasks: list[Task], algos: list[str], select: bool = True,
            latency: bool = True) -> list[dict]:
    """One row per (task, algorithm): final scores of the finished seeds, mean and standard error, train minutes
    (per seed and their mean), (``latency``) batch-1 act latency, and (``select``) the selected checkpoints'
    held-out scores (:func:`selected_checkpoint`). Without ``select`` and ``latency`` no policy is loaded."""

    data_scores = {r["name"]: data_score(r) for r in available_datasets()}
    rows = []
    for task in tasks:
        for algo in algos:
            scores, seeds, secs, act_ms, warned, chosen, chosen_seeds = [], [], [], [], [], [], []
            for f in sorted((Path(out) / task.name / algo).glob("seed-*/summary.json")):
                s = read_summary(f.parent)
                if s is None:  # torn or empty: the run is not finished (running it again finishes it)
                    print(f"{f}: not a finished run's summary; left out of the table", file=sys.stderr)
                elif s.get("final_score") is not None:
                    scores.append(s["final_score"])
                    seeds.append(int(f.parent.name.split("-")[1]))
                    secs.append(_seed_seconds(s))
                    if latency:
                        act_ms.append(act_latency(f.parent))
                    sel = selected_checkpoint(f.parent) if select else None
                    if sel is not None:
                        chosen.append(sel["score"])
                        chosen_seeds.append(seeds[-1])
                    warned += [{"seed": seeds[-1], **w} for w in s.get("warnings", [])]
            n = len(scores)
            rows.append({"task": task.name, "env": task.env, "algo": algo, "seeds": seeds, **score_stats(scores),
                         "scores": scores, "data_score": data_scores.get(task.name),
                         "seed_minutes": [x / 60 for x in secs],
                         "train_minutes": round(float(np.mean(secs)) / 60, 1) if n else None,
                         "act_ms": round(float(np.median(act_ms)), 2) if act_ms else None, "warnings": warned,
                         "selected": score_stats(chosen), "selected_scores": chosen,
                         "selected_seeds": chosen_seeds})
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
    lines += ["", f"Final {score_words(rows)}, mean ± standard error over seeds (number of seeds); data: the "
                  "dataset's own mean score, in the same unit.", "",
              "| task | " + " | ".join(algos) + " |", "|---|" + "---|" * len(algos)]
    for t in tasks:
        lines.append(f"| {t} | " + " | ".join(_cost(by.get((t, a))) for a in algos) + " |")
    if any(r.get("selected", {}).get("n") for r in rows):
        lines += ["", "| task (selected checkpoint) | " + " | ".join(algos) + " |", "|---|" + "---|" * len(algos)]
        for t in tasks:
            lines.append(f"| {t} | " + " | ".join(score_cell((by.get((t, a)) or {}).get("selected")) for a in algos)
                         + " |")
        lines += ["", "Selected: each seed's checkpoint with the best evaluation during training (the closing one "
                      "included), scored again on as many episodes reset with held-out seeds, never the episodes "
                      "it was chosen on (final scores above: the last checkpoint)."]
    lines += ["", "Cost: training minutes per seed (wall time, this machine; seeds trained as one model share "
                  "theirs) / milliseconds per act call on one observation (eager, median of 20)."]
    warned = [(r, w) for r in rows for w in r.get("warnings", [])]
    if warned:  # what the runs' stage monitors flagged (summary.json "warnings"), so a score is read with it
        lines += ["", "Warnings and notes recorded during training:", ""]
        data_notes = dict.fromkeys((r["task"], w["message"]) for r, w in warned if w["stage"] == "data")
        lines += [f"- {t} (every run on this data): {m}" for t, m in data_notes]  # once per task, not per run
        lines += [f"- {r['task']} {r['algo']} seed {w['seed']} ({w['stage']} step {w['step']}): {w['message']}"
                  for r, w in warned if w["stage"] != "data"]

    md = out / "results.md"
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["task", "algo", "n", "mean", "se", "data_score", "train_minutes", "act_ms", "seeds", "scores",
                "selected_mean", "selected_se", "selected_scores"])
    for r in rows:
        sel = r.get("selected") or {}
        w.writerow([r["task"], r["algo"], r["n"], r["mean"], r["se"], r["data_score"], r["train_minutes"],
                    r.get("act_ms"), " ".join(map(str, r["seeds"])), " ".join(f"{s:.3f}" for s in r["scores"]),
                    sel.get("mean"), sel.get("se"), " ".join(f"{s:.3f}" for s in r.get("selected_scores", []))])
    # atomic: two suites writing into one folder leave one whole table, never a mix
    atomic_write(md, lambda fh: fh.write(("\n".join(lines) + "\n").encode()))
    atomic_write(out / "results.csv", lambda fh: fh.write(buf.getvalue().encode()))
    return md


def plot_curves(out: str | Path, task: Task, algos: list[str]) -> Path | None:
    """``curves-TASK.png``: evaluation score against step per algorithm, mean over seeds with a shaded s.e."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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

    data = next((data_score(r) for r in available_datasets() if r["name"] == task.name), None)
    if data is not None:
        ax.axhline(data, ls="--", color="0.35", lw=1, label="the data's own score")
    ax.set(title=f"{task.name}", xlabel="step of the evaluating stage", ylabel=score_label(task.env or task.name))
    ax.legend(fontsize=8, loc="best")
    return save_figure(fig, Path(out) / f"curves-{task.name}.png")
