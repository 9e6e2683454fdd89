"""TD3+BC (Fujimoto & Gu 2021): TD3 with a behaviour-cloning term in the actor loss,

    pi = argmax E_{(s,a)~D}[ lambda Q1(s, pi(s)) - (pi(s) - a)^2 ],   lambda = alpha / mean|Q1(s, pi(s))|   (Eq 3-4)

twin critics with target policy smoothing (noise 0.2 clipped at 0.5), the actor and targets updated every
``policy_freq`` critic steps. One stage, ``train``; eager only (the every-other-step actor update is a host-side
branch, so the step is not compiled whole).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial
from typing import Annotated, ClassVar

import torch
from torch import Tensor

from ...config import Range
from ...optim import minimize
from ...rng import randn_like
from ..actors import DeterministicActor
from ..critics import TwinQ, polyak_, twin_q_loss
from ..data import Batch
from .base import Algorithm, RunConfig, Stage
from .registry import register

__all__ = ["TD3BCConfig", "TD3BC"]


@dataclass
class TD3BCConfig(RunConfig):
    """TD3+BC settings (the paper's Table 3 / its code's defaults)."""

    #: the tests' budget for these fields: a few steps, small networks (every generic test runs it)
    tiny: ClassVar[dict] = {"actor_hidden": (16, 16), "critic_hidden": (16, 16), "steps": 3}
    #: fields of earlier versions: a checkpoint that has them loads with their values under the new names
    renamed: ClassVar[dict] = {"hidden": ("actor_hidden", "critic_hidden"), "tau": ("polyak",)}

    steps: Annotated[int, Range(ge=0)] = 1_000_000
    """training steps (critic updates)"""
    alpha: Annotated[float, Range(ge=0)] = 2.5
    """weight of Q against the BC term (lambda = alpha / mean |Q|)"""
    actor_lr: Annotated[float, Range(gt=0)] = 3e-4
    """actor learning rate"""
    critic_lr: Annotated[float, Range(gt=0)] = 3e-4
    """critic learning rate"""
    actor_hidden: Annotated[tuple[int, ...], Range(ge=1)] = (256, 256)
    """hidden sizes of the actor"""
    critic_hidden: Annotated[tuple[int, ...], Range(ge=1)] = (256, 256)
    """hidden sizes of the twin critics"""
    gamma: Annotated[float, Range(ge=0, le=1)] = 0.99
    """discount"""
    polyak: Annotated[float, Range(gt=0, le=1)] = 0.005
    """target-network rate"""
    policy_noise: Annotated[float, Range(ge=0)] = 0.2
    """std of the target policy smoothing noise"""
    noise_clip: Annotated[float, Range(ge=0)] = 0.5
    """clip of that noise"""
    policy_freq: Annotated[int, Range(ge=1)] = 2
    """actor and target updates every this many critic updates"""

    stage_steps: ClassVar[tuple[str, ...]] = ("steps",)


def _actor_loss(actor: DeterministicActor, qf: TwinQ, obs: Tensor, act: Tensor, alpha: float) -> tuple[Tensor, dict]:
    pi = actor(obs)
    q = qf.both(obs, pi)[0]
    lam = alpha / q.abs().mean().detach()
    bc = ((pi - act) ** 2).mean()
    return -lam * q.mean() + bc, {"bc_mse": bc, "lambda": lam}


@register
class TD3BC(Algorithm):
    """TD3+BC: twin critics and a deterministic actor trained together; one stage, ``train``."""

    name = "td3bc"
    Config = TD3BCConfig

    def __init__(self, obs_dim: int, act_dim: int, cfg: TD3BCConfig, normalizer=None):
        super().__init__(obs_dim, act_dim, cfg, normalizer)
        self.actor = DeterministicActor(obs_dim, act_dim, cfg.actor_hidden)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.qf = TwinQ(obs_dim, act_dim, cfg.critic_hidden)
        self.q_target = copy.deepcopy(self.qf).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, fused=True)
        self.q_opt = torch.optim.Adam(self.qf.parameters(), lr=cfg.critic_lr, fused=True)
        # critic updates so far: a buffer (checkpointed) mirrored by a host counter (read without a sync)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self._updates = 0
        self.register_load_state_dict_post_hook(lambda m, keys: setattr(m, "_updates", int(m.updates)))

    def optimizers(self):
        return {"actor_opt": self.actor_opt, "q_opt": self.q_opt}

    def stages(self) -> list[Stage]:
        # the delayed actor step branches on a host counter: vmapped across seeds, not compiled
        return [Stage("train", self.cfg.steps, self.update, evaluates=True,
                      functional=partial(self.update, functional=True), stackable=True, compiles=False)]

    def update(self, batch: Batch, functional: bool = False) -> dict[str, Tensor]:
        cfg = self.cfg
        with torch.no_grad():  # target policy smoothing (TD3)
            noise = (randn_like(batch.actions) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            next_a = (self.actor_target(batch.next_obs) + noise).clamp(-1.0, 1.0)
            target = batch.rewards + cfg.gamma * (1.0 - batch.dones) * self.q_target(batch.next_obs, next_a)
        loss_q, q_aux, _ = minimize(self.q_opt, self.qf, twin_q_loss, batch.obs, batch.actions, target,
                                    functional=functional)
        self._updates += 1
        self.updates += 1
        m = {"q_loss": loss_q, "q_mean": q_aux["q_mean"]}
        if self._updates % cfg.policy_freq == 0:
            loss_pi, aux, _ = minimize(self.actor_opt, self.actor, _actor_loss, self.qf, batch.obs, batch.actions,
                                       cfg.alpha, functional=functional)
            polyak_(self.q_target, self.qf, cfg.polyak)
            polyak_(self.actor_target, self.actor, cfg.polyak)
            m.update(actor_loss=loss_pi, bc_mse=aux["bc_mse"], lam=aux["lambda"])
        return m

    def act_normalized(self, obs: Tensor) -> Tensor:
        return self.actor(obs)
