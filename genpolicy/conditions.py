"""Conditions (tensors or TensorDicts) and the small result types of :class:`~genpolicy.generative.GenerativeModel`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["is_tensordict", "batch_size_of", "check_finite", "index_cond", "device_of", "Trajectory",
           "SampleWithLogProb"]


def is_tensordict(c: Any) -> bool:
    return hasattr(c, "batch_size") and hasattr(c, "keys") and not isinstance(c, Tensor)


def batch_size_of(cond: Any) -> int:
    """Leading batch size of a tensor or TensorDict condition."""
    if isinstance(cond, Tensor):
        if cond.dim() == 0:
            raise ValueError("cond must have a batch dimension, got a 0-dim tensor")
        return cond.shape[0]
    if is_tensordict(cond):
        if len(cond.batch_size) == 0:
            raise ValueError("a TensorDict condition needs batch_size=[B], got batch_size=[]")
        return cond.batch_size[0]
    raise TypeError(f"cond must be a torch.Tensor or a tensordict.TensorDict, got {type(cond).__name__}")


def check_finite(name: str, x: Any) -> None:
    leaves = [x] if isinstance(x, Tensor) else list(x.values(include_nested=True, leaves_only=True))
    for leaf in leaves:
        if leaf.is_floating_point() and not bool(torch.isfinite(leaf).all()):
            bad = int((~torch.isfinite(leaf)).sum())
            raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")


def index_cond(cond: Any, idx: Tensor) -> Any:
    return None if cond is None else cond[idx]


@dataclass
class Trajectory:
    """A generation path from noise to data.

    Attributes:
        xs: states, shape ``(steps + 1, N, *x_shape)``; ``xs[0]`` is noise, ``xs[-1]`` the sample.
        times: the time of each state, shape ``(steps + 1,)``, from the noise end to the data end.
    """

    xs: Tensor
    times: Tensor


@dataclass
class SampleWithLogProb:
    """Samples and their model log-density computed along the same generation path.

    Attributes:
        x: samples, same shape as :meth:`GenerativeModel.sample` returns.
        log_prob: log p(x | cond), shape ``x.shape[:-len(x_shape)]``.
    """

    x: Tensor
    log_prob: Tensor


def device_of(cond: Any):
    return cond.device if isinstance(cond, Tensor) or is_tensordict(cond) else "cpu"
