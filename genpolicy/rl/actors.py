"""Plain (non-generative) actors for the reference algorithms: a Gaussian policy with a tanh mean and a learned
state-independent log-std (BC, IQL's actor), and a deterministic tanh policy (TD3+BC)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..nets import mlp

__all__ = ["GaussianActor", "DeterministicActor"]


class GaussianActor(nn.Module):
    """``pi(a | s) = N(tanh(f(s)), diag(exp(2 log_std)))`` with ``log_std`` a learned vector clamped to
    [log_std_min, log_std_max] (the IQL paper's actor, as in CORL). ``forward`` gives the mean action."""

    def __init__(self, obs_dim: int, act_dim: int, hidden=(256, 256), log_std_min: float = -5.0,
                 log_std_max: float = 2.0):
        super().__init__()
        self.net = mlp(obs_dim, act_dim, hidden)
        self.log_std = nn.Parameter(torch.zeros(act_dim))
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.net(obs))

    def log_prob(self, obs: Tensor, act: Tensor) -> Tensor:
        """``log pi(act | obs)`` per row ``(B,)`` (written out: no distribution-argument checks, which sync)."""
        log_std = self.log_std.clamp(self.log_std_min, self.log_std_max)
        z = (act - self(obs)) * torch.exp(-log_std)
        return (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


class DeterministicActor(nn.Module):
    """``a = tanh(f(s))`` (TD3's actor)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden=(256, 256)):
        super().__init__()
        self.net = mlp(obs_dim, act_dim, hidden)

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.net(obs))
