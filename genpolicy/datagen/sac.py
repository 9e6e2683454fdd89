"""A compact Soft Actor-Critic (Haarnoja et al. 2018) for behaviour policies, with exact resume.

The behaviour agent that makes D4RL-style datasets: tanh-Gaussian actor, twin Q with target networks,
automatic entropy tuning. Training state (networks, optimizers, replay buffer, RNGs, env step) is saved to
``<dir>/state.pt`` atomically, so training can span several sessions; policy snapshots with their evaluation
returns go to ``<dir>/policies/step_XXXXXXX.pt`` and ``<dir>/history.json``.

A compact own implementation rather than stable-baselines3: SB3 drags in pandas/cloudpickle and a
per-step Python overhead of its own; this one keeps the replay buffer as preallocated numpy arrays and the
update compiled whole (``SACConfig.compile``: critics, actor, temperature and targets in one graph, 1.4x the eager
update on one CPU thread), and is small enough to read in one sitting.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..checkpoint import atomic_torch_save, atomic_write, capture_rng, load_torch, restore_rng
from ..nets import mlp
from ..optim import ensure_adam_state, minimize
from ..rl.data import Batch
from ..rl.datasets import close_last_episode

__all__ = ["SACConfig", "SACAgent", "train_sac", "load_actor", "export_actor"]


@dataclass
class SACConfig:
    """SAC settings (defaults as in the SAC paper / CleanRL)."""

    total_steps: int = 300_000
    """environment steps to train for (resume continues up to this)"""
    start_steps: int = 5000
    """uniform-random actions before learning starts"""
    batch_size: int = 256
    """minibatch size"""
    hidden: tuple[int, ...] = (256, 256)
    """actor and critic hidden sizes"""
    lr: float = 3e-4
    """Adam learning rate (actor, critics, temperature)"""
    gamma: float = 0.99
    """discount"""
    tau: float = 0.005
    """target-network rate"""
    save_every: int = 10_000
    """snapshot the policy (and evaluate it) every this many env steps"""
    eval_episodes: int = 5
    """episodes per snapshot evaluation (stochastic policy, as the datasets use)"""
    state_every: int = 10_000
    """write the full resumable state every this many env steps"""
    seed: int = 0
    """random seed"""
    compile: bool = True
    """compile the update whole (about 30 s once, then 1.4x the eager update's steps/s on one CPU thread; its random
    draws are the eager kernels', so either form trains the same agent up to rounding)"""


class Actor(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden):
        super().__init__()
        self.body = mlp(obs_dim, 2 * act_dim, hidden)

    def forward(self, obs: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor]:
        mu, log_std = self.body(obs).chunk(2, dim=-1)
        log_std = torch.tanh(log_std)
        log_std = -5.0 + 3.5 * (log_std + 1.0)  # in [-5, 2]
        std = log_std.exp()
        u = mu if deterministic else mu + std * torch.randn_like(mu)
        a = torch.tanh(u)
        logp = (-0.5 * ((u - mu) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - (2 * (math.log(2) - u - nn.functional.softplus(-2 * u))).sum(-1)
        return a, logp


def _critic_loss(agent: "SACAgent", obs: Tensor, act: Tensor, target: Tensor) -> tuple[Tensor, dict]:
    q1, q2 = agent._q(obs, act)
    return ((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean(), {}


def _actor_loss(agent: "SACAgent", obs: Tensor, alpha: Tensor) -> tuple[Tensor, dict]:
    a, logp = agent.actor(obs)
    return (alpha * logp - torch.minimum(*agent._q(obs, a))).mean(), {"logp": logp}


def _temperature_loss(agent: "SACAgent", logp: Tensor) -> tuple[Tensor, dict]:
    return -(agent.log_alpha * (logp + agent.target_entropy)).mean(), {}


class SACAgent(nn.Module):
    """Actor, twin critics, targets and temperature, with one ``update(batch)``."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: SACConfig):
        super().__init__()
        self.cfg = cfg
        self.actor = Actor(obs_dim, act_dim, cfg.hidden)
        self.q1, self.q2 = mlp(obs_dim + act_dim, 1, cfg.hidden), mlp(obs_dim + act_dim, 1, cfg.hidden)
        self.q1_t, self.q2_t = copy.deepcopy(self.q1).requires_grad_(False), copy.deepcopy(self.q2).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.zeros(()))
        self.target_entropy = -float(act_dim)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr, fused=True)
        self.q_opt = torch.optim.Adam(list(self.q1.parameters()) + list(self.q2.parameters()), lr=cfg.lr, fused=True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.lr)

    def _q(self, obs, act, target=False):
        sa = torch.cat([obs, act], -1)
        a, b = (self.q1_t, self.q2_t) if target else (self.q1, self.q2)
        return a(sa).squeeze(-1), b(sa).squeeze(-1)

    def update(self, batch: Batch, functional: bool = False) -> dict:
        """One SAC step: twin critics, then the actor on the updated critics, then the temperature, then the
        targets. ``functional``: the form :func:`genpolicy.optim.minimize` writes without ``backward`` (which
        ``torch.compile`` captures whole); the eager one is the reference."""
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            na, nlogp = self.actor(batch.next_obs)
            tq = torch.minimum(*self._q(batch.next_obs, na, target=True)) - alpha * nlogp
            target = batch.rewards + self.cfg.gamma * (1 - batch.dones) * tq
        q_loss, _, _ = minimize(self.q_opt, self, _critic_loss, batch.obs, batch.actions, target, functional=functional)
        critics = [*self.q1.parameters(), *self.q2.parameters()]
        if not functional:  # backward through the critics without filling their gradients
            for p in critics:
                p.requires_grad_(False)
        pi_loss, aux, _ = minimize(self.actor_opt, self, _actor_loss, batch.obs, alpha, functional=functional)
        if not functional:
            for p in critics:
                p.requires_grad_(True)
        minimize(self.alpha_opt, self, _temperature_loss, aux["logp"], functional=functional)
        with torch.no_grad():
            torch._foreach_lerp_([*self.q1_t.parameters(), *self.q2_t.parameters()], critics, self.cfg.tau)
        return {"q_loss": q_loss, "pi_loss": pi_loss, "alpha": alpha}

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        a, _ = self.actor(torch.as_tensor(obs, dtype=torch.float32), deterministic)
        return a.numpy()


class _Replay:
    #: D4RL key -> attribute
    KEYS = (("observations", "o"), ("actions", "a"), ("rewards", "r"), ("next_observations", "no"),
            ("terminals", "te"), ("timeouts", "to"))

    def __init__(self, n: int, obs_dim: int, act_dim: int):
        self.o = np.zeros((n, obs_dim), np.float32)
        self.a = np.zeros((n, act_dim), np.float32)
        self.r = np.zeros(n, np.float32)
        self.no = np.zeros((n, obs_dim), np.float32)
        self.te = np.zeros(n, bool)
        self.to = np.zeros(n, bool)
        self.size = 0

    def add(self, o, a, r, no, te, to):
        i = self.size
        self.o[i], self.a[i], self.r[i], self.no[i], self.te[i], self.to[i] = o, a, r, no, te, to
        self.size += 1

    def arrays(self, upto: int | None = None) -> dict:
        n = self.size if upto is None else min(upto, self.size)
        return {key: getattr(self, attr)[:n] for key, attr in self.KEYS}

    def load(self, arrays, n: int) -> None:
        """Fill the first ``n`` rows from D4RL-keyed arrays; an episode cut at row n ends there."""
        for key, attr in self.KEYS:
            getattr(self, attr)[:n] = arrays[key][:n]
        self.to[:n] = close_last_episode(self.te[:n], self.to[:n])
        self.size = n


def _evaluate(agent: SACAgent, env_id: str, episodes: int, seed: int) -> float:
    from ..rl.evaluate import evaluate

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return evaluate(lambda o: agent.act(o), env_id, episodes=episodes, seed=seed).mean_return


def train_sac(env_id: str, out_dir: str | Path, cfg: SACConfig, progress: bool = True, resume: bool = True) -> dict:
    """Train (or resume) a SAC behaviour agent; returns the snapshot history ``{step: eval_return}``.

    Episodes are cut at 1000 steps (a timeout, bootstrapped through). Every transition goes to the replay
    buffer, which is saved with the state, so that medium-replay datasets can be cut from it later.
    """
    from tqdm.auto import tqdm

    from ..rl.envs import make_env
    from ..train.loop import compile_cpu_step

    if cfg.compile:
        _check_cpp_compiler()
    out = Path(out_dir)
    (out / "policies").mkdir(parents=True, exist_ok=True)
    env = make_env(env_id, max_episode_steps=1000)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    agent, replay, step, history, ep_count = _start(out, cfg, obs_dim, act_dim, resume)
    update = agent.update
    if cfg.compile:
        for opt in (agent.actor_opt, agent.q_opt, agent.alpha_opt):
            ensure_adam_state(opt)
        update = compile_cpu_step(partial(agent.update, functional=True), f"SAC {env_id}", fallback_random=True)
    rng = np.random.default_rng(cfg.seed + step)
    obs, _ = env.reset(seed=cfg.seed + ep_count)
    ep_ret = 0.0
    bar = tqdm(total=cfg.total_steps, initial=step, desc=f"SAC {env_id}", disable=not progress, mininterval=1.0)
    t0 = time.perf_counter()
    while step < cfg.total_steps:
        a = rng.uniform(-1, 1, act_dim).astype(np.float32) if step < cfg.start_steps else agent.act(obs[None])[0]
        nobs, r, term, trunc, _ = env.step(a)
        replay.add(obs, a, r, nobs, term, trunc and not term)
        ep_ret += r
        step += 1
        obs = nobs
        if term or trunc:
            ep_count += 1
            bar.set_postfix(ep_return=f"{ep_ret:.0f}", refresh=False)
            ep_ret = 0.0
            obs, _ = env.reset(seed=cfg.seed + ep_count)
        if step >= cfg.start_steps:
            idx = rng.integers(0, replay.size, cfg.batch_size)
            t = lambda x: torch.from_numpy(x[idx])  # noqa: E731
            batch = Batch(t(replay.o), t(replay.a), t(replay.r), t(replay.no), t(replay.te).float())
            # a compiled update's guards are checked before each snapshot and save
            due = (step + 1) % cfg.save_every == 0 or (step + 1) % cfg.state_every == 0
            update(batch, check=True) if due and cfg.compile else update(batch)
        bar.update(1)
        if step % cfg.save_every == 0:
            history[step] = _snapshot(out, agent, env_id, cfg, step, obs_dim, act_dim)
            (out / "history.json").write_text(json.dumps({"env_id": env_id, "config": asdict(cfg),
                                                          "eval_returns": history,
                                                          "seconds_this_session": round(time.perf_counter() - t0)},
                                                         indent=1))
            bar.write(f"[SAC {env_id}] step {step}: eval return {history[step]:.1f}")
        if step % cfg.state_every == 0 or step == cfg.total_steps:
            _save_state(out, agent, replay, step, history, ep_count)
    bar.close()
    env.close()
    return history


def _check_cpp_compiler() -> None:
    """The compiled update needs the C++ compiler Inductor builds its kernels with: a one-line error before any
    environment or network is made."""
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        get_cpp_compiler()
    except Exception:
        raise RuntimeError("SAC's compiled update needs a C++ compiler (g++ or $CXX) and none was found: install "
                           "one, or train with the eager update (--no-compile)") from None


def _start(out: Path, cfg: SACConfig, obs_dim: int, act_dim: int, resume: bool):
    """A fresh agent and replay buffer (seeded), or the saved ones: ``(agent, replay, step, history, ep_count)``."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    agent = SACAgent(obs_dim, act_dim, cfg)
    state_path = out / "state.pt"
    if not (resume and state_path.exists()):
        return agent, _Replay(cfg.total_steps, obs_dim, act_dim), 0, {}, 0
    st = load_torch(state_path)
    agent.load_state_dict(st["agent"])
    for k in ("actor_opt", "q_opt", "alpha_opt"):
        getattr(agent, k).load_state_dict(st[k])
    n = int(st["step"])
    replay = _Replay(max(cfg.total_steps, n), obs_dim, act_dim)
    replay.load(np.load(out / "replay.npz"), n)  # the episode in progress at the save is cut there (a timeout)
    restore_rng(st["rng"])
    return agent, replay, n, {int(k): v for k, v in st["history"].items()}, st["ep_count"]


def _snapshot(out: Path, agent: SACAgent, env_id: str, cfg: SACConfig, step: int, obs_dim: int, act_dim: int) -> float:
    """Evaluate the agent and save its actor as ``policies/step_NNNNNNN.pt``; returns the evaluation return."""
    ret = _evaluate(agent, env_id, cfg.eval_episodes, seed=10_000 + step)
    torch.save({"actor": agent.actor.state_dict(), "obs_dim": obs_dim, "act_dim": act_dim, "hidden": cfg.hidden,
                "step": step, "eval_return": ret, "env_id": env_id}, out / "policies" / f"step_{step:07d}.pt")
    return ret


def _save_state(out: Path, agent: SACAgent, replay: _Replay, step: int, history: dict, ep_count: int) -> None:
    atomic_write(out / "replay.npz", lambda f: np.savez(f, **replay.arrays()))
    st = {"agent": agent.state_dict(), "actor_opt": agent.actor_opt.state_dict(), "q_opt": agent.q_opt.state_dict(),
          "alpha_opt": agent.alpha_opt.state_dict(), "step": step, "history": history, "ep_count": ep_count,
          "rng": capture_rng()}
    atomic_torch_save(st, out / "state.pt")


_META_KEYS = ("obs_dim", "act_dim", "hidden", "step", "eval_return", "env_id")


def load_actor(path: str | Path) -> tuple[Actor, dict]:
    """A policy snapshot written by :func:`train_sac` (``.pt``) or by :func:`export_actor` (``.safetensors``, no
    pickle): the actor and its metadata."""
    if Path(path).suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if "genpolicy_sac_actor" not in meta:
                raise ValueError(f"{path}: not a SAC actor written by 'genpolicy data actor'")
            d = {**json.loads(meta["genpolicy_sac_actor"]), "actor": {k: f.get_tensor(k) for k in f.keys()}}
    else:
        d = load_torch(path)
    actor = Actor(d["obs_dim"], d["act_dim"], tuple(d["hidden"]))
    actor.load_state_dict(d["actor"])
    return actor.eval(), d


def export_actor(snapshot: str | Path, out: str | Path) -> Path:
    """Write a policy snapshot's actor and metadata as one safetensors file (weights only, no pickle: reading it
    cannot run code), which :func:`load_actor` reads back."""
    from safetensors.torch import save_file

    out = Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"{out}: the actor file is written as .safetensors")
    actor, d = load_actor(snapshot)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: (list(d[k]) if k == "hidden" else d[k]) for k in _META_KEYS if k in d}
    save_file({k: v.detach().contiguous() for k, v in actor.state_dict().items()}, str(out),
              metadata={"genpolicy_sac_actor": json.dumps(meta)})
    return out
