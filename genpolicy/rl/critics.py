"""Implicit Q-Learning critic (Kostrikov et al. 2022; paper Eq 32), written once and reused by every algorithm.

    L_V(psi) = E[ L2^tau( min_i Qhat_i(s, a) - V_psi(s) ) ],    L2^tau(u) = |tau - 1(u < 0)| u^2
    L_Q(xi)  = E[ sum_i (Q_xi_i(s, a) - r - gamma (1 - d) V_psi(s'))^2 ]

V is updated before Q (as in the IQL paper); Qhat are Polyak-averaged target copies of the twin Qs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..nets import mlp
from ..nets.ensemble import EnsembleMLP
from ..optim import foreach, minimize
from .data import Batch

__all__ = ["expectile_loss", "q_loss", "twin_q_loss", "polyak_", "q_of_each", "IQLConfig", "IQLCritic",
           "InSupportCritic"]


def expectile_loss(diff: Tensor, tau: float) -> Tensor:
    """Asymmetric squared loss ``|tau - 1(diff < 0)| * diff^2`` (Eq 32), element-wise."""
    weight = torch.where(diff < 0, 1.0 - tau, tau)
    return weight * diff.pow(2)


def q_loss(q_preds: tuple[Tensor, ...], target: Tensor) -> Tensor:
    """Sum over the twin heads of the mean squared TD error."""
    return sum(((q - target) ** 2).mean() for q in q_preds)


def _v_loss(vf: nn.Module, obs: Tensor, q_t: Tensor, tau: float) -> tuple[Tensor, dict]:
    """Expectile regression of V(s) on the target twin-Q minimum (Eq 32, first line)."""
    v = vf(obs).squeeze(-1)
    return expectile_loss(q_t - v, tau).mean(), {"v_mean": v.mean()}


def twin_q_loss(qf: "TwinQ", obs: Tensor, act: Tensor, target: Tensor) -> tuple[Tensor, dict]:
    """TD regression of both Q heads on r + gamma (1 - d) V(s') (Eq 32, second line)."""
    qs = qf.both(obs, act)
    return q_loss(qs, target), {"q_mean": qs[0].mean()}


@torch.no_grad()
def polyak_(target: nn.Module, source: nn.Module, rate: float) -> None:
    """``target <- target + rate (source - target)`` for every parameter (the target networks' update)."""
    foreach("lerp_", list(target.parameters()), list(source.parameters()), rate)


def q_of_each(q, obs: Tensor, actions: Tensor) -> Tensor:
    """``q(s_b, a_bk)`` for K actions per state: ``obs`` ``(B, obs_dim)``, ``actions`` ``(B, K, act_dim)`` ->
    ``(B, K)`` (candidates to select from, a behaviour support to average over)."""
    b, k = actions.shape[:2]
    return q(obs.repeat_interleave(k, dim=0), actions.reshape(b * k, -1)).reshape(b, k)


class TwinQ(nn.Module):
    """Two Q networks on ``[s, a]`` (``layer_norm``: LayerNorm after each hidden layer, as FQL's critic).

    ``batched``: the two as one :class:`~genpolicy.nets.ensemble.EnsembleMLP` (stacked weights, one batched matmul
    per layer), stacked from the same two MLPs the separate form builds, so it starts from the same weights and
    computes the same values (fewer, larger kernels: for launch-bound devices)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden=(256, 256), layer_norm: bool = False,
                 batched: bool = False):
        super().__init__()
        q1 = mlp(obs_dim + act_dim, 1, hidden, layer_norm=layer_norm)
        q2 = mlp(obs_dim + act_dim, 1, hidden, layer_norm=layer_norm)
        self.batched = batched
        if batched:
            self.ens = EnsembleMLP.stack([q1, q2])
        else:
            self.q1, self.q2 = q1, q2

    def both(self, obs: Tensor, act: Tensor) -> tuple[Tensor, Tensor]:
        sa = torch.cat([obs, act], dim=-1)
        if self.batched:
            q = self.ens(sa).squeeze(-1)
            return q[0], q[1]
        return self.q1(sa).squeeze(-1), self.q2(sa).squeeze(-1)

    def forward(self, obs: Tensor, act: Tensor) -> Tensor:
        return torch.minimum(*self.both(obs, act))


@dataclass
class IQLConfig:
    """IQL critic settings."""

    hidden: tuple[int, ...] = (256, 256)
    """hidden sizes of the Q and V networks"""
    expectile: float = 0.7
    """IQL expectile tau (0.7 locomotion, 0.9 antmaze)"""
    gamma: float = 0.99
    """discount factor"""
    polyak: float = 0.005
    """target-network averaging rate"""
    lr: float = 3e-4
    """Adam learning rate of Q and V"""
    batched: bool = field(default=False, repr=False)
    """twin Q as one batched ensemble (same values; fewer kernel launches). Out of the repr, so the suite's
    shared-critic folder names of runs made before this field existed stay the same; the suite adds it to its
    key when set"""


class IQLCritic(nn.Module):
    """Twin Q + V with expectile regression; ``update(batch)`` does one V step then one Q step.

    Args:
        obs_dim, act_dim: sizes. cfg: :class:`IQLConfig`.
    """

    def __init__(self, obs_dim: int, act_dim: int, cfg: IQLConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or IQLConfig()
        if not 0 < cfg.expectile < 1:
            raise ValueError(f"expectile must be in (0, 1), got {cfg.expectile}")
        self.qf = TwinQ(obs_dim, act_dim, cfg.hidden, batched=cfg.batched)
        self.q_target = copy.deepcopy(self.qf).requires_grad_(False)
        self.vf = mlp(obs_dim, 1, cfg.hidden)
        fused = {"fused": True}
        self.q_opt = torch.optim.Adam(self.qf.parameters(), lr=cfg.lr, **fused)
        self.v_opt = torch.optim.Adam(self.vf.parameters(), lr=cfg.lr, **fused)

    def v(self, obs: Tensor) -> Tensor:
        """V(s), shape ``(B,)``."""
        return self.vf(obs).squeeze(-1)

    def q(self, obs: Tensor, act: Tensor) -> Tensor:
        """min of the target twin Qs, shape ``(B,)`` (used for advantages and guidance)."""
        return self.q_target(obs, act)

    def q_online(self, obs: Tensor, act: Tensor) -> Tensor:
        """min of the online twin Qs, shape ``(B,)`` (GenerativeRL's GMPG policy loss uses these)."""
        return self.qf(obs, act)

    @torch.no_grad()
    def advantage(self, obs: Tensor, act: Tensor) -> Tensor:
        """A(s, a) = min_i Qhat_i(s, a) - V(s)."""
        return self.q(obs, act) - self.v(obs)

    def update(self, batch: Batch, functional: bool = False) -> dict[str, Tensor]:
        """One IQL step (V, then Q, then Polyak). Returns detached metric tensors.

        ``functional=True`` takes the same step through :func:`genpolicy.optim.minimize`'s functional form, which
        ``torch.compile(fullgraph=True)`` captures as one graph."""
        with torch.no_grad():
            q_t = self.q_target(batch.obs, batch.actions)
        v_loss, v_aux, _ = minimize(self.v_opt, self.vf, _v_loss, batch.obs, q_t, self.cfg.expectile,
                                    functional=functional)
        with torch.no_grad():
            target = batch.rewards + self.cfg.gamma * (1.0 - batch.dones) * self.v(batch.next_obs)
        loss_q, q_aux, _ = minimize(self.q_opt, self.qf, twin_q_loss, batch.obs, batch.actions, target,
                                    functional=functional)
        polyak_(self.q_target, self.qf, self.cfg.polyak)
        return {"v_loss": v_loss, "q_loss": loss_q, "v_mean": v_aux["v_mean"], "q_mean": q_aux["q_mean"]}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"q_opt": self.q_opt, "v_opt": self.v_opt}


class InSupportCritic(nn.Module):
    """Twin Q trained by in-support softmax Q-learning (QGPO Eq 14; the GenerativeRL paper's Eq 29):

        L(xi) = E[ (Q_xi(s, a) - r - gamma (1 - d) sum_i softmax_i(alpha Qhat(s', a'_i)) Qhat(s', a'_i))^2 ],

    with ``a'_i`` behaviour actions at ``s'`` (``next_support``, ``(N, M, act)`` per data row, set by the
    algorithm before the stage) and Qhat the Polyak-averaged target twin minimum. ``alpha -> inf`` is a max over
    the behaviour's support, ``alpha = 0`` its mean (SARSA on the behaviour policy)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden=(256, 256), lr: float = 3e-4, gamma: float = 0.99,
                 polyak: float = 0.005, alpha: float = 1.0):
        super().__init__()
        self.qf = TwinQ(obs_dim, act_dim, hidden)
        self.q_target = copy.deepcopy(self.qf).requires_grad_(False)
        self.q_opt = torch.optim.Adam(self.qf.parameters(), lr=lr, fused=True)
        self.gamma, self.polyak, self.alpha = gamma, polyak, alpha
        self.next_support: Tensor | None = None

    def q(self, obs: Tensor, act: Tensor) -> Tensor:
        """min of the target twin Qs, shape ``(B,)``."""
        return self.q_target(obs, act)

    def soft_value(self, obs: Tensor, support: Tensor) -> Tensor:
        """``sum_i softmax_i(alpha Q(s, a_i)) Q(s, a_i)`` over ``support`` ``(B, M, act)``, shape ``(B,)``."""
        q = q_of_each(self.q, obs, support)
        return (torch.softmax(self.alpha * q, dim=1) * q).sum(1)

    def update(self, batch: Batch, functional: bool = False) -> dict[str, Tensor]:
        if self.next_support is None or batch.idx is None:
            raise RuntimeError("InSupportCritic.update needs next_support (set before the stage) and batch.idx")
        with torch.no_grad():
            v_next = self.soft_value(batch.next_obs, self.next_support[batch.idx])
            target = batch.rewards + self.gamma * (1.0 - batch.dones) * v_next
        loss, aux, _ = minimize(self.q_opt, self.qf, twin_q_loss, batch.obs, batch.actions, target,
                                functional=functional)
        polyak_(self.q_target, self.qf, self.polyak)
        return {"q_loss": loss, "q_mean": aux["q_mean"], "v_next_mean": v_next.mean()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"q_opt": self.q_opt}
