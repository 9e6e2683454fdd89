"""Seed stacking: N runs of one algorithm that differ only in their seed, trained as one model. Generic: it imports
no algorithm and knows no loss.

Runs that differ only in their seed differ in their initial weights, their minibatches and their random draws. So
a stage's step, written once as its compilable functional form (:attr:`~genpolicy.rl.algos.base.Stage.functional`:
:func:`genpolicy.optim.minimize` with ``functional=True``), runs for all N under ``torch.func.vmap``: every
parameter, buffer and Adam state tensor of the N runs is stacked along a leading seed dimension and swapped into one
template run for the step (modules and optimizers alike), seed k's minibatch is row k of the batch, and seed k's
random draws come from its own stream (:func:`genpolicy.rng.per_seed_draws`: a copy of its single run's global RNG
state). Each seed then follows its single run step for step; what differs is the rounding of batched matmuls
(tests/test_seeds.py). :meth:`StackedStage.unstack` writes weights and Adam state back into the N runs, which save,
load and resume as ordinary ones.
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch
from torch import Tensor, nn
from torch.nn.utils.stateless import _reparametrize_module

from ..rng import per_seed_draws
from .data import Batch

__all__ = ["StackedStage", "differ_beyond_seed", "stack_batches"]


def differ_beyond_seed(cfgs: list) -> bool:
    """Whether run configs differ in anything but their seed (runs that do cannot be trained as one model)."""
    same = dataclasses.replace(cfgs[0], seed=0)
    return any(dataclasses.replace(c, seed=0) != same for c in cfgs)


def stack_batches(parts: list[Batch]) -> Batch:
    """Per-seed minibatches (each drawn with its seed's own generator, as its single run's loop draws it) stacked
    along a new leading seed dimension."""
    return Batch(*(None if getattr(parts[0], f.name) is None else torch.stack([getattr(b, f.name) for b in parts])
                   for f in dataclasses.fields(Batch)))


class StackedStage:
    """Stage ``index`` of N runs (``algos``: one algorithm class, settings equal but the seed) as one vmapped step.

    ``update(batch, gens)``: ``batch`` with a leading seed dimension ``(N, B, ...)``; ``gens[k]`` stands in for seed
    k's global RNG. Returns the metrics as ``(N,)`` tensors (seed k's value at k)."""

    def __init__(self, algos: list[nn.Module], index: int):
        if not algos:
            raise ValueError("StackedStage needs at least one run")
        self.algos, self.n = list(algos), len(algos)
        self.template = algos[0]
        self.stage = self.template.stages()[index]
        if self.stage.functional is None or not self.stage.stackable:
            raise ValueError(f"the {self.stage.name} stage has no stackable functional form")
        self.names = [k for k, _ in self.template.named_parameters()] + [k for k, _ in self.template.named_buffers()]
        tensors = [dict(a.named_parameters()) | dict(a.named_buffers()) for a in algos]
        shapes = [{k: tuple(v.shape) for k, v in t.items()} for t in tensors]
        if any(s != shapes[0] for s in shapes):
            raise ValueError("StackedStage: the runs' models differ in shape")
        self.state = {k: _stack([t[k] for t in tensors]) for k in self.names}
        # Adam state by (optimizer, position of the parameter in its one group), stacked over runs
        self.opts = [a.optimizers() for a in algos]
        self.opt_names = sorted(self.opts[0])
        ids = {id(p): k for k, p in self.template.named_parameters()}
        self.opt_params = {o: [ids[id(p)] for p in self.opts[0][o].param_groups[0]["params"]] for o in self.opt_names}
        self.had_state = {o: [bool(self.opts[0][o].state.get(p)) for p in self.opts[0][o].param_groups[0]["params"]]
                          for o in self.opt_names}
        self.adam = {}
        for o in self.opt_names:
            groups = [opts[o].param_groups for opts in self.opts]
            if any(len(g) != 1 for g in groups):
                raise ValueError(f"StackedStage: optimizer {o} has more than one parameter group")
            for j, name in enumerate(self.opt_params[o]):
                per_run = [_adam_state(opts[o], opts[o].param_groups[0]["params"][j]) for opts in self.opts]
                self.adam[(o, j)] = {key: _stack([st[key] for st in per_run]) for key in per_run[0]}

    def to(self, device) -> "StackedStage":
        self.state = {k: v.to(device) for k, v in self.state.items()}
        self.adam = {k: {kk: vv.to(device) for kk, vv in v.items()} for k, v in self.adam.items()}
        return self

    def update(self, batch: Batch, gens: list[torch.Generator]) -> dict[str, Tensor]:
        if len(gens) != self.n:
            raise ValueError(f"update needs {self.n} generators, got {len(gens)}")
        fields = [f.name for f in dataclasses.fields(Batch)]
        present = [f for f in fields if getattr(batch, f) is not None]

        def one(state: dict, adam: dict, *cols):
            with per_seed_draws(gens), self._swapped(state, adam):
                b = Batch(**{f: None for f in fields} | dict(zip(present, cols)))
                return self.stage.functional(b)

        return torch.func.vmap(one, randomness="error")(self.state, self.adam, *(getattr(batch, f) for f in present))

    @contextlib.contextmanager
    def _swapped(self, state: dict, adam: dict):
        """The template run's modules and optimizers hold seed-batched tensors for the step."""
        saved = []
        for o in self.opt_names:
            opt = self.opts[0][o]
            group = opt.param_groups[0]
            saved.append((opt, group["params"], opt.state))
            group["params"] = [state[name] for name in self.opt_params[o]]
            opt.state = {p: adam[(o, j)] for j, p in enumerate(group["params"])}
        try:
            with _reparametrize_module(self.template, state, strict=False):
                yield
        finally:
            for opt, params, st in saved:
                opt.param_groups[0]["params"] = params
                opt.state = st

    @torch.no_grad()
    def unstack(self) -> None:
        """Write every seed's parameters, buffers and Adam state back into its run."""
        for k, a in enumerate(self.algos):
            own = dict(a.named_parameters()) | dict(a.named_buffers())
            for name in self.names:
                own[name].copy_(self.state[name][k])
            for o in self.opt_names:
                opt = self.opts[k][o]
                for j, p in enumerate(opt.param_groups[0]["params"]):
                    st = self.adam[(o, j)]
                    if self.had_state[o][j] or float(st["step"][k]) > 0:
                        opt.state[p] = {key: v[k].clone() for key, v in st.items()}


def _adam_state(opt: torch.optim.Optimizer, p: Tensor) -> dict:
    """``p``'s Adam state, or the zeros a first step starts from (as :func:`genpolicy.optim.ensure_adam_state`)."""
    st = opt.state.get(p)
    if st:
        return st
    return {"step": torch.zeros((), dtype=torch.float32, device=p.device), "exp_avg": torch.zeros_like(p),
            "exp_avg_sq": torch.zeros_like(p)}


def _stack(tensors: list[Tensor]) -> Tensor:
    return torch.stack([t.detach() for t in tensors]).contiguous()
