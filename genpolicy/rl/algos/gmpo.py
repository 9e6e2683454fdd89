"""GMPO: Generative Model Policy Optimization (paper Section 4.3, Appendix C.6, Algorithms 1-2).

Advantage-weighted matching (Eq 7, 39, 40): with an IQL critic,

    L(theta) = E_{(s,a)~D}[ min(exp(beta (Q(s,a) - V(s))), weight_clamp) * L_matching(theta; a | s) ]

where L_matching is conditional flow matching (Eq 40) or denoising score matching (Eq 39) of any path.
No behaviour policy is needed. The softmax variant (Eq 41, Algorithm 2) pretrains a behaviour model mu,
samples K actions per state from it and weights their matching losses by softmax_k(beta Q(s, a_k)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ...generative import GenerativeModel
from ...nets import make_net
from ...paths import make_path
from ..critics import IQLCritic
from ..data import Batch
from .base import Algorithm, CriticPolicyConfig, Stage, register

__all__ = ["GMPOConfig", "GMPO", "advantage_weights", "softmax_weights", "build_policy_model"]


@dataclass
class GMPOConfig(CriticPolicyConfig):
    """GMPO settings (paper Tables 7-8 give the defaults for GPU runs; presets override)."""

    loss: str = "flow"
    """matching loss: flow (Eq 40) or score (Eq 39)"""
    weighting: str = "vanilla"
    """score-matching weighting: vanilla or maximum_likelihood (Eq 24)"""
    weight_clamp: float = 100.0
    """upper clamp of the advantage weight exp(beta A)"""
    variant: str = "awr"
    """awr: weights from dataset actions (Eq 7); softmax: K actions from a behaviour model (Eq 41)"""
    num_samples: int = 16
    """softmax variant: actions sampled per state (K)"""
    behaviour_steps: int = 0
    """softmax variant: behaviour-model pretraining steps (at policy_lr)"""
    behaviour_sample_steps: int = 10
    """softmax variant: solver steps when sampling the K behaviour actions"""


def advantage_weights(adv: Tensor, beta: float, clamp: float) -> Tensor:
    """``min(exp(beta * adv), clamp)`` computed without overflow (Eq 7 with the paper's clamp)."""
    return torch.exp(torch.clamp(beta * adv, max=math.log(clamp)))


def softmax_weights(q: Tensor, beta: float) -> Tensor:
    """``K softmax_k(beta q[:, k])`` for ``q`` of shape ``(B, K)``, flattened to ``(B K,)``: mean weight 1 per state."""
    return torch.softmax(beta * q, dim=1).reshape(-1) * q.shape[1]


def build_policy_model(cfg: CriticPolicyConfig, obs_dim: int, act_dim: int) -> GenerativeModel:
    """The conditional generative policy pi(a | s) described by ``cfg``."""
    kw = {"hidden": tuple(cfg.net_hidden)} if cfg.net in ("unet", "mlp") else {}
    net = make_net(cfg.net, act_dim, obs_dim, **kw)
    return GenerativeModel(net, make_path(cfg.path), (act_dim,), param=cfg.param)


@register
class GMPO(Algorithm):
    """GMPO with an IQL critic; stages ``critic`` then ``policy`` (``behaviour`` first for the softmax variant)."""

    name = "gmpo"
    Config = GMPOConfig

    def __init__(self, obs_dim: int, act_dim: int, cfg: GMPOConfig, normalizer=None):
        super().__init__(obs_dim, act_dim, cfg, normalizer)
        if cfg.variant not in ("awr", "softmax"):
            raise ValueError(f"unknown GMPO variant {cfg.variant!r}; expected 'awr' or 'softmax'")
        if cfg.loss not in ("flow", "score"):
            raise ValueError(f"unknown loss {cfg.loss!r}; expected 'flow' or 'score'")
        if cfg.beta < 0 or cfg.weight_clamp <= 0:
            raise ValueError(f"need beta >= 0 and weight_clamp > 0, got beta={cfg.beta}, weight_clamp={cfg.weight_clamp}")
        self.critic = IQLCritic(obs_dim, act_dim, cfg.iql())
        self.policy = build_policy_model(cfg, obs_dim, act_dim)
        self.policy_opt = torch.optim.Adam(self.policy.parameters(), lr=cfg.policy_lr, fused=True)
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
        if self.behaviour is not None:
            st.append(Stage("behaviour", self.cfg.behaviour_steps, self.update_behaviour))
        st.append(Stage("critic", self.cfg.critic_steps, self.critic.update))
        st.append(Stage("policy", self.cfg.policy_steps, self.update_policy, evaluates=True))
        return st

    def _step(self, model, opt, loss: Tensor) -> Tensor | None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = None
        if self.cfg.grad_clip > 0:
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip)
        opt.step()
        return gnorm

    def _matching(self, model: GenerativeModel, actions: Tensor, obs: Tensor) -> Tensor:
        return model.matching_loss(actions, obs, kind=self.cfg.loss, weighting=self.cfg.weighting)

    def update_behaviour(self, batch: Batch) -> dict[str, Tensor]:
        """Behaviour cloning by the matching loss (softmax variant, Algorithm 2)."""
        loss = self._matching(self.behaviour, batch.actions, batch.obs).mean()
        self._step(self.behaviour, self.behaviour_opt, loss)
        return {"behaviour_loss": loss.detach()}

    def update_policy(self, batch: Batch) -> dict[str, Tensor]:
        """One advantage-weighted matching step (Eq 7) or softmax-weighted step (Eq 41)."""
        if self.cfg.variant == "awr":
            obs, actions = batch.obs, batch.actions
            with torch.no_grad():
                adv = self.critic.advantage(obs, actions)
                w = advantage_weights(adv, self.cfg.beta, self.cfg.weight_clamp)
        else:
            k = self.cfg.num_samples
            with torch.no_grad():
                a = self.behaviour.sample(batch.obs, n=k, solver=self.cfg.act_solver,
                                          steps=self.cfg.behaviour_sample_steps).clamp(-1, 1)
                obs = batch.obs.repeat_interleave(k, dim=0)
                actions = a.reshape(-1, self.act_dim)
                q = self.critic.q(obs, actions).reshape(-1, k)
                w = softmax_weights(q, self.cfg.beta)
                adv = q.reshape(-1) - self.critic.v(obs)
        per_sample = self._matching(self.policy, actions, obs)
        loss = (w * per_sample).mean()
        gnorm = self._step(self.policy, self.policy_opt, loss)
        m = {"policy_loss": loss.detach(), "matching_loss": per_sample.detach().mean(), "weight_mean": w.mean(),
             "weight_max": w.max(), "adv_mean": adv.mean()}
        if gnorm is not None:
            m["grad_norm"] = gnorm.detach()
        return m

    def act_normalized(self, obs: Tensor) -> Tensor:
        return self.policy.sample(obs, solver=self.cfg.act_solver, steps=self.cfg.act_steps)
