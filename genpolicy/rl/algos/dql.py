"""Diffusion-QL (Wang et al. 2023): a diffusion policy trained by its denoising loss plus a Q term back-propagated
through the sampler, and twin critics trained with the policy's own next actions:

    L_pi(theta) = L_matching(theta) - eta E_s[ Q_1(s, a_theta) ] / E|Q_2(s, a_theta)|,  a_theta ~ pi_theta(. | s)
                                                                  (Diffusion-QL Eq 3; the GenerativeRL paper's Eq 37)
    L_Q(xi)     = E[ (Q_i(s, a) - r - gamma (1 - d) min_j Qbar_j(s', a')))^2 ],  a' ~ pi_ema(. | s')      (Eq 36)

with a' drawn from an EMA copy of the policy (decay 0.995, updated every 5 steps after the first 1000, copied before),
or the max over ``backup_samples`` of them (``max_q_backup``, Diffusion-QL's antmaze option). The policy samples
with the library's solvers on a continuous-time path (``act_solver``/``act_steps``, used in training and acting;
Diffusion-QL uses a 5-step discrete DDPM). Two things make the continuous path behave as that DDPM does:
the denoising loss is trained at the sampler's own times (``bc_times="sampler"``: the 5 times a 5-step Euler solve
reads the network at, as a T = 5 DDPM trains its 5 steps; trained at uniform times instead, the loss leaves those
5 outputs nearly free and the Q term bends them until every action sits on the box's corner, while 50-step samples
of the same network stay near the data), and the denoised estimate is clamped to the action box at every step as
Diffusion-QL's sampler does (``clip_denoised``); docs/results.md shows the divergence. The gradient-norm clip
applies to policy and critics, as in its code, and the Q term uses either head at random, normalized by the other.
Acting draws ``num_samples`` actions and picks one with probability softmax(Q) (Diffusion-QL's evaluation).
One stage, ``train``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial
from typing import Annotated, ClassVar, Literal

import torch
from torch import Tensor

from ...config import Range
from ...matching import LossKind, Weighting
from ...nets import NetName
from ...optim import minimize
from ...paths import Parameterization, PathName
from ..critics import TwinQ, polyak_, q_of_each, twin_q_loss
from ..data import Batch
from .base import Algorithm, RunConfig, Stage
from .common import Precision, build_policy_model, candidate_actions, pick
from .registry import register

__all__ = ["DiffusionQLConfig", "DiffusionQL"]


@dataclass
class DiffusionQLConfig(RunConfig):
    """Diffusion-QL settings (its paper's locomotion values: 3 x 256 Mish MLPs, eta 1, EMA 0.995, 50 candidates)."""

    #: the tests' budget for these fields: a few steps, small networks (every generic test runs it)
    tiny: ClassVar[dict] = {"critic_hidden": (16, 16), "net": "mlp", "net_hidden": (16, 16), "num_samples": 2,
                            "steps": 3}

    steps: Annotated[int, Range(ge=0)] = 1_000_000
    """training steps (one critic and one policy update each)"""
    path: PathName = "vpsde"
    """path of the diffusion policy"""
    param: Parameterization = "noise"
    """policy network output"""
    net: NetName = "mlp"
    """policy network"""
    net_hidden: Annotated[tuple[int, ...], Range(ge=1)] = (256, 256, 256)
    """hidden sizes of the policy network"""
    policy_precision: Precision = "fp32"
    """the policy network's matrix products: fp32, or bf16 (autocast; weights, optimizer, losses and critics stay
    fp32; not bit-equal to fp32)"""
    loss: LossKind = "score"
    """matching loss (the behaviour-cloning term)"""
    weighting: Weighting = "vanilla"
    """score-matching weighting"""
    eta: Annotated[float, Range(ge=0)] = 1.0
    """weight of the normalized Q term (Diffusion-QL's eta)"""
    lr: Annotated[float, Range(gt=0)] = 3e-4
    """Adam learning rate of policy and critics"""
    critic_hidden: Annotated[tuple[int, ...], Range(ge=1)] = (256, 256, 256)
    """hidden sizes of the twin Q"""
    gamma: Annotated[float, Range(ge=0, le=1)] = 0.99
    """discount"""
    polyak: Annotated[float, Range(gt=0, le=1)] = 0.005
    """target-critic rate"""
    grad_clip: Annotated[float, Range(ge=0)] = 0.0
    """clip the gradient norms of the policy and of the critics to this (0: off; Diffusion-QL uses 1-9 per task)"""
    clip_denoised: bool = True
    """clamp the sampler's denoised estimate to [-1, 1] at every step (Diffusion-QL's DDPM does)"""
    bc_times: Literal["sampler", "uniform"] = "sampler"
    """times of the denoising loss: the sampler's own (``act_solver``, ``act_steps``) or uniform on the path"""
    max_q_backup: bool = False
    """target from the best of ``backup_samples`` next actions"""
    backup_samples: Annotated[int, Range(ge=1)] = 10
    """next actions drawn for the max-Q backup"""
    ema_decay: Annotated[float, Range(ge=0, le=1)] = 0.995
    """decay of the EMA policy that draws the critics' next actions"""
    ema_start: Annotated[int, Range(ge=0)] = 1000
    """steps before the EMA starts averaging (it copies the policy until then)"""
    ema_every: Annotated[int, Range(ge=1)] = 5
    """EMA update period"""
    num_samples: Annotated[int, Range(ge=1)] = 50
    """candidate actions per state at act time"""
    act_steps: int = 10
    """solver steps to sample actions, in training (through the sampler) and acting"""

    stage_steps: ClassVar[tuple[str, ...]] = ("steps",)
    act_fields: ClassVar[tuple[str, ...]] = ("num_samples",)


def _policy_loss(algo: "DiffusionQL", obs: Tensor, act: Tensor) -> tuple[Tensor, dict]:
    cfg = algo.cfg
    t = None if algo.bc_t is None else algo.bc_t[torch.randint(len(algo.bc_t), act.shape[:1], device=act.device)]
    bc = algo.policy.matching_loss(act, obs, kind=cfg.loss, weighting=cfg.weighting, t=t, check=False).mean()
    new_a = algo.policy.sample(obs, solver=cfg.act_solver, steps=cfg.act_steps, grad=True, check=False,
                               clip_denoised=algo.clip)
    q1, q2 = algo.qf.both(obs, new_a.clamp(-1.0, 1.0))
    # Eq 3 with alpha = eta / E|Q|: one head at random (a tensor coin, no host branch), normalized by the other
    first = torch.rand((), device=q1.device) < 0.5
    q_loss = -torch.where(first, q1, q2).mean() / torch.where(first, q2, q1).abs().mean().detach()
    return bc + cfg.eta * q_loss, {"bc_loss": bc, "q_loss_pi": q_loss}


@register
class DiffusionQL(Algorithm):
    """Diffusion-QL: diffusion policy with a Q term through its sampler, twin critics, EMA policy; one stage."""

    name = "dql"
    Config = DiffusionQLConfig

    def __init__(self, obs_dim: int, act_dim: int, cfg: DiffusionQLConfig, normalizer=None):
        super().__init__(obs_dim, act_dim, cfg, normalizer)
        self.policy = build_policy_model(cfg, obs_dim, act_dim)
        self.ema = copy.deepcopy(self.policy).requires_grad_(False)
        self.qf = TwinQ(obs_dim, act_dim, cfg.critic_hidden)
        self.q_target = copy.deepcopy(self.qf).requires_grad_(False)
        self.policy_opt = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr, fused=True)
        self.q_opt = torch.optim.Adam(self.qf.parameters(), lr=cfg.lr, fused=True)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.clip = 1.0 if cfg.clip_denoised else None
        times = (self.policy.solver_times(cfg.act_solver, cfg.act_steps, adjusted=self.clip is not None)
                 if cfg.bc_times == "sampler" else None)
        self.register_buffer("bc_t", times, persistent=False)  # derived from the config, not saved

    def optimizers(self):
        return {"policy_opt": self.policy_opt, "q_opt": self.q_opt}

    def stages(self) -> list[Stage]:
        return [Stage("train", self.cfg.steps, self.update, evaluates=True,
                      functional=partial(self.update, functional=True))]

    def _next_value(self, next_obs: Tensor) -> Tensor:
        cfg = self.cfg
        k = cfg.backup_samples if cfg.max_q_backup else 1
        a = self.ema.sample(next_obs, n=k, solver=cfg.act_solver, steps=cfg.act_steps, check=False,
                            clip_denoised=self.clip).clamp(-1.0, 1.0)
        return q_of_each(self.q_target, next_obs, a).max(dim=1).values

    def update(self, batch: Batch, functional: bool = False) -> dict[str, Tensor]:
        cfg = self.cfg
        with torch.no_grad():
            target = batch.rewards + cfg.gamma * (1.0 - batch.dones) * self._next_value(batch.next_obs)
        loss_q, q_aux, _ = minimize(self.q_opt, self.qf, twin_q_loss, batch.obs, batch.actions, target,
                                    functional=functional, clip=cfg.grad_clip)
        loss_pi, aux, _ = minimize(self.policy_opt, self, _policy_loss, batch.obs, batch.actions,
                                   functional=functional, clip=cfg.grad_clip)
        polyak_(self.q_target, self.qf, cfg.polyak)
        with torch.no_grad():
            # EMA (Diffusion-QL's step_ema): copy before ema_start, then average every ema_every steps; the step
            # count is a tensor, so the rule needs no host branch
            self.updates += 1
            n = self.updates
            w = torch.where(n <= cfg.ema_start, 1.0, torch.where(n % cfg.ema_every == 0, 1.0 - cfg.ema_decay, 0.0))
            for e, p in zip(self.ema.parameters(), self.policy.parameters()):
                e.lerp_(p, w.to(e.dtype))
        return {"q_loss": loss_q, "q_mean": q_aux["q_mean"], "policy_loss": loss_pi, **aux}

    def act_normalized(self, obs: Tensor) -> Tensor:
        a = candidate_actions(self.policy, obs, self.cfg.num_samples, self.cfg, self.clip)
        q = q_of_each(self.q_target, obs, a)
        return pick(a, torch.multinomial(torch.softmax(q, dim=1), 1).squeeze(1))
