"""GMPO: Generative Model Policy Optimization (paper Section 4.3, Appendix C.6, Algorithms 1-2).

Advantage-weighted matching (Eq 7, 39, 40): with an IQL critic,

    L(theta) = E_{(s,a)~D}[ min(exp(beta (Q(s,a) - V(s))), weight_clamp) * L_matching(theta; a | s) ]

where L_matching is conditional flow matching (Eq 40) or denoising score matching (Eq 39) of any path.
No behaviour policy is needed. The softmax variant (Eq 41, Algorithm 2) pretrains a behaviour model mu,
samples K actions per state from it and weights their matching losses by softmax_k(beta Q(s, a_k)).
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
from ..critics import IQLCritic, polyak_
from ..data import Batch
from .base import Algorithm, Stage
from .common import (CriticPolicyConfig, advantage_weights, behaviour_cloning_stage, build_policy_model,
                     critic_stage, policy_log_likelihood, softmax_weights, weighted_matching_step)
from .registry import register

__all__ = ["GMPOConfig", "GMPO", "awr_weights"]


@dataclass
class GMPOConfig(CriticPolicyConfig):
    """GMPO settings (paper Tables 7-8 give the defaults for GPU runs; presets override)."""

    #: the tests' budget for these fields: a few steps, small networks (every generic test runs it)
    tiny: ClassVar[dict] = {"behaviour_steps": 3, "num_samples": 2, "policy_batch_size": 8}

    loss: LossKind = "flow"
    """matching loss: flow (Eq 40) or score (Eq 39)"""
    weighting: Weighting = "vanilla"
    """score-matching weighting (Eq 24)"""
    weight_clamp: Annotated[float, Range(gt=0)] = 100.0
    """upper clamp of the advantage weight exp(beta A)"""
    variant: Literal["awr", "softmax"] = "awr"
    """awr: weights from dataset actions (Eq 7); softmax: K actions from a behaviour model (Eq 41)"""
    num_samples: Annotated[int, Range(ge=1)] = 16
    """softmax variant: actions sampled per state (K)"""
    behaviour_steps: Annotated[int, Range(ge=0)] = 0
    """softmax variant: behaviour-model pretraining steps (at policy_lr)"""
    behaviour_sample_steps: Annotated[int, Range(ge=1)] = 10
    """softmax variant: solver steps when sampling the K behaviour actions"""
    normalize_weights: bool = False
    """awr variant: divide the advantage weights by their batch mean (self-normalized weights, as GMPG-static)"""
    ema_decay: Annotated[float, Range(ge=0, lt=1)] = 0.0
    """act with an exponential moving average of the policy's weights, ema <- d ema + (1 - d) theta after every
    policy step (0: off, act with theta). Averages out the step-to-step drift of a policy trained on noisy
    weighted batches"""
    policy_batch_size: Annotated[int, Range(ge=0)] = 0
    """rows per policy step (0: batch_size): the weighted loss's effective sample size is a fraction of the batch
    (ESS/N about 0.2 on walker2d-medium at beta 8), so the policy may need a larger batch than the critic"""

    epoch_batch_fields: ClassVar[dict[str, str]] = {"policy_epochs": "policy_batch_size"}


def awr_weights(adv: Tensor, cfg: GMPOConfig) -> Tensor:
    """GMPO's weights of the dataset's actions (Eq 7): ``min(exp(beta A), clamp)``, divided by their batch mean when
    ``normalize_weights``."""
    w = advantage_weights(adv, cfg.beta, cfg.weight_clamp)
    return w / w.mean() if cfg.normalize_weights else w


@register
class GMPO(Algorithm):
    """GMPO with an IQL critic; stages ``critic`` then ``policy`` (``behaviour`` first for the softmax variant)."""

    name = "gmpo"
    Config = GMPOConfig

    def __init__(self, obs_dim: int, act_dim: int, cfg: GMPOConfig, normalizer=None):
        super().__init__(obs_dim, act_dim, cfg, normalizer)
        self.critic = IQLCritic(obs_dim, act_dim, cfg.iql())
        self.policy = build_policy_model(cfg, obs_dim, act_dim)
        self.policy_opt = torch.optim.Adam(self.policy.parameters(), lr=cfg.policy_lr, fused=True)
        self.policy_ema = copy.deepcopy(self.policy).requires_grad_(False) if cfg.ema_decay > 0 else None
        self.behaviour = None
        if cfg.variant == "softmax":
            self.behaviour = build_policy_model(cfg, obs_dim, act_dim)
            self.behaviour_opt = torch.optim.Adam(self.behaviour.parameters(), lr=cfg.policy_lr, fused=True)

    def optimizers(self):
        opts = {"policy_opt": self.policy_opt, **self.critic.optimizers()}
        if self.behaviour is not None:
            opts["behaviour_opt"] = self.behaviour_opt
        return opts

    def stages(self) -> list[Stage]:
        st = []
        cfg = self.cfg
        if self.behaviour is not None:  # softmax variant (Algorithm 2)
            st.append(behaviour_cloning_stage(self.behaviour, self.behaviour_opt, cfg.behaviour_steps, cfg.loss,
                                              cfg.weighting, cfg.grad_clip))
        st.append(critic_stage(self.critic, cfg.critic_steps))
        st.append(Stage("policy", cfg.policy_steps, self.update_policy, evaluates=True,
                        batch_size=cfg.policy_batch_size or None,
                        functional=partial(self.update_policy, functional=True),
                        stackable=cfg.variant == "awr"))
        return st

    def update_policy(self, batch: Batch, functional: bool = False) -> dict[str, Tensor]:
        """One advantage-weighted matching step (Eq 7) or softmax-weighted step (Eq 41); ``functional``: the
        compilable form of the same step (genpolicy.optim.minimize)."""
        cfg = self.cfg
        if cfg.variant == "awr":
            obs, actions = batch.obs, batch.actions
            with torch.no_grad():
                adv = self.critic.advantage(obs, actions)
                w = awr_weights(adv, cfg)
        else:
            k = cfg.num_samples
            with torch.no_grad():
                a = self.behaviour.sample(batch.obs, n=k, solver=cfg.act_solver, steps=cfg.behaviour_sample_steps,
                                          check=False).clamp(-1, 1)
                obs = batch.obs.repeat_interleave(k, dim=0)
                actions = a.reshape(-1, self.act_dim)
                q = self.critic.q(obs, actions).reshape(-1, k)
                w = softmax_weights(q, cfg.beta)
                adv = q.reshape(-1) - self.critic.v(obs)
        loss, per_sample, gnorm = weighted_matching_step(self.policy, self.policy_opt, actions, obs, w, cfg.loss,
                                                         cfg.weighting, cfg.grad_clip, functional)
        if self.policy_ema is not None:
            polyak_(self.policy_ema, self.policy, 1.0 - cfg.ema_decay)  # (polyak_ runs without grad)
        m = {"policy_loss": loss, "matching_loss": per_sample.mean(), "weight_mean": w.mean(),
             "weight_max": w.max(), "adv_mean": adv.mean()}
        if gnorm is not None:
            m["grad_norm"] = gnorm.detach()
        return m

    def action_log_likelihood(self, obs: Tensor, actions: Tensor) -> Tensor:
        return policy_log_likelihood(self.policy if self.policy_ema is None else self.policy_ema, obs, actions)

    def act_normalized(self, obs: Tensor) -> Tensor:
        policy = self.policy if self.policy_ema is None else self.policy_ema
        return policy.sample(obs, solver=self.cfg.act_solver, steps=self.cfg.act_steps, check=False,
                             temperature=self.cfg.act_temperature)
