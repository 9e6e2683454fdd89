"""SRPO, score-regularized policy optimization (Chen et al. 2024): a deterministic actor pi(s) that maximizes Q
while the score of a frozen diffusion behaviour model mu keeps it near the data,

    max_pi E_s[ beta Q(s, pi(s)) ] - E_s[ KL(pi(.|s) || mu(.|s)) ],

whose KL gradient SRPO writes with the behaviour model's noise prediction (SRPO Eq 10-12; the GenerativeRL
paper's Eq 35):

    grad_theta ~ E_{t, z}[ omega(t) (eps_mu(a_t, t | s) - z) d a / d theta ] - beta E[ grad_a Q(s, a) d a / d theta ],
    a = pi_theta(s),  a_t = alpha_t a + sigma_t z,  t ~ U[0.02, 0.98],  omega(t) = alpha_t / sigma_t ("score").

It is taken as the surrogate loss ``omega (eps_mu - z).a - beta grad_aQ.a`` with both vectors held fixed (SRPO's
code). omega(t): SRPO's published code (thu-ml/SRPO, ``--WT``) defaults to sigma_t^2 ("vds") in its final revision
and to alpha_t / sigma_t ("score") in earlier ones; we keep "score", the stronger regularizer near t = 0 (61.8 +- 12.8
on hopper-medium over 3 seeds, docs/results.md). Its beta values pair with D4RL's IQL reward scale: on data whose
return span is narrow (our halfcheetah-medium) the Q gradient is several times larger and the actor saturates
(see genpolicy.rl.data.NARROW_SPAN).

Stages: the IQL critic (shareable with GMPO, IQL, ...), the behaviour model (denoising score matching on the VP-SDE
path), the actor. Q is the critic's min over its twin target networks (SRPO's code averages them); the
actor's learning rate is constant (SRPO decays it by a cosine schedule).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Annotated, ClassVar, Literal

import torch
from torch import Tensor

from ...config import Range
from ...nets import NetName
from ...optim import minimize
from ...paths import expand_t
from ..actors import DeterministicActor
from ..critics import IQLCritic
from ..data import Batch
from .base import Algorithm, Stage
from .common import DiffusionPolicyConfig, behaviour_cloning_stage, build_policy_model, critic_stage
from .registry import register

__all__ = ["SRPOConfig", "SRPO", "srpo_time_weight", "SATURATION_WARN"]

#: the policy stage warns when more than this fraction of the actor's action components sit at |a| > 0.99: the Q
#: gradient outweighs the score regularizer and the actor rides the tanh bounds (our halfcheetah-medium at the
#: paper's beta and IQL's reward scale: 77 %, score -2.4; docs/results.md)
SATURATION_WARN = 0.5


@dataclass
class SRPOConfig(DiffusionPolicyConfig):
    """SRPO settings (its code's locomotion defaults: IDQL's LN-ResNet behaviour model, 2 x 256 actor; omega =
    alpha/sigma as in its earlier revisions; beta per task from the SRPO code, e.g. 0.05 for hopper-medium)."""

    #: the tests' budget for these fields: a few steps, small networks (every generic test runs it)
    tiny: ClassVar[dict] = {"actor_hidden": (16, 16), "behaviour_steps": 3}

    net: NetName = "resnet"
    """behaviour network (SRPO: IDQL's LayerNorm ResNet)"""
    beta: float = 0.05
    """weight of the Q gradient against the score regularizer (SRPO's beta)"""
    behaviour_steps: Annotated[int, Range(ge=0)] = 100_000
    """behaviour-model steps"""
    behaviour_lr: Annotated[float, Range(gt=0)] = 3e-4
    """behaviour-model learning rate"""
    actor_hidden: Annotated[tuple[int, ...], Range(ge=1)] = (256, 256)
    """hidden sizes of the deterministic actor"""
    policy_lr: float = 3e-4
    """actor learning rate"""
    time_weight: Literal["score", "vds", "stable"] = "score"
    """omega(t): score = alpha/sigma (SRPO's earlier default), vds = sigma^2 (its final default), stable = 1"""


def srpo_time_weight(alpha: Tensor, sigma: Tensor, kind: str) -> Tensor:
    """omega(t) of the score regularizer (SRPO Sec 4.2's choices)."""
    if kind == "score":
        return alpha / sigma
    if kind == "vds":
        return sigma**2
    return torch.ones_like(alpha)


def _srpo_loss(actor: DeterministicActor, obs: Tensor, reg: Tensor, guidance: Tensor) -> tuple[Tensor, dict]:
    a = actor(obs)
    return ((reg * a).sum(-1) - (guidance * a).sum(-1)).mean(), {}


@register
class SRPO(Algorithm):
    """SRPO: IQL critic, diffusion behaviour model, deterministic actor; stages ``critic``, ``behaviour``,
    ``policy``."""

    name = "srpo"
    Config = SRPOConfig

    def __init__(self, obs_dim: int, act_dim: int, cfg: SRPOConfig, normalizer=None):
        super().__init__(obs_dim, act_dim, cfg, normalizer)
        self.critic = IQLCritic(obs_dim, act_dim, cfg.iql())
        self.behaviour = build_policy_model(cfg, obs_dim, act_dim)
        self.actor = DeterministicActor(obs_dim, act_dim, cfg.actor_hidden)
        self.behaviour_opt = torch.optim.Adam(self.behaviour.parameters(), lr=cfg.behaviour_lr, fused=True)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.policy_lr, fused=True)

    def optimizers(self):
        return {"behaviour_opt": self.behaviour_opt, "actor_opt": self.actor_opt, **self.critic.optimizers()}

    def stages(self) -> list[Stage]:
        cfg = self.cfg
        return [critic_stage(self.critic, cfg.critic_steps),
                behaviour_cloning_stage(self.behaviour, self.behaviour_opt, cfg.behaviour_steps, cfg.loss,
                                        cfg.weighting, cfg.grad_clip),
                Stage("policy", cfg.policy_steps, self.update_policy, evaluates=True,
                      functional=partial(self.update_policy, functional=True), monitor=self.monitor_policy)]

    def update_policy(self, batch: Batch, functional: bool = False) -> dict[str, Tensor]:
        cfg, obs, path = self.cfg, batch.obs, self.behaviour.path
        with torch.no_grad():
            a = self.actor(obs)
            t = 0.02 + 0.96 * torch.rand(a.shape[0], device=a.device, dtype=a.dtype)
            z = torch.randn_like(a)
            alpha, sigma = expand_t(path.alpha(t), a), expand_t(path.sigma(t), a)
            eps = self.behaviour.predict_unchecked(alpha * a + sigma * z, t, obs, "noise")
            reg = srpo_time_weight(alpha, sigma, cfg.time_weight) * (eps - z)  # Eq 35's regularizer direction
            # grad_a Q(s, a) at the actor's action (torch.func.grad differentiates even under no_grad)
            grad_q = torch.func.grad(lambda x: self.critic.q(obs, x).sum())(a)
        loss, _, _ = minimize(self.actor_opt, self.actor, _srpo_loss, obs, reg, cfg.beta * grad_q,
                              functional=functional)
        return {"actor_loss": loss, "reg_norm": reg.norm(dim=-1).mean(), "grad_q_norm": grad_q.norm(dim=-1).mean(),
                "saturation": (a.abs() > 0.99).float().mean()}

    def monitor_policy(self, metrics: dict[str, float]) -> str | None:
        """A warning when the actor's actions sit at the bounds (:data:`SATURATION_WARN`)."""
        sat = metrics["saturation"]
        if sat <= SATURATION_WARN:
            return None
        return (f"{sat:.0%} of the actor's action components are at |a| > 0.99: the Q gradient outweighs the score "
                f"regularizer (beta={self.cfg.beta} at this reward scale); lower beta, or reward_scale=locomotion0 "
                f"if the data warned of a narrow return span")

    def act_normalized(self, obs: Tensor) -> Tensor:
        return self.actor(obs)
