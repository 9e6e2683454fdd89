"""Euler-Maruyama for the reverse-time SDE of a Gaussian path.

Reverse SDE (Song et al. 2021), run from t=1 (noise) to t=0 (data):

    dx = [f(t) x - g^2(t) score(x, t)] dt + g(t) dw_bar

The last step adds no noise, so the returned sample is the denoised mean.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .ode import ODESolution, uniform_grid

__all__ = ["EulerMaruyama"]


class EulerMaruyama:
    """Euler-Maruyama on a uniform grid; needs the model's score (converted from any parameterization).

    Args:
        generator: optional torch.Generator for the Brownian increments.
    """

    name = "sde"
    order = 1
    prediction = "score"

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator

    def sample(self, model, x1: Tensor, cond, t_start: float, t_end: float, steps: int,
               keep_trajectory: bool = False) -> ODESolution:
        """Simulate the reverse SDE from ``x1`` at ``t_start`` to ``t_end`` (see module doc)."""
        path = model.path
        grid = uniform_grid(t_start, t_end, steps, x1)
        dts = grid[1:] - grid[:-1]
        f_all, g2_all = path.drift(grid), path.diffusion_squared(grid)
        batch = x1.shape[0]
        x = x1
        traj = [x] if keep_trajectory else None
        for i in range(steps):
            t = grid[i]
            score = model.predict_unchecked(x, t.expand(batch), cond, "score")
            x = x + (f_all[i] * x - g2_all[i] * score) * dts[i]
            if i < steps - 1:
                z = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=self.generator)
                x = x + torch.sqrt(-g2_all[i] * dts[i]) * z
            if traj is not None:
                traj.append(x)
        return ODESolution(y=(x,), trajectory=(torch.stack(traj),) if traj is not None else None, times=grid)

    def __repr__(self):
        return "EulerMaruyama()"
