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

__all__ = ["optimizer_step", "minimize", "functional_grads", "functional_adam_", "ensure_adam_state", "grad_norm",
           "clip_grads_"]

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
    if apply is not None:
        kept = [*params, *steps, *m, *v]
        before = [t.clone() for t in kept]
    torch._foreach_add_(steps, 1.0)
    torch._foreach_lerp_(m, grads, 1 - b1)
    torch._foreach_mul_(v, b2)
    torch._foreach_addcmul_(v, grads, grads, 1 - b2)
    bias1 = [1 - torch.pow(b1, s) for s in steps]
    bias2_sqrt = [torch.sqrt(1 - torch.pow(b2, s)) for s in steps]
    denom = torch._foreach_div(torch._foreach_sqrt(v), bias2_sqrt)
    torch._foreach_add_(denom, eps)
    update = torch._foreach_div(m, denom)
    torch._foreach_mul_(update, [lr / b for b in bias1])
    torch._foreach_sub_(params, update)
    if apply is not None:
        for t, old in zip(kept, before):
            t.copy_(torch.where(apply, t, old))


def grad_norm(grads: list[Tensor]) -> Tensor:
    """The total 2-norm of ``grads`` (as ``torch.nn.utils.get_total_norm``), traceable."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def clip_grads_(grads: list[Tensor], max_norm: float) -> Tensor:
    """Scale ``grads`` in place to total norm at most ``max_norm`` (as ``clip_grad_norm_``); returns the norm before."""
    norm = grad_norm(grads)
    torch._foreach_mul_(grads, torch.clamp(max_norm / (norm + 1e-6), max=1.0))
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
