"""FQL, flow Q-learning (Park, Li & Levine 2025): a flow behaviour policy trained by flow matching, and a one-step
policy ``mu_omega(s, z)`` that maximizes Q while it distils the flow's noise-to-action map:

    L_flow(theta)  = E || v_theta(a_t, t | s) - (a - z) ||^2                        (FQL Eq 6, flow matching)
    L_pi(omega)    = E_s,z [ -Q(s, mu_omega(s, z)) ] + alpha E_s,z || mu_omega(s, z) - ODE_theta(s, z) ||^2  (Eq 8)
    L_Q(phi)       = E ( Q_phi(s, a) - r - gamma agg_i Qbar_i(s', mu_omega(s', z')) )^2                    (Eq 7)

(our flow runs from noise at t = 1 to data at t = 0: the same map). The ODE is solved by Euler with ``flow_steps``
steps and is not differentiated (the distillation target). ``normalize_q_loss`` divides the Q term by the batch
mean of |Q| (FQL's option), so ``alpha`` is a weight relative to one whatever the reward scale. Acting is one
network call: ``mu_omega(s, z)``, z ~ N(0, I), clipped to [-1, 1]. One stage, ``train``: critic then actor each step.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial
from typing import Annotated, ClassVar, Literal

import torch
from torch import Tensor, nn

from ...config import Range
from ...generative import GenerativeModel
from ...nets import make_net, mlp
from ...optim import minimize
from ..critics import TwinQ, polyak_, twin_q_loss
from ..data import Batch
from .base import Algorithm, RunConfig, Stage
from .registry import register

__all__ = ["FQLConfig", "FQL", "OneStepPolicy"]


@dataclass
class FQLConfig(RunConfig):
    """FQL settings (the FQL paper's defaults: 4 x 512 networks, alpha 10, 10 flow steps, mean of two Qs)."""

    #: the tests' budget for these fields: a few steps, small networks (every generic test runs it)
    tiny: ClassVar[dict] = {"actor_hidden": (16, 16), "critic_hidden": (16, 16), "net_hidden": (16, 16),
                            "flow_steps": 2, "steps": 3}
    renamed: ClassVar[dict] = {"flow_hidden": ("net_hidden",)}  # earlier versions' fields, loaded under the new names

    steps: Annotated[int, Range(ge=0)] = 1_000_000
    """training steps (one critic and one actor update each)"""
    alpha: Annotated[float, Range(ge=0)] = 10.0
    """distillation weight (Eq 8)"""
    flow_steps: Annotated[int, Range(ge=1)] = 10
    """Euler steps of the flow policy's ODE (the distillation target)"""
    lr: Annotated[float, Range(gt=0)] = 3e-4
    """Adam learning rate of every network"""
    net_hidden: Annotated[tuple[int, ...], Range(ge=1)] = (512, 512, 512, 512)
    """hidden sizes of the flow policy's velocity network"""
    actor_hidden: Annotated[tuple[int, ...], Range(ge=1)] = (512, 512, 512, 512)
    """hidden sizes of the one-step policy"""
    critic_hidden: Annotated[tuple[int, ...], Range(ge=1)] = (512, 512, 512, 512)
    """hidden sizes of the two Q networks"""
    critic_layer_norm: bool = True
    """LayerNorm in the Q networks (FQL's value_layer_norm)"""
    q_agg: Literal["mean", "min"] = "mean"
    """how the two Qs are combined in the target and the actor loss"""
    normalize_q_loss: bool = True
    """divide the actor's Q term by the batch mean |Q| (FQL's option: alpha then does not depend on the reward
    scale)"""
    gamma: Annotated[float, Range(ge=0, le=1)] = 0.99
    """discount"""
    polyak: Annotated[float, Range(gt=0, le=1)] = 0.005
    """target-network rate"""

    stage_steps: ClassVar[tuple[str, ...]] = ("steps",)


class OneStepPolicy(nn.Module):
    """``mu(s, z)``: an MLP on the state and a noise vector, returning an action (unclipped)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden):
        super().__init__()
        self.net = mlp(obs_dim + act_dim, act_dim, hidden)

    def forward(self, obs: Tensor, z: Tensor) -> Tensor:
        return self.net(torch.cat([obs, z], dim=-1))


def _agg(qs: tuple[Tensor, Tensor], how: str) -> Tensor:
    return torch.minimum(*qs) if how == "min" else 0.5 * (qs[0] + qs[1])


def _actor_loss(algo: "FQL", batch: Batch, z: Tensor, target: Tensor) -> tuple[Tensor, dict]:
    cfg = algo.cfg
    flow = algo.flow.matching_loss(batch.actions, batch.obs, kind="flow", check=False).mean()  # Eq 6
    a = algo.actor(batch.obs, z)
    distill = ((a - target) ** 2).mean()  # Eq 8, second term (mean over rows and action dimensions, as FQL)
    q = _agg(algo.qf.both(batch.obs, a.clamp(-1.0, 1.0)), cfg.q_agg)
    q_loss = -q.mean()
    if cfg.normalize_q_loss:
        q_loss = q_loss / q.abs().mean().detach()
    return flow + cfg.alpha * distill + q_loss, {"flow_loss": flow, "distill_loss": distill, "q_pi": q.mean()}


@register
class FQL(Algorithm):
    """FQL: flow behaviour policy, one-step policy and twin Q trained together; one stage, ``train``."""

    name = "fql"
    Config = FQLConfig

    def __init__(self, obs_dim: int, act_dim: int, cfg: FQLConfig, normalizer=None):
        super().__init__(obs_dim, act_dim, cfg, normalizer)
        net = make_net("mlp", act_dim, obs_dim, hidden=tuple(cfg.net_hidden))
        self.flow = GenerativeModel(net, "linear", (act_dim,), param="velocity")
        self.actor = OneStepPolicy(obs_dim, act_dim, cfg.actor_hidden)
        self.qf = TwinQ(obs_dim, act_dim, cfg.critic_hidden, layer_norm=cfg.critic_layer_norm)
        self.q_target = copy.deepcopy(self.qf).requires_grad_(False)
        self.q_opt = torch.optim.Adam(self.qf.parameters(), lr=cfg.lr, fused=True)
        self.actor_opt = torch.optim.Adam([*self.flow.parameters(), *self.actor.parameters()], lr=cfg.lr, fused=True)

    def optimizers(self):
        return {"q_opt": self.q_opt, "actor_opt": self.actor_opt}

    def stages(self) -> list[Stage]:
        return [Stage("train", self.cfg.steps, self.update, evaluates=True,
                      functional=partial(self.update, functional=True))]

    def update(self, batch: Batch, functional: bool = False) -> dict[str, Tensor]:
        cfg = self.cfg
        with torch.no_grad():  # Eq 7 target: next actions from the one-step policy
            next_a = self.actor(batch.next_obs, torch.randn_like(batch.actions)).clamp(-1.0, 1.0)
            next_q = _agg(self.q_target.both(batch.next_obs, next_a), cfg.q_agg)
            target = batch.rewards + cfg.gamma * (1.0 - batch.dones) * next_q
        loss_q, q_aux, _ = minimize(self.q_opt, self.qf, twin_q_loss,  # Eq 7, both heads
                                    batch.obs, batch.actions, target,
                                    functional=functional)
        z = torch.randn_like(batch.actions)
        with torch.no_grad():  # the distillation target: the flow's ODE from the same noise
            target_a = self.flow.sample(batch.obs, x1=z, solver="euler", steps=cfg.flow_steps, check=False)
        loss_pi, aux, _ = minimize(self.actor_opt, self, _actor_loss, batch, z, target_a, functional=functional)
        polyak_(self.q_target, self.qf, cfg.polyak)
        return {"q_loss": loss_q, "q_mean": q_aux["q_mean"], "actor_loss": loss_pi, **aux}

    def act_normalized(self, obs: Tensor) -> Tensor:
        z = torch.randn(obs.shape[0], self.act_dim, device=obs.device, dtype=obs.dtype)
        return self.actor(obs, z * self.cfg.act_temperature).clamp(-1.0, 1.0)
