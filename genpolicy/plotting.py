"""Learning curves of training runs: evaluation scores against steps (with the data's own score) and every loss
per stage, several runs overlaid and labelled (``genpolicy plot``); a folder of seeds' runs (``seed-K/``) as one
curve, the mean over seeds with a shaded standard error."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

__all__ = ["read_run", "seed_runs", "mean_curve", "plot_runs", "save_figure"]


def _complete_lines(path: Path) -> list[str]:
    """The file's lines that end in a newline: a live run may be writing its last line as this reads, and a killed
    one may have left it half written (its resume truncates it)."""
    return path.read_text().split("\n")[:-1]


def read_run(run_dir: str | Path) -> dict:
    """A run folder's logs: ``{"name", "dataset", "algo", "evals": [(stage, step, score)], "metrics": {stage:
    {metric: [(step, value)]}}}``. Raises FileNotFoundError when the folder holds no run."""
    import yaml

    d = Path(run_dir)
    if not (d / "metrics.jsonl").exists():
        raise FileNotFoundError(f"{d} holds no run (no metrics.jsonl)")
    cfg = yaml.safe_load((d / "config.yaml").read_text()) if (d / "config.yaml").exists() else {}
    metrics: dict[str, dict[str, list]] = {}
    for number, line in enumerate(_complete_lines(d / "metrics.jsonl"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise ValueError(f"{d / 'metrics.jsonl'}, line {number}: not a metrics row ({e}); the file is damaged "
                             f"(a crash mid-write, or bytes not written by genpolicy)") from None
        stage, step = row.pop("stage"), row.pop("step")
        for k, v in row.items():
            metrics.setdefault(stage, {}).setdefault(k, []).append((step, v))
    evals = []
    if (d / "evals.csv").exists():
        rows = csv.DictReader(_complete_lines(d / "evals.csv"))
        evals = [(r["stage"], int(r["step"]), float(r["score"])) for r in rows]
    return {"name": d.name, "dataset": cfg.get("dataset"), "algo": cfg.get("algo"), "evals": evals,
            "metrics": metrics}


def seed_runs(path: str | Path) -> list[Path]:
    """The seeds' run folders (``seed-K``, ordered by K) in ``path`` when it is a folder of them (``genpolicy train
    --seeds``, a ``genpolicy bench`` algorithm folder) rather than a run itself; [] otherwise."""
    d = Path(path)
    if not d.is_dir() or any((d / f).exists() for f in ("checkpoint.pt", "metrics.jsonl")):
        return []
    runs = [r for r in d.glob("seed-*") if r.name[5:].isdigit()
            and any((r / f).exists() for f in ("checkpoint.pt", "metrics.jsonl"))]
    return sorted(runs, key=lambda r: int(r.name[5:]))


def mean_curve(curves: list[dict]) -> tuple[list, np.ndarray, np.ndarray] | None:
    """Mean and standard error over ``curves`` (each ``{step: value}``) at the steps all of them have (s.e. 0 for
    one curve); None when they share no step."""
    curves = [c for c in curves if c]
    steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    if not steps:
        return None
    ys = np.array([[c[s] for s in steps] for c in curves], dtype=float)
    se = ys.std(0, ddof=1) / np.sqrt(len(ys)) if len(ys) > 1 else np.zeros(len(steps))
    return steps, ys.mean(0), se


def _data_score(dataset: str | None) -> float | None:
    from .rl.datasets import available_datasets

    for row in available_datasets() if dataset else []:
        if row["name"] == dataset:
            return row.get("score_mean")
    return None


def _read(path) -> dict:
    """A run (``read_run``), or a folder of seeds' runs as one entry whose curves are means over the seeds."""
    members = seed_runs(path)
    if not members:
        return read_run(path)
    runs = [read_run(m) for m in members]
    # which stages, metrics and evaluations there are: the first seed's; the curves are means over "seeds" (_curve)
    return {**runs[0], "name": f"{Path(path).name} ({len(runs)} seeds)", "seeds": runs}


def _curve(run: dict, what: str, stage: str | None = None, name: str | None = None):
    """``(steps, values, s.e. or None)`` of a run's evaluation scores (``what="evals"``) or of one logged metric;
    for a folder of seeds, the mean and s.e. over them."""
    def one(r):
        if what == "evals":
            return {e[1]: e[2] for e in r["evals"]}
        return dict(r["metrics"].get(stage, {}).get(name, []))

    if "seeds" not in run:
        c = one(run)
        return sorted(c), [c[k] for k in sorted(c)], None
    got = mean_curve([one(r) for r in run["seeds"]])
    return (got[0], list(got[1]), got[2]) if got else ([], [], None)


def plot_runs(run_dirs: list[str | Path], out: str | Path) -> Path:
    """Write ``out`` (PNG): the evaluation score per run against its evaluating stage's step, a dashed line at each
    dataset's own normalized score, one panel per stage with every metric whose name contains ``loss``, and the
    held-out log-likelihood of the data's actions where runs logged it (``heldout_transitions``). A
    folder of seeds' runs (``seed-K/``) is one entry: the mean over its seeds, shaded ± one standard error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [_read(d) for d in run_dirs]
    stages = list(dict.fromkeys(s for r in runs for s in r["metrics"]))
    held = [(r, st) for r in runs for st in r["metrics"] if "heldout_logp" in r["metrics"][st]]
    panels = 1 + len(stages) + bool(held)
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 4.0), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def draw(ax, x, y, se, color, label, style="-", marker="o", ms=3):
        ax.plot(x, y, style, marker=marker, ms=ms, color=color, lw=1.2, label=label)
        if se is not None:
            ax.fill_between(x, np.asarray(y) - se, np.asarray(y) + se, color=color, alpha=0.2)

    ax = axes[0][0]
    for i, r in enumerate(runs):
        x, y, se = _curve(r, "evals")
        if x:
            draw(ax, x, y, se, colors[i % 10], f"{r['name']} ({r['algo']})")
    for k, ds in enumerate(dict.fromkeys(r["dataset"] for r in runs)):
        score = _data_score(ds)
        if score is not None:
            ax.axhline(score, ls=["--", ":", "-."][k % 3], color="0.35", lw=1, label=f"data's own score: {ds}")
    ax.set(title="evaluation score", xlabel="step of the evaluating stage", ylabel="score (D4RL-normalized)")
    if not any(r["evals"] for r in runs):
        ax.text(0.5, 0.5, "no evaluations\n(trained without --env)", ha="center", va="center", transform=ax.transAxes)
    if ax.lines:
        ax.legend(fontsize=7, loc="best")
    styles = ["-", "--", ":", "-."]
    for j, stage in enumerate(stages, start=1):
        ax = axes[0][j]
        for i, r in enumerate(runs):
            losses = [k for k in r["metrics"].get(stage, {}) if "loss" in k]
            for k, name in enumerate(losses):
                x, y, se = _curve(r, "metrics", stage, name)
                draw(ax, x, y, se, colors[i % 10], f"{r['name']}: {name}" if len(runs) > 1 else name,
                     styles[k % 4], ".", 4)
        ax.set(title=f"{stage} stage losses", xlabel="step", ylabel="mean over the logging interval")
        if any(v > 0 for line in ax.lines for v in line.get_ydata()) and all(
                v > 0 for line in ax.lines for v in line.get_ydata()):
            ax.set_yscale("log")
        if ax.lines:
            ax.legend(fontsize=7, loc="best")
    if held:  # the paper's Figure 1: the data's actions under the policy, on transitions held out of training
        ax = axes[0][-1]
        for r, st in held:
            i = runs.index(r)
            x, y, se = _curve(r, "metrics", st, "heldout_logp")
            draw(ax, x, y, se, colors[i % 10], f"{r['name']} ({r['algo']}, {st})")
        ax.set(title="held-out log-likelihood of the data's actions", xlabel="step of the evaluating stage",
               ylabel="mean log pi(a|s), nats")
        ax.legend(fontsize=7, loc="best")
    return save_figure(fig, out)


def save_figure(fig, out: str | Path, dpi: int = 110) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
