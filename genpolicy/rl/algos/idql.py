"""IDQL (Hansen-Estruch et al. 2023): an IQL critic, a generative behaviour policy, and action selection at test time.

The expectile critic defines an implicit policy pi(a | s) proportional to mu(a | s) w(s, a) with (IDQL Eq 9, the
expectile case)

    w(s, a) = |tau - 1(Q(s, a) < V(s))| / |Q(s, a) - V(s)|

so acting draws K actions from the behaviour model mu and picks one with probability proportional to w (the
``expectile`` selector), or the one with the highest Q (``argmax``, IDQL's greedy variant). The behaviour model
is the paper's LayerNorm residual network trained by denoising (here any path and loss of the library).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import torch
from torch import Tensor

from ...config import Range
from ...nets import NetName
from ..critics import IQLCritic, q_of_each
from .base import Algorithm, Stage
from .common import (DiffusionPolicyConfig, behaviour_cloning_stage, build_policy_model, candidate_actions,
                     critic_stage, pick)
from .registry import register

__all__ = ["IDQLConfig", "IDQL", "idql_weights"]


@dataclass
class IDQLConfig(DiffusionPolicyConfig):
    """IDQL settings (the paper's locomotion defaults: expectile 0.7, K = 32 samples, LN-ResNet, 3 blocks of 256)."""

    #: the tests' budget for these fields: a few steps, small networks (every generic test runs it)
    tiny: ClassVar[dict] = {"num_samples": 2}

    net: NetName = "resnet"
    """behaviour network (IDQL: LayerNorm ResNet)"""
    num_samples: Annotated[int, Range(ge=1)] = 32
    """actions drawn from the behaviour model per state at act time (K)"""
    selector: Literal["expectile", "argmax"] = "expectile"
    """expectile: sample an action with probability proportional to the implicit-policy weight; argmax: highest Q"""
    policy_lr: float = 3e-4
    """behaviour-model learning rate"""

    act_fields: ClassVar[tuple[str, ...]] = ("num_samples", "selector")


def idql_weights(q: Tensor, v: Tensor, tau: float, eps: float = 1e-6) -> Tensor:
    """``|tau - 1(q < v)| / |q - v|`` (IDQL's implicit-policy weight for the expectile critic), elementwise."""
    return (tau - (q < v).to(q.dtype)).abs() / ((q - v).abs() + eps)


@register
class IDQL(Algorithm):
    """IDQL: IQL critic and a diffusion behaviour policy whose samples the critic selects; stages critic, policy."""

    name = "idql"
    Config = IDQLConfig

    def __init__(self, obs_dim: int, act_dim: int, cfg: IDQLConfig, normalizer=None):
        super().__init__(obs_dim, act_dim, cfg, normalizer)
        self.critic = IQLCritic(obs_dim, act_dim, cfg.iql())
        self.policy = build_policy_model(cfg, obs_dim, act_dim)
        self.policy_opt = torch.optim.Adam(self.policy.parameters(), lr=cfg.policy_lr, fused=True)

    def optimizers(self):
        return {"policy_opt": self.policy_opt, **self.critic.optimizers()}

    def stages(self) -> list[Stage]:
        cfg = self.cfg
        return [critic_stage(self.critic, cfg.critic_steps),
                behaviour_cloning_stage(self.policy, self.policy_opt, cfg.policy_steps, cfg.loss, cfg.weighting,
                                        cfg.grad_clip, name="policy", evaluates=True)]

    def act_normalized(self, obs: Tensor) -> Tensor:
        cfg = self.cfg
        a = candidate_actions(self.policy, obs, cfg.num_samples, cfg)
        q = q_of_each(self.critic.q, obs, a)
        if cfg.selector == "argmax":
            idx = q.argmax(dim=1)
        else:
            w = idql_weights(q, self.critic.v(obs).unsqueeze(1), cfg.expectile)
            idx = torch.multinomial(w / w.sum(dim=1, keepdim=True), 1).squeeze(1)
        return pick(a, idx)
