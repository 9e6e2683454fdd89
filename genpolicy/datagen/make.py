"""``genpolicy data make ENV LEVEL``: D4RL-style datasets from our own SAC behaviour agents.

Recipe (following D4RL):

- behaviour agent: SAC trained online (``genpolicy data behaviour ENV --total-steps N``, resumable), snapshots every
  ``save_every`` env steps with their evaluation return (stochastic policy);
- ``random``: uniform random actions;
- ``expert``: the best snapshot, rolled out with its stochastic policy;
- ``medium``: the snapshot whose return is closest to one third of the expert's: by default one third of the way
  from D4RL's random to D4RL's expert reference return (normalized score 33.3, as D4RL's medium sets sit near
  their expert's third), so that a weaker own expert does not drag medium below D4RL's medium; tasks without
  reference returns (dm_control), or ``--medium-reference best``, use one third of the best snapshot's return;
- ``medium-replay``: the replay buffer from the start of training up to the medium snapshot's step;
- ``medium-expert``: medium ∪ expert, composed when loaded (no file of its own).

Every file is ``<out>/<env>-<level>-<version>.hdf5`` (gzip HDF5, float32; ``hopper-medium-v5``,
``cheetah-run-medium-v0``) with a data card ``<same>.json``.

Environments: Gymnasium MuJoCo v5 (``halfcheetah``, ``hopper``, ``walker2d``: the locomotion-v5 suite) and the
dm_control tasks ``cartpole-swingup``, ``cheetah-run``, ``walker-walk``, ``walker-stand``, ``finger-turn_hard``,
``fish-swim`` (our stand-in for RL Unplugged; through
shimmy, needs ``genpolicy[dmc]``). dm_control returns have no D4RL reference
constants, so their cards carry returns only (every dm_control reward is in [0, 1], so 1000 is the ceiling).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..config import check_choices
from ..rl.datasets import TransitionDataset, episode_returns
from ..rl.envs import REF_SCORES, env_family, normalized_score
from .rollout import collect, save_d4rl_hdf5
from .sac import load_actor

__all__ = ["ENVS", "LEVELS", "MakeConfig", "make_dataset", "data_card", "actor_policy", "behaviour_dir", "dataset_name",
           "plot_behaviour_curves"]

#: short name -> Gymnasium id
ENVS = {"halfcheetah": "HalfCheetah-v5", "hopper": "Hopper-v5", "walker2d": "Walker2d-v5",
        "cartpole-swingup": "dm_control/cartpole-swingup-v0", "cheetah-run": "dm_control/cheetah-run-v0",
        "walker-walk": "dm_control/walker-walk-v0", "walker-stand": "dm_control/walker-stand-v0",
        "finger-turn_hard": "dm_control/finger-turn_hard-v0", "fish-swim": "dm_control/fish-swim-v0",
        # the AntMaze datasets' goal-reaching controller, three recipes (genpolicy.rl.navigation)
        "ant-goal": "genpolicy/AntGoal-v0", "ant-goal-v1": "genpolicy/AntGoal-v1",
        "ant-goal-v2": "genpolicy/AntGoal-v2"}
LEVELS = ("random", "medium", "expert", "medium-replay")


@dataclass
class MakeConfig:
    """Settings of ``genpolicy data make``."""

    out: str = "datasets"
    """folder for the dataset files and data cards"""
    transitions: int = 200_000
    """transitions for random / medium / expert rollouts"""
    seed: int = 0
    """rollout seed"""
    behaviour_root: str = "datasets/behaviour"
    """where behaviour agents live (<root>/<env>/)"""
    medium_fraction: float = 1.0 / 3.0
    """medium = the snapshot whose return is closest to this fraction of the expert's (see medium_reference)"""
    medium_reference: Literal["d4rl", "best"] = "d4rl"
    """expert return that medium_fraction applies to: 'd4rl' (the way from D4RL's random to expert reference
    return; falls back to 'best' without references) or 'best' (our best snapshot's return)"""
    num_envs: int = 8
    """parallel environments for rollouts"""

    def __post_init__(self):
        check_choices(self)


def behaviour_dir(cfg: MakeConfig, env: str) -> Path:
    return Path(cfg.behaviour_root) / env


def _versions(env_id: str) -> dict:
    import gymnasium
    import mujoco

    v = {"gymnasium": gymnasium.__version__, "mujoco": mujoco.__version__, "torch": torch.__version__}
    if env_id.startswith("dm_control/"):
        from importlib.metadata import version

        v.update({"dm_control": version("dm_control"), "shimmy": version("shimmy")})
    return v


def dataset_name(env: str, level: str) -> str:
    """``hopper``, ``medium`` -> ``hopper-medium-v5``; ``cheetah-run``, ``expert`` -> ``cheetah-run-expert-v0``."""
    return f"{env}-{level}-{ENVS[env].rsplit('-', 1)[-1]}"


def snapshot_file(bdir: Path, step: int) -> Path:
    """The agent's policy snapshot at ``step``: ``policies/step_N.pt`` as training wrote it, else the
    ``.safetensors`` export of it (``genpolicy data actor``; what the repository commits of an agent)."""
    pt = bdir / "policies" / f"step_{step:07d}.pt"
    st = pt.with_suffix(".safetensors")
    if pt.exists() or not st.exists():
        return pt
    return st


def _snapshots(bdir: Path) -> dict[int, float]:
    hist = bdir / "history.json"
    if not hist.exists():
        raise FileNotFoundError(f"no behaviour agent in {bdir}: train one first with "
                                f"'genpolicy data behaviour {bdir.name} --total-steps N'")
    returns = {int(k): float(v) for k, v in json.loads(hist.read_text())["eval_returns"].items()}
    if not returns:
        raise FileNotFoundError(f"behaviour agent in {bdir} has no snapshots yet")
    return returns


def medium_target(returns: dict[int, float], medium_fraction: float, reference: tuple[float, float] | None) -> float:
    """The return medium aims at: ``lo + fraction (hi - lo)`` for reference returns ``(lo, hi)`` (D4RL's random
    and expert), else ``fraction * best snapshot return``."""
    if reference is None:
        return medium_fraction * max(returns.values())
    lo, hi = reference
    return lo + medium_fraction * (hi - lo)


def _medium_reference(cfg: MakeConfig, env_id: str) -> tuple[float, float] | None:
    """The (random, expert) returns that ``medium_fraction`` applies to, or None for "a fraction of our best"."""
    fam = env_family(env_id)
    return REF_SCORES[fam] if cfg.medium_reference == "d4rl" and fam else None


def pick_snapshots(returns: dict[int, float], medium_fraction: float,
                   reference: tuple[float, float] | None = None) -> tuple[int, int]:
    """(medium step, expert step): expert = best return; medium = the return closest to :func:`medium_target`
    (earliest on ties)."""
    expert = max(returns, key=lambda s: (returns[s], -s))
    target = medium_target(returns, medium_fraction, reference)
    medium = min(sorted(returns), key=lambda s: abs(returns[s] - target))
    return medium, expert


def actor_policy(actor, seed: int):
    """A SAC actor (:func:`~.sac.load_actor`) as ``act(obs) -> action``: its actions sampled, from a generator
    seeded by ``seed``."""
    gen = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def act(obs: np.ndarray) -> np.ndarray:
        with torch.random.fork_rng():
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            a, _ = actor(torch.as_tensor(obs))
        return a.numpy()

    return act


def data_card(ds: TransitionDataset, env_id: str, level: str, path: Path, sha: str, extra: dict) -> dict:
    """The facts a user needs to trust a dataset file."""
    rets = episode_returns(ds)
    card = {"name": path.stem, "file": path.name, "env_id": env_id, "env_version": env_id.rsplit("-", 1)[-1],
            "level": level, **_versions(env_id), "transitions": int(len(ds)), "episodes": int(len(rets)),
            "return_mean": float(rets.mean()), "return_std": float(rets.std()), "return_min": float(rets.min()),
            "return_max": float(rets.max()), "terminals": int(ds.terminals.sum()), "timeouts": int(ds.timeouts.sum()),
            "sha256": sha, **extra}
    if env_family(env_id):
        scores = normalized_score(env_id, rets)
        card["normalized_score_mean"], card["normalized_score_std"] = float(scores.mean()), float(scores.std())
    return card


def make_dataset(env: str, level: str, cfg: MakeConfig, progress: bool = True, command: str | None = None) -> dict:
    """Make one dataset file and its data card; returns the card."""
    if env not in ENVS:
        raise ValueError(f"unknown env {env!r}; expected one of {sorted(ENVS)}")
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {LEVELS} (medium-expert is composed at load time)")
    env_id = ENVS[env]
    t0 = time.perf_counter()
    extra: dict = {"seed": cfg.seed, "command": command or f"genpolicy data make {env} {level} --seed {cfg.seed}"}
    if level == "random":
        ds = collect(env_id, None, cfg.transitions, seed=cfg.seed, num_envs=cfg.num_envs, progress=progress)
        extra["behaviour_policy_steps"] = 0
    else:
        bdir = behaviour_dir(cfg, env)
        returns = _snapshots(bdir)
        ref = _medium_reference(cfg, env_id)
        medium, expert = pick_snapshots(returns, cfg.medium_fraction, ref)
        extra["medium_target_return"] = medium_target(returns, cfg.medium_fraction, ref)
        step = expert if level == "expert" else medium
        extra.update(behaviour_policy_steps=step, behaviour_snapshot_return=returns[step],
                     behaviour_best_return=returns[expert])
        if level == "medium-replay":
            rb = np.load(bdir / "replay.npz")
            if len(rb["rewards"]) < step:
                raise ValueError(f"replay buffer in {bdir} holds {len(rb['rewards'])} steps, fewer than the medium "
                                 f"snapshot's {step}")
            # the buffer is cut (possibly mid-episode) at the medium snapshot's step
            ds = TransitionDataset(**{k: rb[k] for k in rb.files}, source=str(bdir / "replay.npz")).head(step)
        else:
            act = actor_policy(load_actor(snapshot_file(bdir, step))[0], cfg.seed)
            ds = collect(env_id, act, cfg.transitions, seed=cfg.seed, num_envs=cfg.num_envs, progress=progress)
    ds.validate()
    path = Path(cfg.out) / f"{dataset_name(env, level)}.hdf5"
    sha = save_d4rl_hdf5(ds, path)
    import h5py

    with h5py.File(path) as f:
        extra["next_observations_storage"] = ("virtual (observations[i+1] within episodes, final_observations at "
                                              "episode ends)" if f["next_observations"].is_virtual else "full")
    extra["seconds"] = round(time.perf_counter() - t0, 1)
    card = data_card(ds, env_id, level, path, sha, extra)
    path.with_suffix(".json").write_text(json.dumps(card, indent=2))
    return card


def plot_behaviour_curves(cfg: MakeConfig, out_png: str | Path, envs: list[str] | None = None) -> Path:
    """One panel per behaviour agent: snapshot evaluation return against env steps, with the medium target,
    the medium and expert snapshots that ``make`` picks, and D4RL's random/expert reference returns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = [e for e in (envs or list(ENVS)) if (behaviour_dir(cfg, e) / "history.json").exists()]
    if not found:
        raise FileNotFoundError(f"no behaviour agents under {cfg.behaviour_root}")
    fig, axes = plt.subplots(1, len(found), figsize=(4.2 * len(found), 3.4), squeeze=False)
    for ax, env in zip(axes[0], found):
        returns = _snapshots(behaviour_dir(cfg, env))
        steps = sorted(returns)
        ref = _medium_reference(cfg, ENVS[env])
        medium, expert = pick_snapshots(returns, cfg.medium_fraction, ref)
        ax.plot([s / 1e3 for s in steps], [returns[s] for s in steps], "-o", ms=3, color="C0", label="snapshot eval")
        ax.axhline(medium_target(returns, cfg.medium_fraction, ref), color="C1", ls=":", label="medium target")
        ax.plot(medium / 1e3, returns[medium], "s", color="C1", ms=8, label=f"medium ({medium // 1000}k)")
        ax.plot(expert / 1e3, returns[expert], "*", color="C3", ms=12, label=f"expert ({expert // 1000}k)")
        fam = env_family(ENVS[env])
        if fam:
            for v, name in zip(REF_SCORES[fam], ("D4RL random", "D4RL expert")):
                ax.axhline(v, color="gray", ls="--", lw=0.8)
                ax.text(steps[0] / 1e3, v, name, fontsize=7, va="bottom", color="gray")
        ax.set_title(ENVS[env])
        ax.set_xlabel("env steps (k)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("return (stochastic policy)")
    from ..plotting import save_figure

    return save_figure(fig, out_png)
