"""Euler-Maruyama for the reverse-time SDE of a Gaussian path.

Reverse SDE (Song et al. 2021), run from t=1 (noise) to t=0 (data):

    dx = [f(t) x - g^2(t) score(x, t)] dt + g(t) dw_bar

The last step adds no noise, so the returned sample is the denoised mean.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import ODESolution, Predict, Sampler, TrajectoryRecorder, uniform_grid

__all__ = ["EulerMaruyama"]


class EulerMaruyama(Sampler):
    """Euler-Maruyama on a uniform grid; needs the model's score (converted from any parameterization).

    Args:
        generator: optional torch.Generator for the Brownian increments.
    """

    name = "sde"
    order = 1
    prediction = "score"

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator

    def sample(self, predict: Predict, path, x1: Tensor, t_start: float, t_end: float, steps: int,
               keep_trajectory: bool = False, params=()) -> ODESolution:
        """Simulate the reverse SDE from ``x1`` at ``t_start`` to ``t_end`` with ``predict`` the score (module doc)."""
        grid = uniform_grid(t_start, t_end, steps, x1)
        dts = grid[1:] - grid[:-1]
        f_all, g2_all = path.drift(grid), path.diffusion_squared(grid)
        x = x1
        rec = TrajectoryRecorder(keep_trajectory, (x,))
        for i in range(steps):
            score = predict(x, grid[i])
            x = x + (f_all[i] * x - g2_all[i] * score) * dts[i]
            if i < steps - 1:
                z = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=self.generator)
                x = x + torch.sqrt(-g2_all[i] * dts[i]) * z
            rec.add((x,))
        return rec.solution((x,), grid)
