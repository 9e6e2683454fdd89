"""GMPG: Generative Model Policy Gradient (paper Section 4.3, Appendix C.7, Algorithm 3).

Stages: behaviour pretraining by flow matching (Eq 3) -> IQL critic -> policy gradient. The policy starts as a
copy of the behaviour model mu and minimizes KL(pi_theta || pi*) with pi* proportional to mu exp(beta Q), Eq 8:

    L(theta) = E_{s~D, a~pi_theta(.|s)} [ -beta Q(s, a) + log pi_theta(a|s) - log mu(a|s) ]

``a`` is sampled through the ODE solver with the autograd graph kept (direct backpropagation through a
fixed-step solver, or the adjoint method of torchdiffeq); log pi_theta comes from the same solve by the
instantaneous change of variables (Eq 44), or with ``log_pi=reverse`` (GenerativeRL's code) from integrating ``a``
back to noise under pi_theta, and log mu from integrating ``a`` back to noise under mu on the same grid. Divergences
are exact (d vector-Jacobian products) or Hutchinson (Eq 45, probe fixed per solve).

``kl_stop`` ends the policy stage's updates at the first step whose KL estimate passes it (a trust region around mu).

GMPG-static (Eq 42) samples actions from the frozen mu instead and weights the score-function gradient by
exp(beta (Q - V)) / Z or by softmax_k(beta Q) over K samples.

Only velocity outputs are stable here (Appendix C.7): a non-velocity network is converted by Eq 43 with a warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial
from typing import Annotated, ClassVar, Literal

import torch
from torch import Tensor

from ...config import Range
from ...likelihood import Probe
from ...optim import clip_grads_, foreach, functional_adam_, functional_grads, grad_norm
from ...solvers import FixedStepName
from ..critics import IQLCritic
from ..data import Batch
from ..policy_gradient import (LOG_PI_SOLVES, gmpg_static_terms, gmpg_terms, grad_solver, kl_weight,
                               resolve_divergence, saved_bytes_per_row_step)
from .base import Algorithm, Note, Stage
from .common import (
    CriticPolicyConfig,
    advantage_weights,
    behaviour_cloning_stage,
    build_policy_model,
    critic_stage,
    policy_log_likelihood,
    softmax_weights,
)
from .registry import register

__all__ = ["GMPGConfig", "GMPG", "LOG_PI_SOLVES", "kl_weight", "gmpg_terms", "gmpg_static_terms",
           "saved_bytes_per_row_step", "grad_solver", "resolve_divergence"]

#: with compile=auto, the policy step compiles only up to this many training solver steps (see policy_step_compiles)
AUTO_COMPILE_MAX_STEPS = 32
#: GMPG warns (once per run) when its logged KL estimate per action dimension falls below this
KL_WARN_PER_DIM = -0.2


@dataclass
class GMPGConfig(CriticPolicyConfig):
    """GMPG settings (paper Tables 7-8; presets set the per-task values). ``param`` must be velocity for
    stable gradients (others are converted by Eq 43, with a warning)."""

    #: the tests' budget for these fields: a few steps, small networks (every generic test runs it)
    tiny: ClassVar[dict] = {"behaviour_steps": 3, "num_samples": 2, "policy_batch_size": 8, "train_steps": 2}

    policy_steps: int = 10_000
    """policy-gradient steps"""
    policy_lr: float = 1e-4
    """policy-gradient learning rate (1e-5 to 1e-6 for medium-expert)"""
    grad_clip: float = 10.0
    """clip the policy gradient norm to this (0: off)"""
    kl_unit: Literal["nat", "bit_per_dim"] = "nat"
    """unit of log pi - log mu in the loss: nat (Eq 8 as written) or bit_per_dim (GenerativeRL's code divides both
    log-densities by act_dim * ln 2, the unit its Table 8 beta values were tuned in; the same as nat with beta
    multiplied by act_dim * ln 2)"""
    log_pi: Literal["forward", "reverse"] = "forward"
    """dynamic variant: log pi_theta(a|s) from the solve that sampled a (forward), or by integrating a back to noise
    under pi_theta on the grid log mu uses (reverse: GenerativeRL's code; one more solve, and a KL estimate that is
    exactly 0 at pi_theta = mu). The static variant always solves in reverse (its actions come from mu)"""
    kl_gradient: Literal["exact", "paper"] = "exact"
    """exact: the gradient of the computed KL estimate; paper: GenerativeRL's (its compute_likelihood detaches the
    state inside the drift, so d log p / d a is the prior's score at the solve's noise end, -x_1, and the parameters
    get only the per-step terms; with Hutchinson a new probe at every drift evaluation). Needs log_pi=reverse (its
    log pi is a likelihood solve); genpolicy.likelihood has the details"""
    policy_q: Literal["target", "online"] = "target"
    """the twin-Q minimum the policy step maximizes (and the static variant weights by): the Polyak-averaged target
    networks' (IQL's advantage) or the online networks' (GenerativeRL's GMPG code)"""
    kl_stop: Annotated[float, Range(ge=0)] = 0.0
    """> 0: the policy stage stops updating at the first step whose batch KL estimate per action dimension, measured
    before the update, exceeds this (that step is not applied): a trust region around mu, like the target_kl early
    stop of PPO implementations. Later steps of an eager run cost nothing. 0: off"""
    variant: Literal["dynamic", "static"] = "dynamic"
    """dynamic: actions from pi_theta with gradient through the solver (Eq 8); static: from mu (Eq 42)"""
    static_weights: Literal["advantage", "softmax"] = "advantage"
    """static variant: advantage (exp(beta(Q-V))/Z, one action per state) or softmax (over K samples)"""
    num_samples: Annotated[int, Range(ge=1)] = 16
    """static softmax variant: actions sampled per state (K)"""
    weight_clamp: Annotated[float, Range(gt=0)] = 100.0
    """static advantage variant: upper clamp of exp(beta(Q-V)) before normalizing"""
    behaviour_steps: Annotated[int, Range(ge=0)] = 100_000
    """behaviour-model pretraining steps (flow matching)"""
    behaviour_epochs: Annotated[float, Range(ge=0)] = 0.0
    """behaviour budget in passes over the dataset at batch_size, replacing behaviour_steps when > 0 (the paper's
    code: 2000 at batch 4096)"""
    behaviour_lr: Annotated[float, Range(gt=0)] = 1e-4
    """behaviour-model learning rate"""
    policy_batch_size: Annotated[int, Range(ge=0)] = 0
    """states per policy-gradient step (0: batch_size; the paper uses 40960 on a GPU)"""
    train_solver: FixedStepName = "midpoint"
    """fixed-step solver for training solves (Euler's O(h) error biases the KL
    estimate unless T is large, e.g. -0.9 nats at T=16 on the Swiss roll, where midpoint gives -0.003)"""
    train_steps: Annotated[int, Range(ge=1)] = 32
    """solver steps T for training solves (the paper uses 1000 on a GPU)"""
    gradient: Literal["direct", "adjoint"] = "direct"
    """direct: backpropagate through the solver; adjoint: torchdiffeq's adjoint (memory O(1) in T)"""
    divergence: Literal["auto", "exact", "hutchinson"] = "auto"
    """divergence estimator; auto: exact for action dimension <= 32, Hutchinson above"""
    probe: Probe = "gaussian"
    """Hutchinson probe distribution"""
    chunk_size: Annotated[int, Range(ge=0)] = 0
    """rows per backward pass within a step (0: chosen from memory_budget_mb)"""
    memory_budget_mb: Annotated[int, Range(ge=1)] = 2048
    """autograd memory allowed per chunk when chunk_size is 0"""

    epoch_fields: ClassVar[dict[str, str]] = {"behaviour_epochs": "behaviour_steps"}
    epoch_batch_fields: ClassVar[dict[str, str]] = {"policy_epochs": "policy_batch_size"}

    def __post_init__(self):
        super().__post_init__()
        grad_solver(self.train_solver, self.gradient)  # e.g. heun has no adjoint counterpart
        if self.kl_gradient == "paper" and self.variant == "dynamic" and self.log_pi != "reverse":
            raise ValueError("GMPGConfig.kl_gradient=paper computes log pi as GenerativeRL does, by a likelihood "
                             "solve: set log_pi=reverse")
        if self.kl_stop > 0 and self.variant == "static":
            raise ValueError("GMPGConfig.kl_stop: the dynamic variant only (the static variant samples from mu, where "
                             "log pi - log mu estimates -KL(mu || pi))")


@register
class GMPG(Algorithm):
    """GMPG with an IQL critic; stages ``behaviour``, ``critic``, ``policy``."""

    name = "gmpg"
    Config = GMPGConfig

    def __init__(self, obs_dim: int, act_dim: int, cfg: GMPGConfig, normalizer=None):
        super().__init__(obs_dim, act_dim, cfg, normalizer)
        self.solver_name = grad_solver(cfg.train_solver, cfg.gradient)
        self.div = resolve_divergence(cfg.divergence, act_dim)
        self.kl_scale = kl_weight(cfg.kl_unit, act_dim)
        self.critic = IQLCritic(obs_dim, act_dim, cfg.iql())
        # GMPG's gradients go through the policy's velocity; anything else is converted by Eq 43
        self.behaviour = build_policy_model(cfg, obs_dim, act_dim)
        self.policy = build_policy_model(cfg, obs_dim, act_dim)
        self.behaviour_opt = torch.optim.Adam(self.behaviour.parameters(), lr=cfg.behaviour_lr, fused=True)
        self.policy_opt = torch.optim.Adam(self.policy.parameters(), lr=cfg.policy_lr, fused=True)
        # persistent flags (checkpointed): the copy mu -> pi happened; steps skipped for non-finite values
        self.register_buffer("policy_initialized", torch.zeros((), dtype=torch.bool))
        # the same flag as a host value (read in every step and act without a device sync), kept in step with the
        # buffer when a state dict is loaded
        self._policy_ready = False
        self.register_load_state_dict_post_hook(lambda module, keys: module._sync_ready())
        self.register_buffer("skipped_steps", torch.zeros((), dtype=torch.long))
        self._kl_stopped = False  # host copy of the kl_stopped buffer, like _policy_ready
        if cfg.kl_stop > 0:  # (only then: a run without kl_stop keeps its state dict's keys)
            self.register_buffer("kl_stopped", torch.zeros((), dtype=torch.bool))
        self._bytes_per_row_step: float | None = None

    def optimizers(self):
        return {"behaviour_opt": self.behaviour_opt, "policy_opt": self.policy_opt, **self.critic.optimizers()}

    def stages(self) -> list[Stage]:
        cfg = self.cfg
        return [behaviour_cloning_stage(self.behaviour, self.behaviour_opt, cfg.behaviour_steps, kind="flow"),  # Eq 3
                critic_stage(self.critic, cfg.critic_steps),
                Stage("policy", cfg.policy_steps, self.update_policy, evaluates=True,
                      batch_size=cfg.policy_batch_size or None, skips_non_finite=True,
                      functional=(partial(self.update_policy, functional=True) if self.policy_step_compiles
                                  else None),
                      prepare=self.prepare_policy, monitor=self.monitor_policy)]

    def monitor_policy(self, metrics: dict[str, float]) -> str | None:
        """A warning when the logged KL estimate per action dimension falls below :data:`KL_WARN_PER_DIM`: a KL
        cannot be negative, so the policy is being rewarded for the solver's discretization error (seen at T = 8
        on walker2d- and halfcheetah-medium, docs/results.md), not for better actions. With ``kl_stop``, a note
        (recorded once, with the step that ends the logging window in which it happened) when the stop is reached:
        the policy is frozen from there, so a score is read with it."""
        cfg = self.cfg
        if metrics.get("kl_stopped", 0.0) > 0:
            return Note(f"kl_stop reached: the KL estimate passed {cfg.kl_stop:g} nats per action dimension, so "
                        f"the policy makes no more updates in this stage")
        kl = metrics.get("kl_per_dim")
        if kl is None or kl >= KL_WARN_PER_DIM:
            return None
        fix = "raise train_steps" + (" or use log_pi=forward" if cfg.log_pi == "reverse" else "")
        return (f"the KL estimate is below {KL_WARN_PER_DIM} nats per action dimension (a KL cannot be negative): "
                f"the policy exploits the bias of train_steps={cfg.train_steps} {cfg.train_solver} steps; {fix}")

    @property
    def policy_step_compiles(self) -> bool:
        """Whether the policy stage offers its functional (compilable) form: the direct gradient only, and with
        ``compile=auto`` only up to :data:`AUTO_COMPILE_MAX_STEPS` solver steps (the solves are unrolled into the
        graph: compiling T = 32 takes minutes, T = 1000 would take hours); ``compile=on`` compiles any T."""
        cfg = self.cfg
        return cfg.gradient == "direct" and (cfg.compile != "auto" or cfg.train_steps <= AUTO_COMPILE_MAX_STEPS)

    # ------------------------------------------------------------------ policy
    def init_policy_from_behaviour(self) -> None:
        """pi_theta <- mu (Algorithm 3, line 1197); done once, at the first policy step."""
        if self.cfg.param != "velocity":
            warnings.warn(f"GMPG differentiates through the velocity; this model outputs {self.cfg.param!r}, which is "
                          f"converted by Eq 43 (v = f x - g^2/(2 sigma) eps). The conversion divides by sigma(t) -> 0 "
                          f"near t=0 and can make gradients unstable (paper Appendix C.7); prefer param=velocity.",
                          stacklevel=2)
        self.policy.load_state_dict(self.behaviour.state_dict())
        self.policy_initialized.fill_(True)
        self._policy_ready = True

    def _sync_ready(self) -> None:
        self._policy_ready = bool(self.policy_initialized)
        self._kl_stopped = self.cfg.kl_stop > 0 and bool(self.kl_stopped)

    def _stop_on_kl(self, finite: Tensor, kl_per_dim: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """With ``kl_stop``: whether this step may be applied (finite and not past the stop), the flag updated on
        the device, and the metric ``kl_stopped``. Without: ``finite`` and no metric."""
        if self.cfg.kl_stop <= 0:
            return finite, {}
        stopped = self.kl_stopped | (finite & (kl_per_dim > self.cfg.kl_stop))
        self.kl_stopped.copy_(stopped)
        return finite & ~stopped, {"kl_stopped": stopped.float()}

    def prepare_policy(self, data=None) -> None:
        """Host-side work before the first policy step (and on resume): pi_theta <- mu once, mu frozen, and the
        autograd memory per row measured for the chunk size, so that a compiled step has none of it to trace."""
        if not self._policy_ready:
            self.init_policy_from_behaviour()
        self.behaviour.requires_grad_(False)
        self.chunk_rows(1)

    @property
    def samples_per_state(self) -> int:
        cfg = self.cfg
        return cfg.num_samples if cfg.variant == "static" and cfg.static_weights == "softmax" else 1

    def _q(self, obs: Tensor, act: Tensor) -> Tensor:
        return self.critic.q(obs, act) if self.cfg.policy_q == "target" else self.critic.q_online(obs, act)

    def _terms(self, obs: Tensor, steps: int, functional: bool = False) -> dict[str, Tensor]:
        cfg = self.cfg
        if cfg.variant == "dynamic":
            return gmpg_terms(self.policy, self.behaviour, self._q, obs, cfg.beta, self.solver_name, steps,
                              self.div, cfg.probe, functional=functional, kl_scale=self.kl_scale,
                              log_pi=cfg.log_pi, estimator=cfg.kl_gradient)
        k = self.samples_per_state
        with torch.no_grad():
            s = self.behaviour.sample_with_log_prob(obs, n=k, divergence=self.div, steps=steps,
                                                    solver=cfg.train_solver, probe=cfg.probe, check=not functional,
                                                    functional=functional)
            a = s.x.reshape(-1, self.act_dim)
            obs_k = obs.repeat_interleave(k, dim=0)
            q = self._q(obs_k, a)
            if cfg.static_weights == "softmax":
                w = softmax_weights(q.reshape(-1, k), cfg.beta)
            else:
                w = advantage_weights(q - self.critic.v(obs_k), cfg.beta, cfg.weight_clamp)
                w = w / w.mean()  # Z(s) estimated on the batch (self-normalized importance weights)
        return gmpg_static_terms(self.policy, a, obs_k, w, q, s.log_prob.reshape(-1), cfg.beta, self.solver_name,
                                 steps, self.div, cfg.probe, functional=functional, kl_scale=self.kl_scale,
                                 estimator=cfg.kl_gradient)

    def chunk_rows(self, rows: int) -> int:
        """Rows per backward pass: ``chunk_size``, or what fits ``memory_budget_mb`` (measured once)."""
        cfg = self.cfg
        if cfg.chunk_size > 0:
            return min(rows, cfg.chunk_size)
        if self._bytes_per_row_step is None:
            obs = torch.zeros(8, self.obs_dim, device=self.device)
            # the probe draws noise: fork the RNG so that a resumed run (which measures again) stays exact
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                self._bytes_per_row_step = saved_bytes_per_row_step(lambda r, s: self._terms(obs[:r], s)["loss"], 8, 2)
        steps_kept = 2 if cfg.gradient == "adjoint" else cfg.train_steps
        per_row = self._bytes_per_row_step * steps_kept
        return int(max(1, min(rows, cfg.memory_budget_mb * 2**20 // max(per_row, 1.0))))

    def update_policy(self, batch: Batch, functional: bool = False) -> dict[str, Tensor]:
        """One GMPG step (Eq 8 or Eq 42), its gradient summed over chunks of the batch; non-finite steps are skipped
        and counted, and with ``kl_stop`` the step that passes it and every later one are not applied.

        ``functional``: the same step without ``backward``, ``torch.optim`` or host syncs (``torch.func`` gradients
        over the same chunks, the divergence by ``torch.func``, the clip and Adam by :mod:`genpolicy.optim`, a skipped
        step masked on the device), which the loop compiles whole; it needs :meth:`prepare_policy` first (the loop
        calls it on entering the stage). Eager: ``loss.backward()`` per chunk and the policy's fused Adam."""
        if functional and not self._policy_ready:
            raise RuntimeError("GMPG's functional policy step needs prepare_policy() first (pi_theta <- mu)")
        if not functional:
            self.prepare_policy()  # (the loop calls it on entering the stage; direct callers get it here)
            if self._kl_stopped:  # past kl_stop: nothing to compute
                return {"kl_stopped": torch.tensor(1.0), "skipped_total": self.skipped_steps.float()}
        cfg = self.cfg
        obs = batch.obs
        rows = obs.shape[0]
        chunk = self.chunk_rows(rows)
        n_total = rows * self.samples_per_state
        keys = ("loss", "q", "log_pi", "log_mu", "kl")

        def loss_fn(policy, o):  # the loss of one chunk (``policy``: self.policy, its parameters differentiated)
            terms = self._terms(o, cfg.train_steps, functional=functional)
            return terms["loss"].sum() / n_total, {k: terms[k].detach().sum() for k in keys}

        if not functional:
            self.policy_opt.zero_grad(set_to_none=True)
        grads, sums = None, {}
        for lo in range(0, rows, chunk):
            if functional:
                params, g, _, aux = functional_grads(self.policy_opt, self.policy, loss_fn, obs[lo:lo + chunk])
                grads = g if grads is None else foreach("add", grads, g)
            else:
                loss, aux = loss_fn(self.policy, obs[lo:lo + chunk])
                loss.backward()  # the gradient of the mean over all rows, accumulated in .grad
            sums = aux if not sums else {k: sums[k] + aux[k] for k in keys}
        m = {k: v / n_total for k, v in sums.items()}
        kl_per_dim = m["kl"] / self.act_dim
        if functional:
            with torch.no_grad():
                gnorm = clip_grads_(grads, cfg.grad_clip) if cfg.grad_clip > 0 else grad_norm(grads)
                finite = torch.isfinite(m["loss"]) & torch.isfinite(gnorm)
                apply, extra = self._stop_on_kl(finite, kl_per_dim)
                functional_adam_(self.policy_opt, params, grads, apply=apply)
                self.skipped_steps.add_((~finite).long())
            skipped = (~finite).float()
        else:
            gnorm, skipped, extra = self._eager_update(m["loss"], kl_per_dim)
        return {"policy_loss": m["loss"], "q_mean": m["q"], "log_pi": m["log_pi"], "log_mu": m["log_mu"],
                "kl_per_dim": kl_per_dim, "grad_norm": gnorm.detach(), "skipped": skipped,
                "skipped_total": self.skipped_steps.float(), "chunk_rows": torch.tensor(float(chunk)), **extra}

    def _eager_update(self, loss: Tensor, kl_per_dim: Tensor) -> tuple[Tensor, Tensor, dict]:
        """The eager step's update from the gradients in ``.grad``: clip, Adam, or skip (host-side branches)."""
        grads = [p.grad for p in self.policy.parameters() if p.grad is not None]
        gnorm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        finite_t = torch.isfinite(loss) & torch.isfinite(gnorm)
        apply_t, extra = self._stop_on_kl(finite_t, kl_per_dim)
        finite = bool(finite_t)
        applied = bool(apply_t) if extra else finite  # (one host sync without kl_stop)
        if extra:
            self._kl_stopped = finite and not applied  # a finite step is refused only past the stop
        if applied:
            if self.cfg.grad_clip > 0:  # clip with the norm already computed (one norm per step)
                torch.nn.utils.clip_grads_with_norm_(self.policy.parameters(), self.cfg.grad_clip, gnorm)
            self.policy_opt.step()
        else:
            self.policy_opt.zero_grad(set_to_none=True)
            if not finite:
                self.skipped_steps += 1
        return gnorm, torch.tensor(0.0 if finite else 1.0), extra

    def action_log_likelihood(self, obs: Tensor, actions: Tensor) -> Tensor:
        return policy_log_likelihood(self.policy if self._policy_ready else self.behaviour, obs, actions)

    def act_normalized(self, obs: Tensor) -> Tensor:
        model = self.policy if self._policy_ready else self.behaviour
        return model.sample(obs, solver=self.cfg.act_solver, steps=self.cfg.act_steps, check=False,
                              temperature=self.cfg.act_temperature)
