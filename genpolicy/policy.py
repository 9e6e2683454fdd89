"""Deployment: load a trained policy from its checkpoint alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from .rl.algos import ALGORITHMS, Algorithm

__all__ = ["load_policy", "build_algorithm"]


def build_algorithm(name: str, obs_dim: int, act_dim: int, config: dict, normalizer=None) -> Algorithm:
    """Instantiate a registered algorithm from a plain config dict (as stored in checkpoints)."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; known: {sorted(ALGORITHMS)}")
    cls = ALGORITHMS[name]
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(f"config keys {unknown} are not fields of {cls.Config.__name__}")
    return cls(obs_dim, act_dim, cls.Config(**config), normalizer)


def load_policy(path: str | Path, device: str = "cpu") -> Algorithm:
    """Rebuild the algorithm stored in ``path`` (a ``checkpoint.pt``/``best.pt`` or a run folder).

    The returned object's ``act(raw_obs)`` takes raw observations ``(B, obs_dim)`` (normalization is
    stored in the checkpoint) and returns actions ``(B, act_dim)`` in [-1, 1].
    """
    from .train import CHECKPOINT, load_checkpoint

    path = Path(path)
    if path.is_dir():
        best = path / "best.pt"
        path = best if best.exists() else path / CHECKPOINT
    ck = load_checkpoint(path)
    obs_dim, act_dim = ck["dims"]
    algo = build_algorithm(ck["algo"], obs_dim, act_dim, ck["config"])
    algo.load_full_state_dict(ck["state"])
    return algo.to(torch.device(device)).eval()
