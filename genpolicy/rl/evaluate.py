"""Evaluate a policy (or several, e.g. one per seed): N episodes in one vector env, one batched policy call per step,
seeded."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .envs import env_family, make_vec_env, normalized_score

__all__ = ["EvalResult", "evaluate", "evaluate_many", "score_definition"]


@dataclass
class EvalResult:
    """Per-episode returns and lengths, plus D4RL normalized scores when the environment has references."""

    returns: np.ndarray
    lengths: np.ndarray
    normalized: np.ndarray | None

    @property
    def mean_return(self) -> float:
        return float(self.returns.mean())

    @property
    def score(self) -> float:
        """Mean normalized score (or mean return where there are no reference scores)."""
        return float(self.normalized.mean()) if self.normalized is not None else self.mean_return

    @property
    def score_se(self) -> float | None:
        """Standard error of :attr:`score` over the episodes (None for one episode)."""
        x = self.normalized if self.normalized is not None else self.returns
        return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else None

    def as_dict(self) -> dict:
        d = {"return_mean": self.mean_return, "return_std": float(self.returns.std()),
             "length_mean": float(self.lengths.mean()), "episodes": int(len(self.returns)), "score_se": self.score_se}
        if self.normalized is not None:
            d.update(score_mean=float(self.normalized.mean()), score_std=float(self.normalized.std()))
        return d


def evaluate(act: Callable[[np.ndarray], np.ndarray], env_id: str, episodes: int = 10, seed: int = 0,
             max_steps: int = 1000, policy_seed: int | None = None) -> EvalResult:
    """Run ``episodes`` episodes in parallel (one env each) and return their returns.

    Args:
        act: batched policy ``(n, obs_dim) float32 -> (n, act_dim)``.
        env_id: Gymnasium id, e.g. ``Hopper-v5``.
        episodes: number of episodes (= vector-env size).
        seed: env i is reset with seed ``seed + i``.
        max_steps: safety cap on steps per episode.
        policy_seed: seed torch's RNG (the policy's sampling noise) with this inside a fork of the RNG state, so
            that the same policy and seeds give the same returns and the caller's random state does not move.
    """
    return evaluate_many([act], env_id, episodes, [seed], max_steps, None if policy_seed is None else [policy_seed])[0]


#: episodes of one policy in one vector env: more run in rounds of this many (``eval --episodes 100000`` holds
#: this many environments per policy at a time, not 100000); a round's size depends on the episodes alone, so a
#: policy's result is the same evaluated with others or alone
EPISODES_PER_ROUND = 128


def evaluate_many(acts: list[Callable[[np.ndarray], np.ndarray]], env_id: str, episodes: int = 10,
                  seeds: list[int] | None = None, max_steps: int = 1000,
                  policy_seeds: list[int] | None = None) -> list[EvalResult]:
    """:func:`evaluate` for several policies at once (e.g. the seeds of one algorithm): one vector env of
    ``len(acts) * episodes`` envs stepped together, policy k acting on its own ``episodes`` envs (reset with seeds
    ``seeds[k] + i``) and drawing its sampling noise from its own RNG stream (``policy_seeds[k]``, swapped in
    around each of its calls), so that result k equals ``evaluate(acts[k], env_id, episodes, seeds[k],
    policy_seed=policy_seeds[k])``. A policy whose episodes have all ended is not called again. More than
    :data:`EPISODES_PER_ROUND` episodes run in rounds of that many (env seeds continuing), so memory stays bounded."""
    n = len(acts)
    seeds = [0] * n if seeds is None else list(seeds)
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if not n or len(seeds) != n or (policy_seeds is not None and len(policy_seeds) != n):
        raise ValueError(f"evaluate_many: {n} policies, {len(seeds)} env seeds, "
                         f"{'no' if policy_seeds is None else len(policy_seeds)} policy seeds")
    if policy_seeds is None:
        rng = None
    else:
        import torch

        devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
        rng = _RngStreams(policy_seeds, devices)
    returns, lengths = np.zeros((n, episodes)), np.zeros((n, episodes), dtype=np.int64)
    per_round = EPISODES_PER_ROUND
    with rng if rng is not None else contextlib.nullcontext():
        for lo in range(0, episodes, per_round):
            m = min(per_round, episodes - lo)
            r, ln = _episodes(acts, env_id, [s + lo for s in seeds], m, max_steps, rng)
            returns[:, lo:lo + m], lengths[:, lo:lo + m] = r.reshape(n, m), ln.reshape(n, m)
    returns, lengths = returns.reshape(-1), lengths.reshape(-1)
    out = []
    for k in range(n):
        ret = returns[k * episodes:(k + 1) * episodes]
        norm = normalized_score(env_id, ret) if env_family(env_id) else None
        out.append(EvalResult(returns=ret, lengths=lengths[k * episodes:(k + 1) * episodes], normalized=norm))
    return out


def _episodes(acts, env_id: str, seeds: list[int], episodes: int, max_steps: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """``episodes`` episodes of each policy in one vector env (policy k's reset with seeds ``seeds[k] + i``):
    returns and lengths, ``(len(acts) * episodes,)``, policy k's at ``k * episodes``."""
    n = len(acts)
    env = make_vec_env(env_id, n * episodes)
    try:
        obs, _ = env.reset(seed=[s + i for s in seeds for i in range(episodes)])
        low, high = env.single_action_space.low, env.single_action_space.high
        want = (episodes,) + env.single_action_space.shape
        returns = np.zeros(n * episodes)
        lengths = np.zeros(n * episodes, dtype=np.int64)
        alive = np.ones(n * episodes, dtype=bool)
        actions = np.zeros((n * episodes,) + env.single_action_space.shape, dtype=np.float32)
        for _ in range(max_steps):
            for k, act in enumerate(acts):
                part = slice(k * episodes, (k + 1) * episodes)
                if not alive[part].any():
                    continue
                if rng is not None:
                    rng.enter(k)
                a = np.asarray(act(obs[part].astype(np.float32)), dtype=np.float32)
                if rng is not None:
                    rng.leave(k)
                if a.shape != want:
                    raise ValueError(f"policy returned actions of shape {a.shape}; wanted {want}")
                actions[part] = a
            obs, r, term, trunc, _ = env.step(np.clip(actions, low, high))
            returns += np.where(alive, r, 0.0)
            lengths += alive
            alive &= ~(term | trunc)
            if not alive.any():
                break
    finally:
        env.close()
    return returns, lengths


class _RngStreams:
    """Torch's global RNG as one stream per policy: inside ``with``, a fork of the caller's state (restored on
    exit); ``enter(k)`` installs stream k (first: seeded with ``seeds[k]``), ``leave(k)`` keeps where it got to."""

    def __init__(self, seeds: list[int], devices: list[int]):
        import torch

        self.torch, self.devices, self.states = torch, devices, []
        self.fork = torch.random.fork_rng(devices=devices)
        self.seeds = list(seeds)

    def __enter__(self):
        torch = self.torch
        self.fork.__enter__()
        for s in self.seeds:
            torch.manual_seed(s)
            self.states.append(self._get())
        return self

    def __exit__(self, *exc):
        return self.fork.__exit__(*exc)

    def _get(self):
        torch = self.torch
        return torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in self.devices]

    def enter(self, k: int) -> None:
        if len(self.states) == 1:
            return  # one stream: it stays installed
        cpu, cuda = self.states[k]
        self.torch.set_rng_state(cpu)
        for d, st in zip(self.devices, cuda):
            self.torch.cuda.set_rng_state(st, d)

    def leave(self, k: int) -> None:
        if len(self.states) > 1:
            self.states[k] = self._get()


def score_definition(env_id: str) -> str:
    """What ``score`` means for ``env_id``: the D4RL normalization and the reference returns it uses."""
    from .envs import REF_SCORES

    fam = env_family(env_id)
    if fam is None:
        return "mean undiscounted return (no D4RL reference returns for this environment)"
    lo, hi = REF_SCORES[fam]
    return (f"D4RL-normalized score 100 (R - {lo:g}) / ({hi:g} - {lo:g}), with D4RL's {fam} random and expert "
            f"reference returns")
