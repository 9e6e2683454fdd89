"""Deployment: load a trained policy from its checkpoint alone."""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["load_policy"]


def load_policy(path: str | Path, device: str = "cpu"):
    """Rebuild the algorithm stored in ``path`` (a ``checkpoint.pt``/``best.pt`` or a run folder).

    The returned :class:`~genpolicy.rl.algos.base.Algorithm`'s ``act(raw_obs)`` takes raw observations
    ``(B, obs_dim)`` (normalization is stored in the checkpoint) and returns actions ``(B, act_dim)`` in [-1, 1].
    An algorithm defined outside genpolicy is found through the module stored with the checkpoint.
    """
    from .rl.algos import build_algorithm, config_from_dict
    from .train import BEST, CHECKPOINT, load_checkpoint

    path = Path(path)
    if path.is_dir():
        best = path / BEST
        path = best if best.exists() else path / CHECKPOINT
    ck = load_checkpoint(path)
    obs_dim, act_dim = ck["dims"]
    cfg = config_from_dict(ck["algo"], ck["config"], ck.get("algo_module"))
    algo = build_algorithm(ck["algo"], obs_dim, act_dim, cfg)
    algo.load_full_state_dict(ck["state"])
    return algo.to(torch.device(device)).eval()
