"""Optimizer steps, written twice on purpose: the eager reference (``loss.backward()`` and ``torch.optim.Adam``)
and a functional form (``torch.func`` gradients, Adam's update applied in place to the same optimizer's state
tensors) that ``torch.compile(fullgraph=True)`` captures whole: forward, backward and update in one graph, no
host synchronisation. Both read and write the same ``torch.optim.Adam`` state, so checkpoints, resume and a switch
between the two paths need nothing else. Tests hold the functional form to the eager one.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.func import grad_and_value
from torch.nn.utils.stateless import _reparametrize_module

from .rng import stacked, unbatched

__all__ = ["optimizer_step", "minimize", "functional_grads", "functional_adam_", "ensure_adam_state", "grad_norm",
           "clip_grads_", "foreach"]

LossFn = Callable[..., tuple[Tensor, dict]]


def optimizer_step(opt: torch.optim.Optimizer, loss: Tensor, model: nn.Module | None = None,
                   clip: float = 0.0) -> Tensor | None:
    """Zero the gradients, backpropagate ``loss``, clip the gradient norm of the parameters ``opt`` updates to
    ``clip`` (when > 0; ``model``'s other parameters, say a critic the loss runs through, do not count) and step.
    Returns the gradient norm before clipping (None without clipping)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    owned = [p for g in opt.param_groups for p in g["params"]]
    gnorm = torch.nn.utils.clip_grad_norm_(owned, clip) if clip > 0 else None
    opt.step()
    return gnorm


#: foreach ops that act element by element with plain-number (not per-seed) scalars: in a stacked step they run on
#: the stacked tensors behind the seed-batched ones, the single runs' kernel bit for bit
_ELEMENTWISE_INPLACE = {"lerp_", "add_", "sub_"}
#: what a stacked step takes one tensor at a time (a per-seed norm, a per-seed scale): ops with a vmap rule
_ONE = {"norm": torch.linalg.vector_norm, "mul_": lambda t, x: t.mul_(x)}


def foreach(name: str, *args):
    """``torch._foreach_<name>(*args)``; inside a seed-stacked step (``torch.func.vmap``, which has no rule for the
    foreach ops) in-place element-wise ops with plain-number scalars run on the stacked tensors behind the
    seed-batched ones (the same kernel as a single run's), a per-seed norm or scale one tensor at a time."""
    if not stacked():
        return getattr(torch, f"_foreach_{name}")(*args)
    if name in _ELEMENTWISE_INPLACE and all(isinstance(a, (list, tuple, int, float)) for a in args):
        getattr(torch, f"_foreach_{name}")(*([unbatched(t) for t in a] if isinstance(a, (list, tuple)) else a
                                              for a in args))
        return None
    if name not in _ONE:
        raise NotImplementedError(f"foreach {name!r} with these arguments has no seed-stacked form")
    out = [_ONE[name](*(a[i] if isinstance(a, (list, tuple)) else a for a in args)) for i in range(len(args[0]))]
    return None if name.endswith("_") else out


def ensure_adam_state(opt: torch.optim.Optimizer) -> None:
    """Create Adam's per-parameter state as ``torch.optim.Adam(fused=True)`` would at its first step (done eagerly,
    before a compiled step reads it)."""
    for group in opt.param_groups:
        for p in group["params"]:
            if not opt.state[p]:
                opt.state[p] = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}


def functional_adam_(opt: torch.optim.Optimizer, params: list[Tensor], grads: list[Tensor],
                     apply: Tensor | None = None) -> None:
    """Adam (Kingma & Ba; torch's defaults: no AMSGrad, no weight decay) applied in place to ``params`` and to
    ``opt``'s state tensors, with foreach ops only (traceable; the step counts stay tensors, so no recompiles).
    ``apply``: a 0-dim bool tensor; where it is False, parameters and state keep their values (a step skipped on
    the device, without a host sync)."""
    if len(opt.param_groups) != 1:
        raise ValueError(f"functional_adam_ takes an optimizer with one parameter group, got {len(opt.param_groups)}")
    group = opt.param_groups[0]
    (b1, b2), lr, eps = group["betas"], group["lr"], group["eps"]
    if group.get("weight_decay", 0) or group.get("amsgrad", False) or group.get("maximize", False):
        raise ValueError("functional_adam_ implements plain Adam only (no weight decay, AMSGrad or maximize)")
    state = [opt.state[p] for p in params]
    steps = [s["step"] for s in state]
    m, v = [s["exp_avg"] for s in state], [s["exp_avg_sq"] for s in state]
    if stacked() and apply is None:  # N seeds: torch's fused Adam on the stacked tensors, the single runs' kernel
        _fused_adam_stacked(params, grads, m, v, steps, lr, b1, b2, eps)
        return
    if apply is not None:
        kept = [*params, *steps, *m, *v]
        before = [t.clone() for t in kept]
    foreach("add_", steps, 1.0)
    foreach("lerp_", m, grads, 1 - b1)
    foreach("mul_", v, b2)
    foreach("addcmul_", v, grads, grads, 1 - b2)
    # one optimizer's step counts move together, so its bias corrections are one pair of scalars. Taken through a
    # reduction (a max over equal values), the powers are computed once into a buffer: inlined, a compiled step
    # re-evaluated both in every vector of every parameter's loop (the loop cannot hoist them past its stores)
    counts = torch.stack(steps)
    bias1 = 1 - torch.pow(b1, counts).amax()
    bias2_sqrt = torch.sqrt(1 - torch.pow(b2, counts).amax())
    denom = foreach("div", foreach("sqrt", v), bias2_sqrt)
    foreach("add_", denom, eps)
    update = foreach("div", m, denom)
    foreach("mul_", update, lr / bias1)
    foreach("sub_", params, update)
    if apply is not None:
        for t, old in zip(kept, before):
            t.copy_(torch.where(apply, t, old))


def _fused_adam_stacked(params, grads, m, v, steps, lr, b1, b2, eps) -> None:
    """``torch.optim.Adam(fused=True)``'s step on the ``(N, ...)`` tensors behind seed-batched ones: element-wise, so
    seed k's values are its single run's bit for bit (the step counts are equal across seeds)."""
    ps, gs, ms, vs, ss = ([unbatched(t) for t in ts] for ts in (params, grads, m, v, steps))
    torch._foreach_add_(ss, 1)
    with torch.no_grad():
        torch._fused_adam_(ps, [g.contiguous() for g in gs], ms, vs, [], [s[0] for s in ss], lr=lr, beta1=b1,
                           beta2=b2, weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)


def grad_norm(grads: list[Tensor]) -> Tensor:
    """The total 2-norm of ``grads`` (as ``torch.nn.utils.get_total_norm``), traceable."""
    return torch.linalg.vector_norm(torch.stack(foreach("norm", grads)))


def clip_grads_(grads: list[Tensor], max_norm: float) -> Tensor:
    """Scale ``grads`` in place to total norm at most ``max_norm`` (as ``clip_grad_norm_``); returns the norm before."""
    norm = grad_norm(grads)
    foreach("mul_", grads, torch.clamp(max_norm / (norm + 1e-6), max=1.0))
    return norm


def minimize(opt: torch.optim.Optimizer, model: nn.Module, loss_fn: LossFn, *args, functional: bool = False,
             clip: float = 0.0) -> tuple[Tensor, dict, Tensor | None]:
    """One optimizer step on ``loss_fn(model, *args) -> (loss, aux)`` over the parameters ``opt`` holds.

    Args:
        functional: False: the eager reference (``backward`` + ``opt.step()``). True: gradients by ``torch.func``
            and :func:`functional_adam_`, so that a caller wrapped in ``torch.compile(fullgraph=True)`` is one graph.
        clip: clip the gradient norm to this (0: off).

    Returns:
        The loss (detached), ``aux`` (detached) and the gradient norm before clipping (None without clipping).
    """
    if not functional:
        loss, aux = loss_fn(model, *args)
        gnorm = optimizer_step(opt, loss, model, clip)
        return loss.detach(), {k: v.detach() for k, v in aux.items()}, gnorm
    params, g, loss, aux = functional_grads(opt, model, loss_fn, *args)
    with torch.no_grad():
        gnorm = clip_grads_(g, clip) if clip > 0 else None
        functional_adam_(opt, params, g)
    return loss, aux, gnorm


def functional_grads(opt: torch.optim.Optimizer, model: nn.Module, loss_fn: LossFn,
                     *args) -> tuple[list[Tensor], list[Tensor], Tensor, dict]:
    """The gradients of ``loss_fn(model, *args) -> (loss, aux)`` with respect to the parameters ``opt`` holds, by
    ``torch.func`` (traceable whole): ``(params, grads, loss, aux)``, loss and aux detached."""
    owned = {id(p) for g in opt.param_groups for p in g["params"]}
    named = {k: p for k, p in model.named_parameters() if id(p) in owned}

    def with_params(params: dict):
        # functional_call's mechanism, usable with any method of the module (not only forward)
        with _reparametrize_module(model, params, strict=False):
            return loss_fn(model, *args)

    grads, (loss, aux) = grad_and_value(with_params, has_aux=True)({k: p.detach() for k, p in named.items()})
    return list(named.values()), [grads[k] for k in named], loss.detach(), {k: v.detach() for k, v in aux.items()}
