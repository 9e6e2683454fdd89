"""The sampler interface every solver implements, its result type, and the shared grid and trajectory helpers.

A sampler integrates a generative model from noise to data. It never sees the model: it gets a prediction
function ``predict(x, t) -> Tensor`` (``t`` a 0-dim time, the output of the kind named by the sampler's
``prediction`` attribute) and the :class:`~genpolicy.paths.GaussianPath` (for solvers that need its schedule).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

State = tuple[Tensor, ...]
Predict = Callable[[Tensor, Tensor], Tensor]

__all__ = ["Sampler", "ODESolution", "TrajectoryRecorder", "uniform_grid", "State", "Predict"]


def uniform_grid(t_start: float, t_end: float, steps: int, like: Tensor) -> Tensor:
    """``steps + 1`` equally spaced times from ``t_start`` to ``t_end`` on ``like``'s device and dtype."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return torch.linspace(t_start, t_end, steps + 1, device=like.device, dtype=like.dtype)


@dataclass
class ODESolution:
    """Result of an integration.

    Attributes:
        y: the state at the last grid time.
        trajectory: per tuple entry a tensor ``(len(grid), *shape)`` of states at every grid time, or None
            when not requested.
        times: the grid, shape ``(steps + 1,)``.
    """

    y: State
    trajectory: State | None
    times: Tensor


class TrajectoryRecorder:
    """Collects the states of a solve when asked to (``keep=False`` records nothing and costs nothing)."""

    def __init__(self, keep: bool, y0: State):
        self.states = [y0] if keep else None

    def add(self, y: State) -> None:
        if self.states is not None:
            self.states.append(y)

    def solution(self, y: State, times: Tensor) -> ODESolution:
        """The :class:`ODESolution` ending in ``y``, with the stacked states when recording."""
        traj = None
        if self.states is not None:
            traj = tuple(torch.stack([s[j] for s in self.states]) for j in range(len(y)))
        return ODESolution(y=y, trajectory=traj, times=times)


class Sampler(ABC):
    """Integrates from noise ``x1`` at ``t_start`` to ``t_end`` given the model's predictions.

    Attributes:
        name: registry name (see :data:`genpolicy.solvers.SOLVERS`).
        order: order of global accuracy.
        prediction: what ``predict`` must return: ``velocity`` (ODE solvers), ``score`` (SDE) or ``noise`` (DPM).
        needs_params: ``sample`` must be given the parameters ``predict`` depends on (adjoint methods).
    """

    name: str = ""
    order: int = 0
    prediction: str = "velocity"
    needs_params: bool = False

    @abstractmethod
    def sample(self, predict: Predict, path, x1: Tensor, t_start: float, t_end: float, steps: int,
               keep_trajectory: bool = False, params: Sequence[torch.nn.Parameter] = ()) -> ODESolution:
        """Integrate ``steps`` steps; ``params`` are the parameters ``predict`` depends on (for adjoint methods)."""

    def __repr__(self):
        return f"{type(self).__name__}()"
