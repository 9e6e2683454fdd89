"""The contract between an algorithm and the one training loop (genpolicy.train): its config, stages, optimizers,
action method and state. Shared building blocks are in :mod:`.common`, the registry in :mod:`.registry`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Annotated, Callable, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from ...config import Range, check_choices
from ...solvers import SolverName
from ..data import Batch, ObsNormalizer, RewardScale

__all__ = ["Stage", "Note", "Algorithm", "RunConfig", "compile_mode"]


@dataclass
class RunConfig:
    """Settings of the training loop shared by every algorithm (flat keys: usable with --set). Fields typed
    ``Literal[...]`` list their allowed values once; they are checked when the config is made."""

    #: the tests' budget for these fields: a few steps, small networks (every generic test runs it)
    tiny: ClassVar[dict] = {"act_steps": 2, "batch_size": 16, "eval_every": 0, "final_eval_episodes": 1}

    seed: Annotated[int, Range(ge=0)] = 0
    """random seed (model init, batches, noise)"""
    batch_size: Annotated[int, Range(ge=1)] = 256
    """minibatch size for every stage"""
    device: str = "cpu"
    """torch device"""
    eval_every: Annotated[int, Range(ge=0)] = 5000
    """evaluate the policy every this many policy-stage steps (0: only at the end)"""
    eval_episodes: Annotated[int, Range(ge=1)] = 10
    """episodes per evaluation"""
    log_every: Annotated[int, Range(ge=1)] = 100
    """write metrics every this many steps"""
    ckpt_every: Annotated[int, Range(ge=1)] = 5000
    """checkpoint every this many steps (always at stage ends)"""
    reward_scale: RewardScale = "locomotion"
    """reward scaling: locomotion (1000/return span), antmaze (r - 1) or none"""
    normalize_obs: bool = True
    """normalize observations by dataset mean/std (stored with the policy)"""
    act_solver: SolverName = "euler"
    """solver used to sample actions"""
    act_steps: Annotated[int, Range(ge=1, le=100_000)] = 32
    """solver steps used to sample actions"""
    act_temperature: Annotated[float, Range(ge=0)] = 1.0
    """initial-noise scale when sampling actions (1: the model's distribution; 0: from the prior's mean)"""
    final_eval_episodes: Annotated[int, Range(ge=1)] = 50
    """episodes of the evaluation at the end of the last evaluating stage (the run's final score, with its s.e.)"""
    heldout_transitions: Annotated[int, Range(ge=0)] = 0
    """> 0: hold this many transitions (whole episodes drawn at random, fixed) out of training, and at every
    evaluation log the policy's mean log-likelihood of their actions (heldout_logp, nats per transition; generative
    policies, exact divergence): the paper's Figure 1"""
    compile: Literal["auto", "off", "on", "trace"] = "auto"
    """compile each stage's update whole (torch.compile, fullgraph; CUDA graphs on a GPU): auto = on for CUDA and off
    on CPU (there steps are mostly compute-bound and compiling gains 1.07-1.3x: on walker2d shapes at batch 256 the
    IQL critic 146 -> 181 steps/s on one thread, 225 -> 291 on two, GMPO's mlp policy 186 -> 200 and 284 -> 331;
    eager stays the CPU default so that committed runs reproduce), off = eager (the reference), on, or trace
    (capture the graph without generating code: a fast check that a step compiles whole)"""

    #: fields a resumed run may change (config.check_resume_changes); ``stage_steps`` may only grow
    resume_safe: ClassVar[tuple[str, ...]] = ("eval_every", "eval_episodes", "log_every", "ckpt_every", "device",
                                              "compile", "final_eval_episodes")
    stage_steps: ClassVar[tuple[str, ...]] = ()
    #: fields that only change how actions are drawn (``genpolicy eval --set`` may change them; subclasses add theirs)
    act_fields: ClassVar[tuple[str, ...]] = ("act_solver", "act_steps", "act_temperature")
    #: allowed ranges, checked with the choices when the config is made (subclasses add their own)

    def __post_init__(self):
        check_choices(self)
        _check_device(self.device)


def compile_mode(cfg, device: torch.device) -> str:
    """``cfg.compile`` with ``auto`` resolved: on for CUDA, off elsewhere."""
    if cfg.compile == "auto":
        return "on" if device.type == "cuda" else "off"
    return cfg.compile


def _check_device(device: str) -> None:
    """A one-line error for a device torch cannot parse or this machine does not have."""
    try:
        d = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device={device!r}: not a torch device (e.g. cpu, cuda, cuda:1, mps)") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: CUDA is not available on this machine; use device=cpu")
    if d.type == "cuda" and d.index is not None and d.index >= torch.cuda.device_count():
        raise ValueError(f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")


class Note(str):
    """A :attr:`Stage.monitor` message that reports an event (e.g. GMPG's ``kl_stop`` reached) rather than a fault:
    recorded in ``summary.json``'s ``warnings`` like a warning, printed with the prefix ``note``."""


@dataclass
class Stage:
    """A named phase of training: ``steps`` calls of ``update(batch) -> metrics``.

    Attributes:
        evaluates: the policy is meaningful during this stage, so the loop evaluates it.
        batch_size: rows per batch for this stage (None: the run's ``batch_size``).
        skips_non_finite: the update skips (and counts) non-finite steps itself, so non-finite metrics do not
            stop the run.
        functional: the same update written without ``backward``/``torch.optim`` calls or host syncs
            (:func:`genpolicy.optim.minimize` with ``functional=True``), which the loop compiles whole when the
            config's ``compile`` is on; None: the stage always runs ``update`` eagerly.
        prepare: called with the :class:`~genpolicy.rl.data.OfflineData` each time the loop enters the stage (at its
            start and when a run resumes inside it), before the first update: whole-dataset work such as behaviour
            samples for every state or planning returns. It must be deterministic (its own generator, not the
            global RNG), and what it computes must either be rebuilt the same way or live in checkpointed buffers.
        monitor: called with the logged metrics (host floats, every ``log_every`` steps: no extra device sync); a
            message it returns is a warning the loop prints once per run and records in ``summary.json``
            (``warnings``): a sign, seen in the metrics, that the run is going wrong in a known way. A :class:`Note`
            is recorded the same way but printed as a note: an event the run's reader needs, not a fault.
        stackable: the functional form also runs for N seeds at once under ``torch.func.vmap``
            (:class:`genpolicy.rl.stacking.StackedStage`: its state is all in the algorithm's parameters, buffers
            and Adam state, its random draws go through :mod:`genpolicy.rl.rng`), so ``--seeds`` trains the stage
            as one model; False: each seed trains the stage alone.
        compiles: the loop may compile the functional form whole (False: a form with a Python branch on a host
            counter, which vmap runs but a compiled graph would be rebuilt for; the loop keeps the eager step).
    """

    name: str
    steps: int
    update: Callable[[Batch], dict[str, Tensor]]
    evaluates: bool = False
    batch_size: int | None = None
    skips_non_finite: bool = False
    functional: Callable[[Batch], dict[str, Tensor]] | None = None
    prepare: Callable[..., None] | None = None
    monitor: Callable[[dict[str, float]], str | None] | None = None
    stackable: bool = False
    compiles: bool = True


class Algorithm(nn.Module, ABC):
    """An offline-RL algorithm: stages of updates, an action method, and its state.

    Subclasses set ``name`` and ``Config`` (a :class:`RunConfig` dataclass), build their modules and optimizers in
    ``__init__`` and implement :meth:`stages`, :meth:`act_normalized` and :meth:`optimizers` (every optimizer:
    what it leaves out is not checkpointed, and exact resume breaks). Decorate the class with
    :func:`~genpolicy.rl.algos.registry.register` to make it trainable by name.
    """

    name: str = ""
    Config: type = RunConfig

    def __init__(self, obs_dim: int, act_dim: int, cfg, normalizer: ObsNormalizer | None = None):
        super().__init__()
        self.obs_dim, self.act_dim, self.cfg = obs_dim, act_dim, cfg
        self.normalizer = normalizer or ObsNormalizer.identity(obs_dim)

    @abstractmethod
    def stages(self) -> list[Stage]:
        """The stages in order."""

    @abstractmethod
    def act_normalized(self, obs: Tensor) -> Tensor:
        """Actions ``(B, act_dim)`` for already-normalized observations ``(B, obs_dim)``."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer by name (checkpointed with the modules)."""

    def action_log_likelihood(self, obs: Tensor, actions: Tensor) -> Tensor | None:
        """``log pi(a | s)`` per row for normalized observations, where the policy has a density to evaluate
        (generative policies override this); None otherwise. Must not draw random numbers (exact resume)."""
        return None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def act(self, obs, compiled: bool | None = None) -> np.ndarray:
        """Actions for a batch of *raw* observations ``(B, obs_dim)`` (or one ``(obs_dim,)``), in [-1, 1].

        ``compiled``: run :meth:`act_normalized` compiled whole (the first call compiles); None follows the
        config's ``compile`` (on for CUDA by default). Random draws stay eager ones, so a seed gives the same
        actions either way."""
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)
        single = x.dim() == 1
        if single:
            x = x[None]
        if x.dim() != 2 or x.shape[-1] != self.obs_dim:
            raise ValueError(f"observations have shape {tuple(x.shape)}; wanted (B, {self.obs_dim})")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"observations contain {int((~torch.isfinite(x)).sum())} non-finite value(s)")
        mode = compile_mode(self.cfg, self.device) if compiled is None else ("on" if compiled else "off")
        fn = self.act_normalized if mode == "off" else self._compiled_act(mode)
        a = fn(self.normalizer(x)).clamp(-1.0, 1.0).cpu().numpy()
        return a[0] if single else a

    def _compiled_act(self, mode: str):
        cached = self.__dict__.get("_act_cache")
        if cached is None or cached[0] != (id(self), mode):  # a deep copy must not reuse the original's function
            options = {"fallback_random": True}  # eager random streams: seeded acting equals the eager path
            if mode == "trace":
                fn = torch.compile(self.act_normalized, fullgraph=True, backend="aot_eager")
            else:
                if self.device.type == "cuda":
                    options["triton.cudagraphs"] = True
                fn = torch.compile(self.act_normalized, fullgraph=True, options=options)
            cached = self.__dict__["_act_cache"] = ((id(self), mode), fn)
        return cached[1]

    def full_state_dict(self) -> dict:
        """Modules, optimizers and the observation normalizer."""
        return {"modules": self.state_dict(), "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
                "normalizer": self.normalizer.state_dict()}

    def load_full_state_dict(self, d: dict) -> None:
        self.load_state_dict(d["modules"])
        for k, o in self.optimizers().items():
            o.load_state_dict(d["optimizers"][k])
        self.normalizer = ObsNormalizer.from_state_dict(d["normalizer"])

