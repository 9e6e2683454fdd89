"""BC: Gaussian behaviour cloning, the plainest reference: maximize ``log pi(a | s)`` over the dataset with a
tanh-mean Gaussian and a learned log-std; act with the mean."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Annotated, ClassVar

import torch
from torch import Tensor

from ...config import Range
from ...optim import minimize
from ..actors import GaussianActor
from ..data import Batch
from .base import Algorithm, RunConfig, Stage
from .registry import register

__all__ = ["BCConfig", "BC"]


@dataclass
class BCConfig(RunConfig):
    """Gaussian behaviour cloning settings."""

    #: the tests' budget for these fields: a few steps, small networks (every generic test runs it)
    tiny: ClassVar[dict] = {"actor_hidden": (16, 16), "policy_steps": 3}

    policy_steps: Annotated[int, Range(ge=0)] = 100_000
    """behaviour-cloning steps"""
    policy_lr: Annotated[float, Range(gt=0)] = 3e-4
    """Adam learning rate"""
    actor_hidden: Annotated[tuple[int, ...], Range(ge=1)] = (256, 256)
    """hidden sizes of the actor"""

    stage_steps: ClassVar[tuple[str, ...]] = ("policy_steps",)


def _nll(actor: GaussianActor, obs: Tensor, act: Tensor) -> tuple[Tensor, dict]:
    return -actor.log_prob(obs, act).mean(), {}


@register
class BC(Algorithm):
    """Gaussian behaviour cloning (mean action at test time); one stage, ``policy``."""

    name = "bc"
    Config = BCConfig

    def __init__(self, obs_dim: int, act_dim: int, cfg: BCConfig, normalizer=None):
        super().__init__(obs_dim, act_dim, cfg, normalizer)
        self.actor = GaussianActor(obs_dim, act_dim, cfg.actor_hidden)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.policy_lr, fused=True)

    def optimizers(self):
        return {"actor_opt": self.actor_opt}

    def stages(self) -> list[Stage]:
        return [Stage("policy", self.cfg.policy_steps, self.update, evaluates=True,
                      functional=partial(self.update, functional=True), stackable=True)]

    def update(self, batch: Batch, functional: bool = False) -> dict[str, Tensor]:
        loss, _, _ = minimize(self.actor_opt, self.actor, _nll, batch.obs, batch.actions, functional=functional)
        return {"bc_loss": loss, "log_std_mean": self.actor.log_std.detach().mean()}

    def act_normalized(self, obs: Tensor) -> Tensor:
        return self.actor(obs)
