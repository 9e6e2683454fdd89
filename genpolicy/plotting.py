"""Learning curves of training runs: evaluation scores against steps (with the data's own score) and every loss
per stage, several runs overlaid and labelled (``genpolicy plot``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

__all__ = ["read_run", "plot_runs", "save_figure"]


def read_run(run_dir: str | Path) -> dict:
    """A run folder's logs: ``{"name", "dataset", "algo", "evals": [(stage, step, score)], "metrics": {stage:
    {metric: [(step, value)]}}}``. Raises FileNotFoundError when the folder holds no run."""
    import yaml

    d = Path(run_dir)
    if not (d / "metrics.jsonl").exists():
        raise FileNotFoundError(f"{d} holds no run (no metrics.jsonl)")
    cfg = yaml.safe_load((d / "config.yaml").read_text()) if (d / "config.yaml").exists() else {}
    metrics: dict[str, dict[str, list]] = {}
    for line in (d / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        stage, step = row.pop("stage"), row.pop("step")
        for k, v in row.items():
            metrics.setdefault(stage, {}).setdefault(k, []).append((step, v))
    evals = []
    if (d / "evals.csv").exists():
        with open(d / "evals.csv") as f:
            evals = [(r["stage"], int(r["step"]), float(r["score"])) for r in csv.DictReader(f)]
    return {"name": d.name, "dataset": cfg.get("dataset"), "algo": cfg.get("algo"), "evals": evals,
            "metrics": metrics}


def _data_score(dataset: str | None) -> float | None:
    from .rl.datasets import available_datasets

    for row in available_datasets() if dataset else []:
        if row["name"] == dataset:
            return row.get("score_mean")
    return None


def plot_runs(run_dirs: list[str | Path], out: str | Path) -> Path:
    """Write ``out`` (PNG): the evaluation score per run against its evaluating stage's step, a dashed line at each
    dataset's own normalized score, and one panel per stage with every metric whose name contains ``loss``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [read_run(d) for d in run_dirs]
    stages = list(dict.fromkeys(s for r in runs for s in r["metrics"]))
    fig, axes = plt.subplots(1, 1 + len(stages), figsize=(4.6 * (1 + len(stages)), 4.0), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ax = axes[0][0]
    for i, r in enumerate(runs):
        label = f"{r['name']} ({r['algo']})"
        if r["evals"]:
            ax.plot([e[1] for e in r["evals"]], [e[2] for e in r["evals"]], "o-", ms=3, color=colors[i % 10],
                    label=label)
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
                pts = r["metrics"][stage][name]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], styles[k % 4], marker=".", ms=4, color=colors[i % 10],
                        lw=1.2,
                        label=f"{r['name']}: {name}" if len(runs) > 1 else name)
        ax.set(title=f"{stage} stage losses", xlabel="step", ylabel="mean over the logging interval")
        if any(v > 0 for line in ax.lines for v in line.get_ydata()) and all(
                v > 0 for line in ax.lines for v in line.get_ydata()):
            ax.set_yscale("log")
        if ax.lines:
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
