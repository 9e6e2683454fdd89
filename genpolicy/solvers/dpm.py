"""DPM-Solver (Lu et al. 2022), single-step orders 1-3, for Gaussian (diffusion) paths.

Works in the half log-SNR ``lambda = log(alpha / sigma)`` with the model's noise prediction. Steps are
uniform in lambda. One step of order k costs k model evaluations. Order 1 is DDIM:

    x_t = (alpha_t / alpha_s) x_s - sigma_t (e^h - 1) eps(x_s, s),      h = lambda_t - lambda_s
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import ODESolution, Predict, Sampler, TrajectoryRecorder

__all__ = ["DPMSolver"]


class DPMSolver(Sampler):
    """DPM-Solver-1/2/3 (Algorithm 1-2 of Lu et al. 2022 with r1 = 1/2 for order 2, (1/3, 2/3) for order 3).

    Args:
        order: 1, 2 or 3.
    """

    prediction = "noise"

    def __init__(self, order: int = 2):
        if order not in (1, 2, 3):
            raise ValueError(f"DPM-Solver order must be 1, 2 or 3, got {order}")
        self.order = order
        self.name = f"dpm{order}"

    def sample(self, predict: Predict, path, x1: Tensor, t_start: float, t_end: float, steps: int,
               keep_trajectory: bool = False, params=()) -> ODESolution:
        """Integrate from noise ``x1`` at ``t_start`` to ``t_end`` in ``steps`` steps uniform in lambda, with
        ``predict`` the noise prediction."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        ends = torch.tensor([t_start, t_end], device=x1.device, dtype=x1.dtype)
        lam_ends = path.log_snr(ends)
        lams = torch.linspace(0.0, 1.0, steps + 1, device=x1.device, dtype=x1.dtype)
        lams = lam_ends[0] + (lam_ends[1] - lam_ends[0]) * lams
        ts = path.t_of_log_snr(lams)
        ts[0], ts[-1] = ends[0], ends[1]
        hs = lams[1:] - lams[:-1]
        r = {1: (), 2: (0.5,), 3: (1.0 / 3.0, 2.0 / 3.0)}[self.order]
        # intermediate times for every step, precomputed: (steps, len(r))
        mids = [path.t_of_log_snr(lams[:-1] + ri * hs) for ri in r]
        eps = predict
        a, s = path.alpha, path.sigma
        x = x1
        rec = TrajectoryRecorder(keep_trajectory, (x,))
        for i in range(steps):
            ts_, tt, h = ts[i], ts[i + 1], hs[i]
            e_s = eps(x, ts_)
            if self.order == 1:
                x = a(tt) / a(ts_) * x - s(tt) * torch.expm1(h) * e_s
            elif self.order == 2:
                s1 = mids[0][i]
                u = a(s1) / a(ts_) * x - s(s1) * torch.expm1(0.5 * h) * e_s
                x = a(tt) / a(ts_) * x - s(tt) * torch.expm1(h) * eps(u, s1)
            else:
                r1, r2 = r
                s1, s2 = mids[0][i], mids[1][i]
                u1 = a(s1) / a(ts_) * x - s(s1) * torch.expm1(r1 * h) * e_s
                d1 = eps(u1, s1) - e_s
                u2 = (a(s2) / a(ts_) * x - s(s2) * torch.expm1(r2 * h) * e_s
                      - s(s2) * r2 / r1 * (torch.expm1(r2 * h) / (r2 * h) - 1.0) * d1)
                d2 = eps(u2, s2) - e_s
                x = (a(tt) / a(ts_) * x - s(tt) * torch.expm1(h) * e_s
                     - s(tt) / r2 * (torch.expm1(h) / h - 1.0) * d2)
            rec.add((x,))
        return rec.solution((x,), ts)

    def __repr__(self):
        return f"DPMSolver(order={self.order})"
