"""IQL (Kostrikov et al. 2022): the expectile critic of :mod:`genpolicy.rl.critics` plus a Gaussian actor trained by
advantage-weighted regression,

    L_pi = -E_{(s,a)~D}[ min(exp(beta (Q(s,a) - V(s))), 100) log pi(a | s) ]      (IQL paper Eq 7; beta = 3 locomotion)

evaluated with the mean action. The critic is trained first, then the actor on the fixed critic (the staging every
algorithm here uses, so one critic can be shared); the original trains both jointly, with a cosine-decayed actor
learning rate, which this version leaves out (constant learning rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Annotated, ClassVar

import torch
from torch import Tensor

from ...config import Range
from ...optim import minimize
from ..actors import GaussianActor
from ..critics import IQLCritic
from ..data import Batch
from .base import Algorithm, Stage
from .common import CriticConfig, advantage_weights, critic_stage
from .registry import register

__all__ = ["IQLAWRConfig", "IQL"]


@dataclass
class IQLAWRConfig(CriticConfig):
    """IQL settings (the IQL paper's locomotion values; CORL's iql.py)."""

    #: the tests' budget for these fields: a few steps, small networks (every generic test runs it)
    tiny: ClassVar[dict] = {"actor_hidden": (16, 16), "policy_steps": 3}

    beta: Annotated[float, Range(ge=0)] = 3.0
    """inverse temperature of the advantage weights (3 locomotion, 10 antmaze)"""
    weight_clamp: Annotated[float, Range(gt=0)] = 100.0
    """upper clamp of exp(beta A)"""
    policy_steps: Annotated[int, Range(ge=0)] = 100_000
    """actor steps"""
    policy_lr: Annotated[float, Range(gt=0)] = 3e-4
    """actor learning rate"""
    actor_hidden: Annotated[tuple[int, ...], Range(ge=1)] = (256, 256)
    """hidden sizes of the actor"""


def _awr(actor: GaussianActor, obs: Tensor, act: Tensor, w: Tensor) -> tuple[Tensor, dict]:
    return -(w * actor.log_prob(obs, act)).mean(), {}


@register
class IQL(Algorithm):
    """IQL: expectile critic, then an advantage-weighted Gaussian actor; stages ``critic``, ``policy``."""

    name = "iql"
    Config = IQLAWRConfig

    def __init__(self, obs_dim: int, act_dim: int, cfg: IQLAWRConfig, normalizer=None):
        super().__init__(obs_dim, act_dim, cfg, normalizer)
        self.critic = IQLCritic(obs_dim, act_dim, cfg.iql())
        self.actor = GaussianActor(obs_dim, act_dim, cfg.actor_hidden)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.policy_lr, fused=True)

    def optimizers(self):
        return {"actor_opt": self.actor_opt, **self.critic.optimizers()}

    def stages(self) -> list[Stage]:
        cfg = self.cfg
        return [critic_stage(self.critic, cfg.critic_steps),
                Stage("policy", cfg.policy_steps, self.update_policy, evaluates=True,
                      functional=partial(self.update_policy, functional=True),
                      stackable=True)]

    def update_policy(self, batch: Batch, functional: bool = False) -> dict[str, Tensor]:
        """One advantage-weighted regression step of the actor."""
        with torch.no_grad():
            adv = self.critic.advantage(batch.obs, batch.actions)
            w = advantage_weights(adv, self.cfg.beta, self.cfg.weight_clamp)
        loss, _, _ = minimize(self.actor_opt, self.actor, _awr, batch.obs, batch.actions, w, functional=functional)
        return {"actor_loss": loss, "weight_mean": w.mean(), "adv_mean": adv.mean()}

    def act_normalized(self, obs: Tensor) -> Tensor:
        return self.actor(obs)
