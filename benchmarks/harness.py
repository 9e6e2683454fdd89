"""The timing harness every benchmark script shares: synthetic data of a task's shapes on the training device,
device synchronisation, and steps/s of a step function measured as the training loop calls it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genpolicy.rl.data import OfflineData  # noqa: E402
from genpolicy.rl.datasets import TransitionDataset  # noqa: E402

__all__ = ["synthetic_data", "sync", "steps_per_second"]


def synthetic_data(obs_dim: int, act_dim: int, device: str = "cpu", n: int = 100_000) -> OfflineData:
    """``n`` random transitions of the given sizes (episodes of 1000 steps), normalized, on ``device``: what the
    loop samples its batches from."""
    rng = np.random.default_rng(0)
    ds = TransitionDataset(rng.normal(size=(n, obs_dim)).astype(np.float32),
                           rng.uniform(-1, 1, (n, act_dim)).astype(np.float32), rng.normal(size=n).astype(np.float32),
                           rng.normal(size=(n, obs_dim)).astype(np.float32), np.zeros(n, bool),
                           np.arange(n) % 1000 == 999)
    return OfflineData(ds, reward_scale="none", normalize_obs=True, device=device)


def sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def steps_per_second(fn, make_args, steps: int, device: str = "cpu", warmup: int = 3, repeats: int = 3) -> float:
    """The best of ``repeats`` rates of ``steps`` calls ``fn(*make_args())`` (arguments drawn inside the timed loop,
    as the training loop draws its batches), after ``warmup`` calls; one value read back at the end of each run."""
    for _ in range(warmup):
        out = fn(*make_args())
    sync(device)
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            out = fn(*make_args())
        if isinstance(out, dict) and out:
            float(next(iter(out.values())))
        sync(device)
        best = max(best, steps / (time.perf_counter() - t))
    return best
