"""SfBC, selecting from behaviour candidates (Chen et al. 2023): a diffusion behaviour model mu proposes K actions,
and one is picked with probability proportional to exp(alpha Q(s, a)) (alpha large: the best; SfBC Eq 6-7).

Q comes from SfBC's implicit in-sample planning (its Algorithm 1, Sec 4.3; ``critic="planning"``): Q_0 regresses
the dataset's discounted Monte-Carlo returns; then for k = 1..K-1 every state's value is estimated over M behaviour
actions with the previous Q,

    V_k(s) = sum_i softmax_i(plan_alpha Q_{k-1}(s, a_i)) Q_{k-1}(s, a_i),   a_i ~ mu(. | s),

the returns are recomputed backwards along each episode, G_k(s_n) = max(r_n + gamma G_k(s_{n+1}), V_k(s_n)), and Q_k
regresses r_n + gamma G_k(s_{n+1}) for (s_n, a_n) from a fresh initialization (SfBC Eq 9: the continuation is the
better of the data's and the support's; the recursion stops at episode ends, as in SfBC's code, whose Q regresses
G_k(s_n) itself, which lifts every action's target to V_k(s_n)). Targets are standardized (mean/std, as SfBC).
``critic="iql"`` selects with the shared IQL critic instead.
Stages: behaviour, then q0..q{K-1} (or the IQL critic first).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial
from typing import Annotated, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from ...config import Range
from ...nets import mlp
from ...optim import minimize
from ..critics import IQLCritic, q_of_each
from ..data import Batch, OfflineData
from .base import Algorithm, Stage
from .common import (DiffusionPolicyConfig, behaviour_cloning_stage, build_policy_model, candidate_actions,
                     critic_stage, pick, support_actions)
from .registry import register

__all__ = ["SfBCConfig", "SfBC", "planning_returns"]


@dataclass
class SfBCConfig(DiffusionPolicyConfig):
    """SfBC settings (its code's locomotion defaults: K = 2 planning iterations, M = 16 actions for the value,
    plan_alpha 20, 32 candidates, alpha 100 to select, critic learning rate 1e-3, behaviour learning rate 1e-4)."""

    #: the tests' budget for these fields: a few steps, small networks (every generic test runs it)
    tiny: ClassVar[dict] = {"num_samples": 2, "support_samples": 2}

    critic: Literal["planning", "iql"] = "planning"
    """Q from SfBC's in-sample planning, or the IQL critic (shareable with GMPO, IQL, ...)"""
    planning_iters: Annotated[int, Range(ge=1)] = 2
    """K: Q fits (the first on Monte-Carlo returns), each critic_steps long"""
    plan_alpha: Annotated[float, Range(ge=0)] = 20.0
    """softmax inverse temperature over standardized Q in the planning value"""
    support_samples: Annotated[int, Range(ge=1)] = 16
    """behaviour actions per state (M) for the planning value"""
    num_samples: Annotated[int, Range(ge=1)] = 32
    """candidate actions per state at act time"""
    select_alpha: Annotated[float, Range(ge=0)] = 100.0
    """softmax selector: pick a candidate with probability proportional to exp(select_alpha Q) (standardized Q)"""
    selector: Literal["softmax", "argmax"] = "softmax"
    """softmax (SfBC) or the highest Q"""
    critic_lr: float = 1e-3
    """learning rate of the planning Q (and of IQL with critic=iql)"""
    policy_lr: float = 1e-4
    """behaviour-model learning rate"""

    act_fields: ClassVar[tuple[str, ...]] = ("num_samples", "select_alpha", "selector")


def planning_returns(rewards: np.ndarray, ends: np.ndarray, gamma: float, values: np.ndarray | None) -> np.ndarray:
    """Q targets ``r_n + gamma (1 - end_n) G_{n+1}`` with ``G_n = max(target_n, V_n)`` (the better of following the
    data and switching to the behaviour's support at s_n), computed backwards over rows in episode order;
    ``values`` None: plain discounted returns."""
    out = np.empty(len(rewards), dtype=np.float64)
    g_next = 0.0
    for i in range(len(rewards) - 1, -1, -1):
        target = float(rewards[i]) + gamma * g_next * (1.0 - float(ends[i]))
        out[i] = target
        g_next = target if values is None else max(target, float(values[i]))
    return out


def _regression(qnet: nn.Module, obs: Tensor, act: Tensor, target: Tensor) -> tuple[Tensor, dict]:
    pred = qnet(torch.cat([obs, act], dim=-1)).squeeze(-1)
    return ((pred - target) ** 2).mean(), {"q_mean": pred.mean()}


@register
class SfBC(Algorithm):
    """SfBC: diffusion behaviour model and a planning Q that selects among its samples; stages ``behaviour``,
    ``q0``..``q{K-1}`` (or ``critic``, ``behaviour`` with ``critic="iql"``)."""

    name = "sfbc"
    Config = SfBCConfig

    def __init__(self, obs_dim: int, act_dim: int, cfg: SfBCConfig, normalizer=None):
        super().__init__(obs_dim, act_dim, cfg, normalizer)
        self.policy = build_policy_model(cfg, obs_dim, act_dim)
        self.policy_opt = torch.optim.Adam(self.policy.parameters(), lr=cfg.policy_lr, fused=True)
        if cfg.critic == "iql":
            self.critic = IQLCritic(obs_dim, act_dim, cfg.iql())
        else:
            self.qnet = mlp(obs_dim + act_dim, 1, cfg.critic_hidden)
            self.q_opt = torch.optim.Adam(self.qnet.parameters(), lr=cfg.critic_lr, fused=True)
            self._q_init = copy.deepcopy(self.qnet.state_dict())  # SfBC resets Q before each fit
            # the current targets (raw returns per data row) and their standardization; checkpointed
            self.register_buffer("returns", torch.zeros(0))
            self.register_buffer("ret_stats", torch.tensor([0.0, 1.0]))
            self.register_buffer("plan_iter", torch.tensor(-1))
            self._register_load_state_dict_pre_hook(self._resize_returns)
            self._support: Tensor | None = None

    def _resize_returns(self, state_dict, prefix, *args):
        if prefix + "returns" in state_dict:
            self.returns = torch.empty_like(state_dict[prefix + "returns"], device=self.returns.device)

    def optimizers(self):
        opt = self.critic.optimizers() if self.cfg.critic == "iql" else {"q_opt": self.q_opt}
        return {"policy_opt": self.policy_opt, **opt}

    def stages(self) -> list[Stage]:
        cfg = self.cfg
        iql = cfg.critic == "iql"
        behaviour = behaviour_cloning_stage(self.policy, self.policy_opt, cfg.policy_steps, cfg.loss, cfg.weighting,
                                            cfg.grad_clip, name="behaviour", evaluates=iql)
        if iql:
            return [critic_stage(self.critic, cfg.critic_steps), behaviour]
        return [behaviour] + [Stage(f"q{k}", cfg.critic_steps, self.update_q, evaluates=k == cfg.planning_iters - 1,
                                    functional=partial(self.update_q, functional=True), prepare=partial(self.plan, k=k))
                              for k in range(cfg.planning_iters)]

    def q_values(self, obs: Tensor, act: Tensor) -> Tensor:
        """Standardized planning Q (or the IQL critic's Q), shape ``(B,)``."""
        if self.cfg.critic == "iql":
            return self.critic.q(obs, act)
        return self.qnet(torch.cat([obs, act], dim=-1)).squeeze(-1)

    @torch.no_grad()
    def plan(self, data: OfflineData, k: int) -> None:
        """The returns Q_k regresses (Monte-Carlo for k = 0, else planned with Q_{k-1}); resets Q for k >= 1.
        Skipped when already done for k (a run resumed inside stage q{k})."""
        if int(self.plan_iter) == k:
            return
        cfg = self.cfg
        values = None
        if k > 0:
            if self._support is None or self._support.shape[0] != len(data):
                self._support = support_actions(self.policy, data.obs, cfg.support_samples, cfg.act_solver,
                                                cfg.act_steps, seed=cfg.seed + 1)
            q = torch.cat([q_of_each(self.q_values, o, a)
                           for o, a in zip(data.obs.split(4096), self._support.split(4096))])
            v = (torch.softmax(cfg.plan_alpha * q, dim=1) * q).sum(1)  # on the standardized scale, as SfBC
            values = (v * self.ret_stats[1] + self.ret_stats[0]).cpu().numpy()
            self.qnet.load_state_dict(self._q_init)
            self.q_opt.state.clear()
        r = planning_returns(data.rewards.cpu().numpy(), data.episode_ends.cpu().numpy(), cfg.gamma, values)
        self.returns = torch.as_tensor(r, dtype=torch.float32, device=self.ret_stats.device)
        self.ret_stats.copy_(torch.tensor([r.mean(), max(r.std(), 0.1)]))
        self.plan_iter.fill_(k)

    def update_q(self, batch: Batch, functional: bool = False) -> dict[str, Tensor]:
        target = (self.returns[batch.idx] - self.ret_stats[0]) / self.ret_stats[1]
        loss, aux, _ = minimize(self.q_opt, self.qnet, _regression, batch.obs, batch.actions, target,
                                functional=functional)
        return {"q_loss": loss, **aux}

    def act_normalized(self, obs: Tensor) -> Tensor:
        cfg = self.cfg
        a = candidate_actions(self.policy, obs, cfg.num_samples, cfg)
        q = q_of_each(self.q_values, obs, a)
        if cfg.selector == "argmax":
            idx = q.argmax(dim=1)
        else:
            idx = torch.multinomial(torch.softmax(cfg.select_alpha * q, dim=1), 1).squeeze(1)
        return pick(a, idx)
