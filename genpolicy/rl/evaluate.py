"""Evaluate a policy: N episodes in one vector env, one batched policy call per step, seeded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .envs import env_family, make_vec_env, normalized_score

__all__ = ["EvalResult", "evaluate", "score_definition"]


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
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if policy_seed is not None:
        import torch

        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_initialized() else []):
            torch.manual_seed(policy_seed)
            return evaluate(act, env_id, episodes, seed, max_steps)
    env = make_vec_env(env_id, episodes)
    try:
        obs, _ = env.reset(seed=[seed + i for i in range(episodes)])
        low, high = env.single_action_space.low, env.single_action_space.high
        returns = np.zeros(episodes)
        lengths = np.zeros(episodes, dtype=np.int64)
        alive = np.ones(episodes, dtype=bool)
        for _ in range(max_steps):
            a = np.asarray(act(obs.astype(np.float32)), dtype=np.float32)
            if a.shape != (episodes,) + env.single_action_space.shape:
                raise ValueError(f"policy returned actions of shape {a.shape}; wanted {(episodes,) + env.single_action_space.shape}")
            obs, r, term, trunc, _ = env.step(np.clip(a, low, high))
            returns += np.where(alive, r, 0.0)
            lengths += alive
            alive &= ~(term | trunc)
            if not alive.any():
                break
    finally:
        env.close()
    norm = normalized_score(env_id, returns) if env_family(env_id) else None
    return EvalResult(returns=returns, lengths=lengths, normalized=norm)


def score_definition(env_id: str) -> str:
    """What ``score`` means for ``env_id``: the D4RL normalization and the reference returns it uses."""
    from .envs import REF_SCORES

    fam = env_family(env_id)
    if fam is None:
        return "mean undiscounted return (no D4RL reference returns for this environment)"
    lo, hi = REF_SCORES[fam]
    return (f"D4RL-normalized score 100 (R - {lo:g}) / ({hi:g} - {lo:g}), with D4RL's {fam} random and expert "
            f"reference returns")
