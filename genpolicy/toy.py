"""2-D Swiss-roll demo (paper Appendix C.8): train one unconditional model per path, plot, report likelihoods.

    genpolicy toy --out runs/toy

writes ``data.png`` (the roll coloured by its value function, like Figure 2), ``samples.png`` (samples vs
data), ``trajectories.png`` (generation paths coloured by time), ``losses.png``, and ``results.json``; prints each
model's held-out log-likelihood next to a fitted single Gaussian's.

With ``rl`` on (the default) it also trains, on the roll's value function (Appendix C.8), GMPO (advantage-weighted
flow matching from scratch, Eq 7) and GMPG (policy gradient from a copy of the behaviour model, Eq 8), and plots
their generation trajectories beside the behaviour model's in ``rl_trajectories.png`` (the paper's Figure 3).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .analytic import gaussian_log_prob
from .generative import GenerativeModel
from .nets import MLP
from .paths import make_path

__all__ = ["swiss_roll", "roll_value", "ToyConfig", "run_toy_rl", "ToySpec", "TOY_MODELS", "build_toy_model", "train_toy_model", "run_toy", "format_table"]

ROLL_SCALE = 8.0  # raw roll coordinates span about +-14; divide so that the data has about unit spread


def swiss_roll(n: int, noise: float = 0.3, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Sample the 2-D Swiss roll with its value function (Appendix C.8).

    The roll parameter ``theta ~ 1.5 pi (1 + 2 U)``; the point is ``theta (cos theta, sin theta) + noise``,
    divided by ``ROLL_SCALE``. The value rises linearly along the spiral from -3.5 at the centre to 1.5 at
    the outer end.

    Returns:
        points ``(n, 2)`` and values ``(n,)``.
    """
    u = torch.rand(n, generator=generator)
    theta = 1.5 * math.pi * (1 + 2 * u)
    pts = torch.stack([theta * torch.cos(theta), theta * torch.sin(theta)], dim=1)
    pts = pts + noise * torch.randn(n, 2, generator=generator)
    value = -3.5 + 5.0 * u
    return pts / ROLL_SCALE, value


def roll_value(x: Tensor) -> Tensor:
    """The value function of :func:`swiss_roll` extended to the whole plane (differentiable almost everywhere).

    A roll point's radius is its parameter theta, so the value is read from the radius:
    ``-3.5 + 5 clip((|x| ROLL_SCALE / (1.5 pi) - 1) / 2, 0, 1)``.
    """
    u = ((x.norm(dim=-1) * ROLL_SCALE / (1.5 * math.pi)) - 1.0) / 2.0
    return -3.5 + 5.0 * u.clamp(0.0, 1.0)


@dataclass
class ToySpec:
    """One model of the demo: a path, how it is trained, and its network output."""

    name: str
    path: str
    param: str = "velocity"
    loss: str = "flow"
    weighting: str = "vanilla"
    coupling: str = "independent"
    path_kwargs: dict = field(default_factory=dict)


TOY_MODELS = {
    "VP-SDE": ToySpec("VP-SDE", "vpsde"),
    "GVP": ToySpec("GVP", "gvp"),
    "Linear": ToySpec("Linear", "linear"),
    "I-CFM": ToySpec("I-CFM", "icfm", path_kwargs={"sigma": 0.0}),
    "OT-CFM": ToySpec("OT-CFM", "icfm", coupling="ot", path_kwargs={"sigma": 0.0}),
    "SF2M": ToySpec("SF2M", "sf2m", coupling="ot", path_kwargs={"sigma": 0.5}),
}


@dataclass
class ToyConfig:
    """Swiss-roll demo settings."""

    out: str = "runs/toy"
    """folder for the plots and results.json"""
    models: tuple[str, ...] = tuple(TOY_MODELS)
    """which models to train (names as in TOY_MODELS)"""
    train_steps: int = 3000
    """optimizer steps per model"""
    batch_size: int = 256
    """training batch size"""
    lr: float = 3e-3
    """Adam learning rate (cosine-decayed to 1/20 of it)"""
    hidden: int = 128
    """width of the 3-layer MLP"""
    n_train: int = 20000
    """training points"""
    n_test: int = 2000
    """held-out points for the log-likelihood"""
    sample_solver: str = "euler"
    """solver for samples and trajectories"""
    sample_steps: int = 64
    """steps for samples and trajectories"""
    ll_steps: int = 32
    """RK4 steps for the held-out log-likelihood"""
    seed: int = 0
    """random seed"""
    rl: bool = True
    """also train GMPO and GMPG on the roll's value function and plot them (Figure 3)"""
    rl_model: str = "GVP"
    """behaviour model for GMPG and the path used by GMPO (a TOY_MODELS name)"""
    rl_beta: float = 1.0
    """temperature beta of both GMPO (weights exp(beta V)) and GMPG (-beta V + KL)"""
    gmpg_steps: int = 150
    """GMPG policy-gradient steps"""
    gmpg_batch_size: int = 128
    """samples per GMPG step"""
    gmpg_solver: str = "midpoint"
    """solver of GMPG's training solves (Euler's O(h) error biases the KL estimate: -0.9 nats at 16 steps)"""
    gmpg_solver_steps: int = 16
    """steps of GMPG's training solves"""
    gmpg_lr: float = 3e-4
    """GMPG learning rate"""
    plots: bool = True
    """write PNG plots"""
    progress: bool = True
    """show progress bars"""


def build_toy_model(spec: ToySpec, hidden: int) -> GenerativeModel:
    """A 2-D unconditional model for ``spec`` with a 3-layer MLP."""
    net = MLP(2, 0, hidden=(hidden, hidden, hidden), emb_dim=32, t_scale=4.0)
    return GenerativeModel(net, make_path(spec.path, **spec.path_kwargs), (2,), param=spec.param,
                           coupling=spec.coupling)


def train_toy_model(spec: ToySpec, data: Tensor, cfg: ToyConfig, position: int = 0,
                    weights: Tensor | None = None, label: str | None = None) -> tuple[GenerativeModel, list]:
    """Train one model by its matching loss; returns the model and the loss every 25 steps.

    ``weights`` (one per data point) turn the loss into GMPO's weighted matching loss (Eq 7).
    """
    from tqdm.auto import tqdm

    model = build_toy_model(spec, cfg.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)  # fused: ~25% faster steps on CPU
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.train_steps, eta_min=cfg.lr / 20)
    losses, running = [], torch.zeros(())
    bar = tqdm(range(cfg.train_steps), desc=f"{label or spec.name:7s}", disable=not cfg.progress, leave=True,
               position=position, dynamic_ncols=True, mininterval=0.5)
    for step in bar:
        idx = torch.randint(0, data.shape[0], (cfg.batch_size,))
        per = model.matching_loss(data[idx], kind=spec.loss, weighting=spec.weighting)
        loss = (per * weights[idx]).mean() if weights is not None else per.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running = running + loss.detach()
        if (step + 1) % 25 == 0:
            avg = float(running) / 25  # one host sync every 25 steps
            losses.append((step + 1, avg))
            running = torch.zeros(())
            bar.set_postfix(loss=f"{avg:.3f}")
    bar.close()
    return model, losses


def run_toy(cfg: ToyConfig) -> dict:
    """Train every model in ``cfg.models``, evaluate held-out log-likelihoods, write plots and results."""
    unknown = [m for m in cfg.models if m not in TOY_MODELS]
    if unknown:
        raise ValueError(f"unknown toy model(s) {unknown}; expected some of {list(TOY_MODELS)}")
    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    train, value = swiss_roll(cfg.n_train, generator=gen)
    test, _ = swiss_roll(cfg.n_test, generator=gen)
    mean, cov = train.mean(0), torch.cov(train.T)
    results = {"gaussian_fit": float(gaussian_log_prob(test, mean, cov).mean()), "models": {}}

    models, curves = {}, {}
    for i, name in enumerate(cfg.models):
        t0 = time.perf_counter()
        model, losses = train_toy_model(TOY_MODELS[name], train, cfg)
        train_s = time.perf_counter() - t0
        model.eval()
        ll = model.log_prob(test, divergence="exact", solver="rk4", steps=cfg.ll_steps)
        results["models"][name] = {"heldout_log_likelihood": float(ll.mean()),
                                   "heldout_log_likelihood_se": float(ll.std() / math.sqrt(len(ll))),
                                   "train_seconds": round(train_s, 2), "spec": asdict(TOY_MODELS[name])}
        models[name], curves[name] = model, losses

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.plots:
        _plot(out, train, value, models, curves, cfg, results)
    if cfg.rl:
        results["rl"] = run_toy_rl(cfg, train, models, out)
    results["wall_seconds"] = round(time.perf_counter() - t_start, 2)
    results["config"] = asdict(cfg)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def _nn_distance(x: Tensor, data: Tensor) -> Tensor:
    """Distance from each row of ``x`` to its nearest data point."""
    return torch.cdist(x, data).min(dim=1).values


def run_toy_rl(cfg: ToyConfig, train: Tensor, models: dict, out: Path) -> dict:
    """GMPO and GMPG on the roll's value function; returns value and on-roll statistics of each model's samples.

    GMPO trains a fresh ``rl_model`` by flow matching weighted by ``min(exp(beta V), 100)``. GMPG copies the
    behaviour model (trained above, or now) and takes ``gmpg_steps`` steps of Eq 8 with Q = V, gradient through
    a ``gmpg_solver_steps``-step solve and exact divergences.
    """
    from tqdm.auto import tqdm

    from .rl.algos.gmpg import gmpg_terms
    from .rl.algos.gmpo import advantage_weights

    if cfg.rl_model not in TOY_MODELS:
        raise ValueError(f"unknown rl_model {cfg.rl_model!r}; expected one of {list(TOY_MODELS)}")
    spec = TOY_MODELS[cfg.rl_model]
    t0 = time.perf_counter()
    behaviour = models.get(cfg.rl_model)
    if behaviour is None:
        behaviour, _ = train_toy_model(spec, train, cfg)
    behaviour = behaviour.eval().requires_grad_(False)
    w = advantage_weights(roll_value(train), cfg.rl_beta, 100.0)
    gmpo, _ = train_toy_model(spec, train, cfg, weights=w / w.mean(), label="GMPO")
    gmpo_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    gmpg = build_toy_model(spec, cfg.hidden)
    gmpg.load_state_dict(behaviour.state_dict())
    opt = torch.optim.Adam(gmpg.parameters(), lr=cfg.gmpg_lr)
    history = []
    bar = tqdm(range(cfg.gmpg_steps), desc="GMPG   ", disable=not cfg.progress, dynamic_ncols=True, mininterval=0.5)
    for step in bar:
        tr = gmpg_terms(gmpg, behaviour, lambda c, a: roll_value(a), None, cfg.rl_beta, cfg.gmpg_solver,
                        cfg.gmpg_solver_steps, "exact", n=cfg.gmpg_batch_size)
        loss = tr["loss"].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gmpg.parameters(), 10.0)
        opt.step()
        if (step + 1) % 25 == 0 or step + 1 == cfg.gmpg_steps:
            rec = {"step": step + 1, "loss": loss.item(), "q": tr["q"].mean().item(), "kl": tr["kl"].mean().item()}
            history.append(rec)
            bar.set_postfix(q=f"{rec['q']:.2f}", kl=f"{rec['kl']:.2f}")
    bar.close()
    gmpg.eval()
    gmpg_s = time.perf_counter() - t1

    torch.manual_seed(cfg.seed + 2)
    stats = {}
    trajs = {}
    for name, model in (("behaviour", behaviour), ("GMPO", gmpo), ("GMPG", gmpg)):
        traj = model.sample_trajectory(n=2000, solver=cfg.sample_solver, steps=cfg.sample_steps)
        x = traj.xs[-1]
        d = _nn_distance(x, train)
        stats[name] = {"value_mean": float(roll_value(x).mean()), "nn_distance_mean": float(d.mean()),
                       "on_roll_fraction": float((d < 0.1).float().mean())}
        trajs[name] = traj
    res = {"beta": cfg.rl_beta, "model": cfg.rl_model, "gmpo_seconds": round(gmpo_s, 2),
           "gmpg_seconds": round(gmpg_s, 2), "samples": stats, "gmpg_history": history,
           "data_value_mean": float(roll_value(train).mean())}
    if cfg.plots:
        _plot_rl(out, train, trajs, stats)
    return res


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


def _plot_rl(out: Path, train: Tensor, trajs: dict, stats: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(trajs), figsize=(4.4 * len(trajs), 4.6), squeeze=False)
    for ax, (name, traj) in zip(axes[0], trajs.items()):
        st = stats[name]
        sc = _draw_trajectories(ax, train, traj.xs[:, :300], traj.times,
                                f"{name}: mean V {st['value_mean']:.2f}, on roll {100 * st['on_roll_fraction']:.0f}%",
                                alpha=0.5, ends=traj.xs[-1], end_size=2, end_color=roll_value(traj.xs[-1]),
                                end_kw={"cmap": "viridis", "vmin": -3.5, "vmax": 1.5})
    fig.colorbar(sc, ax=axes[0].tolist(), label="t (1 = noise, 0 = data)", shrink=0.8)
    fig.savefig(out / "rl_trajectories.png", dpi=110)
    plt.close(fig)


def format_table(results: dict) -> str:
    """Held-out log-likelihood table (nats per point, higher is better)."""
    lines = [f"{'model':10s} {'held-out log-lik':>17s} {'± s.e.':>8s} {'train s':>8s}",
             f"{'Gaussian':10s} {results['gaussian_fit']:17.3f} {'':>8s} {'':>8s}"]
    for name, r in results["models"].items():
        lines.append(f"{name:10s} {r['heldout_log_likelihood']:17.3f} {r['heldout_log_likelihood_se']:8.3f} "
                     f"{r['train_seconds']:8.1f}")
    if "rl" in results:
        rl = results["rl"]
        lines += ["", f"value function (beta={rl['beta']}, {rl['model']}; data mean V {rl['data_value_mean']:.2f})",
                  f"{'model':10s} {'mean V':>8s} {'on roll':>8s} {'nn dist':>8s}"]
        for name, st in rl["samples"].items():
            lines.append(f"{name:10s} {st['value_mean']:8.2f} {100 * st['on_roll_fraction']:7.0f}% "
                         f"{st['nn_distance_mean']:8.3f}")
    return "\n".join(lines)


def _plot(out: Path, train: Tensor, value: Tensor, models: dict, curves: dict, cfg: ToyConfig, results: dict):
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
    axes[0][0].legend(loc="lower left", markerscale=4)
    fig2.colorbar(sc, ax=axes2, label="t (1 = noise, 0 = data)", shrink=0.8)
    fig.tight_layout()
    fig.savefig(out / "samples.png", dpi=110)
    fig2.savefig(out / "trajectories.png", dpi=110)
    plt.close(fig)
    plt.close(fig2)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, c in curves.items():
        if c:
            steps, vals = zip(*c)
            ax.plot(steps, vals, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("matching loss (25-step mean)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "losses.png", dpi=110)
    plt.close(fig)
