"""QGPO, Q-guided policy optimization (Lu et al. 2023): sample the policy pi(a | s) proportional to
mu(a | s) exp(beta Q(s, a)) by guiding a diffusion behaviour model mu with an intermediate energy E_t:

    grad_a log pi_t(a_t | s) = grad_a log mu_t(a_t | s) + grad_a E_t(a_t, s)                         (QGPO Eq 6, 13)

E_t is learned by contrastive energy prediction (QGPO Eq 11; the GenerativeRL paper's Eq 30): for each state, M
behaviour actions a_i ("support"), one time t, a_i^t = alpha_t a_i + sigma_t eps_i,

    L(phi) = -E_{t, s}[ sum_i softmax_i(beta Q(s, a_i)) log softmax_i(f_phi(a_i^t, t, s)) ],

whose optimum is E_t(a_t) = log E_{mu_0t}[exp(beta Q)] up to a constant (QGPO Theorem 3.2). Q comes from in-support
softmax Q-learning over the same behaviour support (QGPO Eq 14; ``critic="insupport"``) or from the shared IQL
critic (``critic="iql"``). Acting integrates the guided field with ``guidance_scale`` times the energy gradient
(QGPO's s). Stages: behaviour (denoising score matching on the VP-SDE path), critic, energy.

The loss cannot fall below the mean entropy of softmax(beta Q) (near ln M where Q barely varies over the support), so
the energy stage also logs ``target_entropy`` and ``energy_kl`` = loss - target_entropy, and
:meth:`QGPO.energy_fit` measures how closely the energy at t -> 0 follows beta Q.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Annotated, ClassVar, Literal

import torch
from torch import Tensor, nn

from ...config import Range
from ...nets import GaussianFourierTime, mlp
from ...optim import minimize
from ...paths import expand_t
from ..critics import InSupportCritic, IQLCritic, q_of_each
from ..data import Batch, OfflineData
from .base import Algorithm, Stage
from .common import (DiffusionPolicyConfig, behaviour_cloning_stage, build_policy_model, critic_stage,
                     support_actions, within_state_fit)
from .registry import register

__all__ = ["QGPOConfig", "QGPO", "EnergyNet", "energy_of_each", "cep_loss"]


@dataclass
class QGPOConfig(DiffusionPolicyConfig):
    """QGPO settings (its code's defaults: the 512-256-128 U-Net behaviour model on the VP-SDE, M = 16 support
    actions, beta = 3; the guidance scale is QGPO's per-task choice)."""

    #: the tests' budget for these fields: a few steps, small networks (every generic test runs it)
    tiny: ClassVar[dict] = {"behaviour_steps": 3, "energy_hidden": (16, 16), "support_samples": 2}

    critic: Literal["insupport", "iql"] = "insupport"
    """Q from in-support softmax Q-learning (QGPO) or the IQL critic (shareable with GMPO, IQL, ...)"""
    beta: float = 3.0
    """inverse temperature of the target policy mu exp(beta Q) (QGPO's alpha in contrastive energy prediction)"""
    q_alpha: Annotated[float, Range(ge=0)] = 1.0
    """softmax inverse temperature over the support in the in-support Q target"""
    support_samples: Annotated[int, Range(ge=1)] = 16
    """behaviour actions per state (M) for the energy loss and the Q target"""
    guidance_scale: Annotated[float, Range(ge=0)] = 1.0
    """scale s of the energy gradient when acting (1: the exact target policy)"""
    behaviour_steps: Annotated[int, Range(ge=0)] = 100_000
    """behaviour-model steps"""
    behaviour_lr: Annotated[float, Range(gt=0)] = 1e-4
    """behaviour-model learning rate"""
    energy_hidden: Annotated[tuple[int, ...], Range(ge=1)] = (256, 256, 256)
    """hidden sizes of the energy model"""
    policy_lr: float = 3e-4
    """energy-model learning rate"""

    act_fields: ClassVar[tuple[str, ...]] = ("guidance_scale",)


class EnergyNet(nn.Module):
    """``f(a_t, t, s)``: an MLP on the noisy action, the state and Fourier features of t, returning a scalar."""

    def __init__(self, act_dim: int, obs_dim: int, hidden, t_dim: int = 32):
        super().__init__()
        self.t_emb = GaussianFourierTime(t_dim)
        self.net = mlp(act_dim + obs_dim + t_dim, 1, hidden, act="silu")
        # the loss is a softmax over each state's support, blind to a constant: the output bias would get only
        # round-off gradients (which Adam's normalization would turn into steps), so it is fixed at 0
        nn.init.zeros_(self.net[-1].bias)
        self.net[-1].bias.requires_grad_(False)

    def forward(self, x: Tensor, t: Tensor, obs: Tensor) -> Tensor:
        return self.net(torch.cat([x, obs, self.t_emb(t)], dim=-1)).squeeze(-1)


def energy_of_each(energy: EnergyNet, x_t: Tensor, t: Tensor, obs: Tensor) -> Tensor:
    """``f(x_bi, t_b, s_b)`` for M actions per state: ``x_t``, ``obs`` ``(B, M, .)``, ``t`` ``(B,)`` -> ``(B, M)``."""
    b, m = x_t.shape[:2]
    return energy(x_t.reshape(b * m, -1), t.repeat_interleave(m), obs.reshape(b * m, -1)).reshape(b, m)


def cep_loss(energy: EnergyNet, x_t: Tensor, t: Tensor, obs: Tensor, weights: Tensor) -> tuple[Tensor, dict]:
    """Contrastive energy prediction (QGPO Eq 11): ``x_t``, ``obs`` ``(B, M, .)``, ``t`` ``(B,)``, ``weights``
    ``(B, M)`` = softmax(beta Q) over each state's support."""
    f = energy_of_each(energy, x_t, t, obs)
    return -(weights * torch.log_softmax(f, dim=1)).sum(1).mean(), {"energy_mean": f.mean()}


@register
class QGPO(Algorithm):
    """QGPO: diffusion behaviour model, Q, and an intermediate energy that guides sampling; stages ``behaviour``,
    ``critic`` (before it with ``critic="iql"``), ``energy``."""

    name = "qgpo"
    Config = QGPOConfig

    def __init__(self, obs_dim: int, act_dim: int, cfg: QGPOConfig, normalizer=None):
        super().__init__(obs_dim, act_dim, cfg, normalizer)
        if cfg.critic == "iql":
            self.critic = IQLCritic(obs_dim, act_dim, cfg.iql())
        else:
            self.critic = InSupportCritic(obs_dim, act_dim, cfg.critic_hidden, cfg.critic_lr, cfg.gamma, cfg.polyak,
                                          cfg.q_alpha)
        self.behaviour = build_policy_model(cfg, obs_dim, act_dim)
        self.energy = EnergyNet(act_dim, obs_dim, cfg.energy_hidden)
        self.behaviour_opt = torch.optim.Adam(self.behaviour.parameters(), lr=cfg.behaviour_lr, fused=True)
        self.energy_opt = torch.optim.Adam([p for p in self.energy.parameters() if p.requires_grad], lr=cfg.policy_lr,
                                           fused=True)
        self._support: Tensor | None = None  # (N, M, act) behaviour actions per row; rebuilt, not checkpointed

    def optimizers(self):
        return {"behaviour_opt": self.behaviour_opt, "energy_opt": self.energy_opt, **self.critic.optimizers()}

    def stages(self) -> list[Stage]:
        cfg = self.cfg
        behaviour = behaviour_cloning_stage(self.behaviour, self.behaviour_opt, cfg.behaviour_steps, cfg.loss,
                                            cfg.weighting, cfg.grad_clip)
        energy = Stage("energy", cfg.policy_steps, self.update_energy, evaluates=True,
                       functional=partial(self.update_energy, functional=True), prepare=self.prepare_support)
        if cfg.critic == "iql":
            return [critic_stage(self.critic, cfg.critic_steps), behaviour, energy]
        critic = Stage("critic", cfg.critic_steps, self.critic.update, prepare=self.prepare_support,
                       functional=partial(self.critic.update, functional=True))
        return [behaviour, critic, energy]

    def prepare_support(self, data: OfflineData) -> None:
        """Behaviour actions at every row's state (and, for the in-support critic, at its next state: the next
        row's support where the episode continues, fresh samples at episode ends); deterministic in cfg.seed."""
        if self._support is not None and self._support.shape[0] == len(data):
            return
        cfg = self.cfg
        draw = partial(support_actions, self.behaviour, m=cfg.support_samples, solver=cfg.act_solver,
                       steps=cfg.act_steps)
        self._support = draw(data.obs, seed=cfg.seed + 1)
        if isinstance(self.critic, InSupportCritic):
            nxt = data.next_row()
            ends = (nxt < 0).nonzero().squeeze(1)
            next_support = self._support[nxt.clamp(min=0)]
            next_support[ends] = draw(data.next_obs[ends], seed=cfg.seed + 2)
            self.critic.next_support = next_support

    def update_energy(self, batch: Batch, functional: bool = False) -> dict[str, Tensor]:
        cfg, path = self.cfg, self.behaviour.path
        if self._support is None or batch.idx is None:
            raise RuntimeError("the energy stage needs the behaviour support (prepare_support) and batch.idx")
        with torch.no_grad():
            a = self._support[batch.idx]  # (B, M, act)
            b, m = a.shape[:2]
            obs = batch.obs.unsqueeze(1).expand(b, m, batch.obs.shape[1])
            w = torch.softmax(cfg.beta * q_of_each(self.critic.q, batch.obs, a), dim=1)
            # the loss's floor: each state's cross-entropy is the target's entropy H(w) plus KL(w || softmax f)
            entropy = -torch.special.xlogy(w, w).sum(1).mean()
            t0, t1 = self.behaviour._interval("noise")
            t = t0 + (t1 - t0) * torch.rand(b, device=a.device, dtype=a.dtype)
            tt = t.repeat_interleave(m)
            x_t = (expand_t(path.alpha(tt), a.reshape(b * m, -1)) * a.reshape(b * m, -1)
                   + expand_t(path.sigma(tt), a.reshape(b * m, -1)) * torch.randn_like(a.reshape(b * m, -1)))
        loss, aux, _ = minimize(self.energy_opt, self.energy, cep_loss, x_t.reshape(b, m, -1), t, obs, w,
                                functional=functional)
        # energy_kl: the mean KL(w || softmax f) over the batch's (state, t); 0 only where f matches beta Q up to a
        # constant, which no f can at large t (x_t is then mostly noise), so it stays above 0 averaged over t
        return {"energy_loss": loss, "energy_kl": loss.detach() - entropy, "target_entropy": entropy, **aux}

    @torch.no_grad()
    def energy_fit(self, obs: Tensor, t: float | None = None, seed: int = 0) -> dict[str, float]:
        """How well the energy near t = 0, where its target is ``beta Q`` up to a per-state constant (QGPO Eq 12 at
        t = 0), follows that target on ``cfg.support_samples`` fresh behaviour actions per state of ``obs``
        (normalized), at time ``t`` (default: the earliest the energy is trained at, the path's noise interval's
        start): ``q_spread`` (mean over states of the std of Q over the support), ``target_entropy`` of softmax(beta Q)
        against ``ln_m`` (uniform), ``corr`` and ``slope`` of the per-state-centred energy regressed on the
        per-state-centred beta Q (1 and 1 for the exact energy, 0 for one that ignores Q), and ``t``."""
        cfg = self.cfg
        t = self.behaviour._interval("noise")[0] if t is None else t
        a = support_actions(self.behaviour, obs, m=cfg.support_samples, solver=cfg.act_solver, steps=cfg.act_steps,
                            seed=seed)
        b, m = a.shape[:2]
        q = q_of_each(self.critic.q, obs, a)
        bq = cfg.beta * q
        w = torch.softmax(bq, dim=1)
        f = energy_of_each(self.energy, a, torch.full((b,), t, dtype=a.dtype, device=a.device),
                           obs.unsqueeze(1).expand(b, m, obs.shape[1]))
        corr, slope = within_state_fit(bq, f)
        return {"q_spread": float(q.std(1).mean()),
                "target_entropy": float(-torch.special.xlogy(w, w).sum(1).mean()), "ln_m": math.log(m),
                "corr": corr, "slope": slope, "t": t}

    def guidance(self, x: Tensor, t: Tensor, obs: Tensor) -> Tensor:
        """``guidance_scale * grad_x f(x, t, s)`` (QGPO Eq 13's energy term)."""
        return self.cfg.guidance_scale * torch.func.grad(lambda y: self.energy(y, t, obs).sum())(x)

    def act_normalized(self, obs: Tensor) -> Tensor:
        cfg = self.cfg
        return self.behaviour.sample(obs, solver=cfg.act_solver, steps=cfg.act_steps, check=False,
                                     temperature=cfg.act_temperature, guidance=self.guidance).clamp(-1.0, 1.0)
