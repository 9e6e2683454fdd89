"""Plots of the Swiss-roll demo (:mod:`genpolicy.demos.toy`): data, samples, generation trajectories, losses, and
the RL models' trajectories (the paper's Figures 2-3)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["plot_models", "plot_rl"]


def _draw_trajectories(ax, train: Tensor, xs: Tensor, times: Tensor, title: str, alpha: float, ends: Tensor,
                       end_size: float, end_color, end_kw: dict | None = None):
    """Generation paths ``xs`` ``(steps+1, n, 2)`` coloured by t over the grey data, and the points ``ends``."""
    ts = times.expand(xs.shape[1], -1).T
    ax.scatter(train[:3000, 0], train[:3000, 1], s=1, c="0.85", zorder=0)
    sc = ax.scatter(xs[..., 0].flatten(), xs[..., 1].flatten(), c=ts.flatten(), cmap="plasma", s=0.3, vmin=0, vmax=1,
                    alpha=alpha, zorder=1)
    ax.scatter(ends[:, 0], ends[:, 1], s=end_size, c=end_color, zorder=2, **(end_kw or {}))
    ax.set_title(title)
    ax.set_xlim(-3, 3)
    ax.set_ylim(-3, 3)
    ax.set_aspect("equal")
    return sc


def plot_rl(out: Path, train: Tensor, trajs: dict, stats: dict, value_fn) -> None:
    """``rl_trajectories.png``: each RL model's generation paths, its samples coloured by value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(trajs), figsize=(4.6 * len(trajs), 5.4), squeeze=False, layout="constrained")
    for ax, (name, traj) in zip(axes[0], trajs.items()):
        st = stats[name]
        sc = _draw_trajectories(ax, train, traj.xs[:, :300], traj.times,
                                f"{name}\nmean V {st['value_mean']:.2f}, on roll {100 * st['on_roll_fraction']:.0f}%",
                                alpha=0.5, ends=traj.xs[-1], end_size=2, end_color=value_fn(traj.xs[-1]),
                                end_kw={"cmap": "viridis", "vmin": -3.5, "vmax": 1.5})
    fig.colorbar(sc, ax=axes[0].tolist(), label="path colour: t (1 = noise, 0 = data)", shrink=0.8)
    fig.get_layout_engine().set(h_pad=0.15)
    fig.text(0.5, 0.005, "Paths: 300 generations from noise; dots: 2000 samples coloured by the value V (yellow high). "
             "mean V: the samples' mean value. on roll: share of samples\nwithin 0.1 of a training point "
             "(grey: the data). The paper's Figure 3: GMPO and GMPG should move mass to high V while staying on "
             "the roll.", ha="center", va="bottom", fontsize=8, wrap=True)
    fig.savefig(out / "rl_trajectories.png", dpi=110)
    plt.close(fig)


def plot_models(out: Path, train: Tensor, value: Tensor, models: dict, curves: dict, cfg, results: dict) -> None:
    """``data.png``, ``samples.png``, ``trajectories.png`` and ``losses.png`` of the path models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5))
    sc = ax.scatter(train[:4000, 0], train[:4000, 1], c=value[:4000], cmap="viridis", s=3)
    fig.colorbar(sc, ax=ax, label="value")
    ax.set_title("Swiss roll and its value function")
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(out / "data.png", dpi=110)
    plt.close(fig)

    n = len(models)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    torch.manual_seed(cfg.seed + 1)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.2 * rows), squeeze=False)
    fig2, axes2 = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.2 * rows), squeeze=False)
    for k, (name, model) in enumerate(models.items()):
        ax, ax2 = axes[k // cols][k % cols], axes2[k // cols][k % cols]
        x = model.sample(n=2000, solver=cfg.sample_solver, steps=cfg.sample_steps)
        ax.scatter(train[:2000, 0], train[:2000, 1], s=2, c="0.75", label="data")
        ax.scatter(x[:, 0], x[:, 1], s=2, c="tab:red", label="samples")
        ll = results["models"][name]["heldout_log_likelihood"]
        ax.set_title(f"{name}  (held-out LL {ll:.2f})")
        ax.set_xlim(-2.2, 2.2)
        ax.set_ylim(-2.2, 2.2)
        ax.set_aspect("equal")
        traj = model.sample_trajectory(n=250, solver=cfg.sample_solver, steps=cfg.sample_steps)
        sc = _draw_trajectories(ax2, train, traj.xs, traj.times, f"{name} generation (colour = t)", alpha=0.6,
                                ends=traj.xs[-1], end_size=3, end_color="k")
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
        axes2[k // cols][k % cols].axis("off")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=2, markerscale=4, fontsize=9)
    fig2.colorbar(sc, ax=axes2, label="t (1 = noise, 0 = data)", shrink=0.8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))  # room for the legend below the panels
    fig.savefig(out / "samples.png", dpi=110)
    fig2.savefig(out / "trajectories.png", dpi=110)
    plt.close(fig)
    plt.close(fig2)

    fig, ax = plt.subplots(figsize=(7.2, 4))
    for name, c in curves.items():
        if c:
            steps, vals = zip(*c)
            ax.plot(steps, vals, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("matching loss (25-step mean)")
    ax.set_yscale("log")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: never over the curves
    fig.tight_layout()
    fig.savefig(out / "losses.png", dpi=110)
    plt.close(fig)
