"""Preflight: check in seconds, before any training or evaluation, everything a run will need."""

from __future__ import annotations

import time

import numpy as np
import torch

from .rl.algos.base import Algorithm
from .rl.data import OfflineData

__all__ = ["preflight", "open_env", "env_observation"]


def preflight(algo: Algorithm, data: OfflineData, env_id: str | None = None) -> dict:
    """Check in seconds what the run will need, on copies, without moving any random state: the environment
    exists and its observation and action sizes match the data; one update of every stage runs (on a deep
    copy of the algorithm, with a small batch); ``act`` on a real observation returns finite actions in range.

    Returns:
        ``{"seconds": ..., "obs": [...]}`` (the observation used). Raises a one-line ValueError on a problem.
    """
    import copy

    from .train import NonFiniteMetrics, non_finite

    t0 = time.perf_counter()
    raw = _raw_observation(algo, data, env_id)
    devices = [data.device] if data.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        twin = copy.deepcopy(algo)
        gen = torch.Generator(device=data.device).manual_seed(0)
        small = data.head(64)  # stages that prepare on the whole data (QGPO, SfBC) do it on 64 rows here
        for stage in twin.stages():
            if stage.steps > 0:
                try:
                    if stage.prepare is not None:
                        stage.prepare(small)
                    m = stage.update(small.sample(min(stage.batch_size or algo.cfg.batch_size, 32), generator=gen))
                except Exception as e:
                    raise type(e)(f"preflight: one {stage.name} step failed: {e}") from e
                bad = non_finite(stage, m)
                if bad:
                    raise NonFiniteMetrics(f"preflight: one {stage.name} step gives non-finite {', '.join(bad)} "
                                           f"(check the data's reward scale and the learning rates)")
        twin.eval()
        a = twin.act(raw[None], compiled=False)
    if a.shape != (1, algo.act_dim) or not np.all(np.isfinite(a)):
        raise ValueError(f"preflight: act() returned {a.shape} {a.tolist()}; wanted finite (1, {algo.act_dim})")
    return {"seconds": round(time.perf_counter() - t0, 2), "obs": raw.tolist()}


def _raw_observation(algo: Algorithm, data: OfflineData, env_id: str | None) -> np.ndarray:
    """A real observation: from a reset of ``env_id`` (after checking its sizes) or the data's first row."""
    if env_id is None:
        x = data.obs[0].cpu() * data.normalizer.std + data.normalizer.mean
        return x.numpy().astype(np.float32)
    return env_observation(env_id, algo.obs_dim, algo.act_dim, f"the data ({data.source})")


def env_observation(env_id: str, obs_dim: int, act_dim: int, what: str) -> np.ndarray:
    """Open ``env_id``, check that its observation and action sizes are ``what``'s (one-line error otherwise) and
    return the observation of a reset with seed 0."""
    env = open_env(env_id)
    try:
        sizes = int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
        if sizes != (obs_dim, act_dim):
            raise ValueError(f"{env_id} has observations of size {sizes[0]} and actions of size {sizes[1]}; "
                             f"{what} has {obs_dim} and {act_dim}")
        obs, _ = env.reset(seed=0)
    finally:
        env.close()
    return np.asarray(obs, dtype=np.float32).reshape(-1)


def open_env(env_id: str):
    """``make_env(env_id)`` with a one-line error for an id that does not exist (listing close matches)."""
    from .rl.envs import make_env

    try:
        return make_env(env_id)
    except ImportError:
        raise
    except Exception as e:  # gymnasium's NameNotFound / VersionNotFound / NamespaceNotFound and friends
        raise ValueError(f"unknown environment {env_id!r}: {' '.join(str(e).split())}") from None
