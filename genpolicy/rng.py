"""Random draws, one function for the whole library: from a given generator, from the global RNG, or, inside a
seed-stacked step (:mod:`genpolicy.rl.stacking`), from each seed's own stream.

A step written once is run for one seed (its draws come from the global RNG, as always) or for N seeds at once
under ``torch.func.vmap``. There a draw of a per-seed ``size`` is made N times, seed k's from ``gens[k]`` (a copy
of seed k's single run's global RNG state), stacked, and handed to the vmapped code as one batched tensor: so seed
k draws the numbers its single run draws, in the same order, from the same code.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import Tensor

__all__ = ["draw", "randn_like", "per_seed_draws", "stacked", "unbatched"]

_active: list = []  # (generators, vmap level) of the innermost per_seed_draws block


def draw(fn: Callable, size, generator: torch.Generator | None = None, **kw) -> Tensor:
    """``fn(size, generator=..., **kw)`` for ``fn`` ``torch.rand`` or ``torch.randn``: from ``generator``; without
    one, from the global RNG, or per seed inside :func:`per_seed_draws`. ``generator=None`` is not passed on: its
    overload takes no symbolic sizes (a compiled step with a dynamic batch failed on it)."""
    if generator is not None:
        return fn(size, generator=generator, **kw)
    if _active:
        gens, level = _active[-1]
        from torch._C._functorch import _add_batch_dim  # the one way to hand vmapped code a per-seed tensor

        with torch._C._DisableFuncTorch():
            stacked = torch.stack([fn(size, generator=g, **kw) for g in gens])
        return _add_batch_dim(stacked, 0, level)
    return fn(size, **kw)


def randn_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``torch.randn_like(x)`` through :func:`draw` (the same numbers from the global RNG)."""
    return draw(torch.randn, x.shape, generator, device=x.device, dtype=x.dtype)


@contextlib.contextmanager
def per_seed_draws(gens: list[torch.Generator]):
    """Inside a function vmapped over N seeds (entered at its top, before any other transform): every :func:`draw`
    without a generator draws seed k's values from ``gens[k]``."""
    from torch._C._functorch import current_level

    _active.append((list(gens), current_level()))
    try:
        yield
    finally:
        _active.pop()


def stacked() -> bool:
    """Whether the code runs inside a seed-stacked step (:func:`per_seed_draws`): there ``torch._foreach_*`` ops,
    which have no vmap rule, take another form (:func:`genpolicy.optim.foreach`)."""
    return bool(_active)


def unbatched(t: Tensor) -> Tensor:
    """Inside a seed-stacked step: the ``(N, ...)`` tensor behind seed-batched ``t`` (seed dimension first; a view,
    so in-place ops on it write through). Element-wise ops on it are the N single runs' ops bit for bit, which is how
    the optimizer and target-network updates of a stacked step match the single runs' fused kernels exactly."""
    from torch._C import _functorch

    _, level = _active[-1]
    if not _functorch.is_batchedtensor(t) or _functorch.maybe_get_level(t) != level:
        raise ValueError("unbatched: not a tensor batched over the seeds of this stacked step")
    inner = _functorch.get_unwrapped(t)
    bdim = _functorch.maybe_get_bdim(t)
    return inner if bdim == 0 else inner.movedim(bdim, 0)
