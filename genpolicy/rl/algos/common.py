"""Building blocks shared by algorithms: the critic + generative-policy config, the policy-model builder, the
weight functions of weighted regression, one optimizer step and one behaviour-cloning stage.

A new algorithm imports what it needs from here (never from a sibling algorithm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Annotated, ClassVar, Literal

import torch
from torch import Tensor

from ...config import Range
from ...generative import GenerativeModel
from ...matching import LossKind, Weighting
from ...nets import NetName, make_net
from ...paths import Parameterization, PathName, make_path
from ...optim import minimize, optimizer_step
from ..data import Batch
from .base import RunConfig, Stage

__all__ = ["Precision", "CriticConfig", "CriticPolicyConfig", "DiffusionPolicyConfig", "build_policy_model",
           "advantage_weights", "softmax_weights", "optimizer_step", "minimize", "weighted_matching_loss",
           "weighted_matching_step", "behaviour_cloning_stage", "critic_stage", "support_actions", "within_state_fit",
           "candidate_actions", "pick", "policy_log_likelihood"]

Precision = Literal["fp32", "bf16"]
#: the generative network's autocast dtype for each ``policy_precision`` (None: no autocast)
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}


@dataclass
class CriticConfig(RunConfig):
    """Fields of algorithms with an IQL critic (IQL, GMPO, GMPG, ...)."""

    #: the tests' budget for these fields: a few steps, small networks (every generic test runs it)
    tiny: ClassVar[dict] = {"critic_hidden": (16, 16), "critic_steps": 3}

    critic_steps: Annotated[int, Range(ge=0)] = 100_000
    """IQL critic steps"""
    critic_lr: Annotated[float, Range(gt=0)] = 3e-4
    """IQL learning rate"""
    critic_hidden: Annotated[tuple[int, ...], Range(ge=1)] = (256, 256)
    """IQL network hidden sizes"""
    expectile: Annotated[float, Range(gt=0, lt=1)] = 0.7
    """IQL expectile (0.7 locomotion, 0.9 antmaze)"""
    gamma: Annotated[float, Range(ge=0, le=1)] = 0.99
    """discount"""
    polyak: Annotated[float, Range(gt=0, le=1)] = 0.005
    """target-network rate"""
    critic_epochs: Annotated[float, Range(ge=0)] = 0.0
    """critic budget in passes over the dataset at batch_size, replacing critic_steps when > 0 (the paper's code:
    5000 at batch 4096)"""
    critic_batched: bool = False
    """the twin Q as one batched ensemble (same values, fewer kernel launches; for GPUs)"""

    stage_steps: ClassVar[tuple[str, ...]] = ("critic_steps", "policy_steps", "behaviour_steps")
    epoch_fields: ClassVar[dict[str, str]] = {"critic_epochs": "critic_steps"}

    def iql(self):
        """The IQL critic's settings."""
        from ..critics import IQLConfig

        return IQLConfig(self.critic_hidden, self.expectile, self.gamma, self.polyak, self.critic_lr,
                         self.critic_batched)


@dataclass
class CriticPolicyConfig(CriticConfig):
    """Fields shared by algorithms with an IQL critic and a generative policy (GMPO, GMPG)."""

    #: the tests' budget for these fields: a few steps, small networks (every generic test runs it)
    tiny: ClassVar[dict] = {"net": "mlp", "net_hidden": (16, 16), "policy_steps": 3}

    path: PathName = "gvp"
    """generative path"""
    param: Parameterization = "velocity"
    """network output"""
    net: NetName = "unet"
    """policy network: unet (the paper's 512-256-128 MLP U-Net), mlp, resnet or dit"""
    net_hidden: Annotated[tuple[int, ...], Range(ge=1)] = (512, 256, 128)
    """hidden sizes of the policy network (unet: down-path widths; mlp: layers)"""
    beta: Annotated[float, Range(ge=0)] = 1.0
    """temperature beta (paper Table 8)"""
    policy_steps: Annotated[int, Range(ge=0)] = 100_000
    """policy steps"""
    policy_lr: Annotated[float, Range(gt=0)] = 1e-4
    """policy learning rate"""
    grad_clip: Annotated[float, Range(ge=0)] = 0.0
    """clip the policy gradient norm to this (0: off)"""
    policy_epochs: Annotated[float, Range(ge=0)] = 0.0
    """policy budget in passes over the dataset at batch_size, replacing policy_steps when > 0 (the paper's code:
    GMPO 10000 at batch 4096)"""
    policy_precision: Precision = "fp32"
    """the generative networks' matrix products: fp32, or bf16 (autocast; their weights, optimizer state, losses and
    every critic stay fp32): GMPO policy steps 1.27x (mlp 3x256, batch 1024) and 1.9x (unet, batch 4096) faster on
    one thread of an AVX-512 BF16 CPU (benchmarks/speed.py); not bit-equal to fp32"""

    epoch_fields: ClassVar[dict[str, str]] = {"policy_epochs": "policy_steps"}


@dataclass
class DiffusionPolicyConfig(CriticPolicyConfig):
    """A critic and a diffusion behaviour model on the VP-SDE trained by denoising score matching, as IDQL, SfBC,
    QGPO and SRPO have it (any path and loss of the library can be set instead)."""

    path: PathName = "vpsde"
    """path of the behaviour model (these papers: a VP-SDE / DDPM)"""
    param: Parameterization = "noise"
    """behaviour network output"""
    loss: LossKind = "score"
    """matching loss of the behaviour model"""
    weighting: Weighting = "vanilla"
    """score-matching weighting"""


def build_policy_model(cfg: CriticPolicyConfig, obs_dim: int, act_dim: int) -> GenerativeModel:
    """The conditional generative policy pi(a | s) described by ``cfg`` (any config with its network, path and
    precision fields: Diffusion-QL's too)."""
    kw = {"hidden": tuple(cfg.net_hidden)} if cfg.net in ("unet", "mlp") else {}
    net = make_net(cfg.net, act_dim, obs_dim, **kw)
    return GenerativeModel(net, make_path(cfg.path), (act_dim,), param=cfg.param,
                           compute_dtype=PRECISIONS[cfg.policy_precision])


def policy_log_likelihood(model: GenerativeModel, obs: Tensor, actions: Tensor) -> Tensor:
    """``log pi(a | s)`` per row as the held-out likelihood measures it for every generative policy
    (:meth:`~genpolicy.rl.algos.base.Algorithm.action_log_likelihood`): exact divergence, 32 rk4 steps, no draws."""
    return model.log_prob(actions, obs, divergence="exact", steps=32, solver="rk4", check=False)


def advantage_weights(adv: Tensor, beta: float, clamp: float) -> Tensor:
    """``min(exp(beta * adv), clamp)`` computed without overflow (Eq 7 with the paper's clamp)."""
    return torch.exp(torch.clamp(beta * adv, max=math.log(clamp)))


def softmax_weights(q: Tensor, beta: float) -> Tensor:
    """``K softmax_k(beta q[:, k])`` for ``q`` of shape ``(B, K)``, flattened to ``(B K,)``: mean weight 1 per state."""
    return torch.softmax(beta * q, dim=1).reshape(-1) * q.shape[1]


def weighted_matching_loss(model: GenerativeModel, x0: Tensor, cond, weights: Tensor | None, kind: str,
                           weighting: str, t: Tensor | None = None, x1: Tensor | None = None) -> tuple[Tensor, dict]:
    """``mean(w * L_matching)`` (Eq 7, 39, 40; the plain mean without weights) and ``{"per_sample": L_matching}``;
    ``t``/``x1``: the matching times and noise (drawn by the model when None)."""
    per_sample = model.matching_loss(x0, cond, kind=kind, weighting=weighting, t=t, x1=x1,
                                     check=False)  # data checked at load
    loss = (weights * per_sample).mean() if weights is not None else per_sample.mean()
    return loss, {"per_sample": per_sample}


def weighted_matching_step(model: GenerativeModel, opt: torch.optim.Optimizer, x0: Tensor, cond=None,
                           weights: Tensor | None = None, kind: str = "flow", weighting: str = "vanilla",
                           clip: float = 0.0, functional: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
    """One step on the (weighted) matching loss ``mean(w * L_matching)`` (Eq 7, 39, 40; plain BC without weights).

    Returns the loss, the per-sample matching losses (detached) and the gradient norm (None without clipping).
    ``functional`` selects :func:`genpolicy.optim.minimize`'s compilable form.
    """
    loss, aux, gnorm = minimize(opt, model, weighted_matching_loss, x0, cond, weights, kind, weighting, clip=clip,
                                functional=functional)
    return loss, aux["per_sample"], gnorm


def behaviour_cloning_stage(model: GenerativeModel, opt: torch.optim.Optimizer, steps: int, kind: str = "flow",
                            weighting: str = "vanilla", clip: float = 0.0, name: str = "behaviour",
                            evaluates: bool = False) -> Stage:
    """A stage fitting ``model`` to the dataset's actions given states by its matching loss (Eq 3, 23, 26);
    ``evaluates``: the policy that acts is (built on) this model, so the loop evaluates during the stage."""

    def update(batch: Batch, functional: bool = False) -> dict[str, Tensor]:
        loss, _, _ = weighted_matching_step(model, opt, batch.actions, batch.obs, kind=kind, weighting=weighting,
                                            clip=clip, functional=functional)
        return {f"{name}_loss": loss}

    return Stage(name, steps, update, evaluates=evaluates, functional=partial(update, functional=True),
                 stackable=True)


def critic_stage(critic, steps: int, name: str = "critic") -> Stage:
    """The IQL critic's stage, with its compilable form and its form across seeds."""
    return Stage(name, steps, critic.update, functional=partial(critic.update, functional=True), stackable=True)


@torch.no_grad()
def support_actions(model: GenerativeModel, obs: Tensor, m: int, solver: str, steps: int, seed: int,
                    chunk: int = 2048) -> Tensor:
    """``m`` behaviour actions per state, ``(N, m, act)``, clipped to [-1, 1]: the "support" of in-support
    Q-learning and contrastive energy prediction (SfBC, QGPO), drawn with ``model`` in eval mode. The noise comes
    from a generator seeded with ``seed``, so the same model gives the same actions whenever they are rebuilt (after
    a resume, say), and the global RNG is left alone. Drawn ``chunk`` states at a time."""
    gen = torch.Generator(device=obs.device).manual_seed(seed)
    was_training = model.training
    model.eval()
    out = [model.sample(part, n=m, solver=solver, steps=steps, check=False, generator=gen).clamp(-1.0, 1.0)
           for part in obs.split(chunk)]
    model.train(was_training)
    return torch.cat(out) if out else obs.new_zeros(0, m, *model.x_shape)


def candidate_actions(model: GenerativeModel, obs: Tensor, k: int, cfg: RunConfig,
                      clip_denoised: float | None = None) -> Tensor:
    """``k`` actions per state from ``model``, ``(B, k, act)``, clipped to [-1, 1], drawn the way ``cfg`` acts
    (solver, steps, temperature; ``clip_denoised`` as in ``GenerativeModel.sample``): the candidates that IDQL,
    SfBC and Diffusion-QL select from."""
    return model.sample(obs, n=k, solver=cfg.act_solver, steps=cfg.act_steps, check=False,
                        temperature=cfg.act_temperature, clip_denoised=clip_denoised).clamp(-1.0, 1.0)


def within_state_fit(x: Tensor, y: Tensor) -> tuple[float, float]:
    """Correlation and slope of ``y`` regressed on ``x``, both ``(B, M)`` (M actions per state) and centred per state
    (row), pooled over states: how well ``y`` ranks and spaces a state's actions like ``x``, whatever each state's
    offset (1 and 1 for ``y = x + c(s)``; slope k for ``y = k x + c(s)``; 0 for ``y`` unrelated to ``x``)."""
    x, y = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    sxx, syy, sxy = (x * x).sum(), (y * y).sum(), (x * y).sum()
    return float(sxy / (sxx * syy).sqrt()), float(sxy / sxx)


def pick(actions: Tensor, idx: Tensor) -> Tensor:
    """``actions[b, idx[b]]`` for candidates ``(B, K, act)`` and chosen indices ``(B,)``."""
    return actions[torch.arange(actions.shape[0], device=actions.device), idx]
