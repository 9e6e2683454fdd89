"""What a file says about itself is checked before it is believed: a checkpoint's or policy file's sizes against
the tensors it holds (the model is built on the meta device first, so a header claiming a huge network allocates
nothing), its tensors finite and of the expected dtype, its normalizer usable. (A ``.pt`` archive's entries are
checked by :func:`genpolicy.checkpoint.load_torch`.) Every message names the file and what is wrong with it."""

from __future__ import annotations

import torch

from .rl.algos.registry import build_algorithm

__all__ = ["MAX_DIM", "check_state", "check_normalizer", "check_dims"]

#: the largest observation or action size a file may declare
MAX_DIM = 100_000


def check_dims(dims, source) -> tuple[int, int]:
    """``(obs_dim, act_dim)`` from a file's header: two integers in [1, MAX_DIM]."""
    try:
        obs_dim, act_dim = dims
    except (TypeError, ValueError):
        raise ValueError(f"{source}: dims {dims!r} are not (obs_dim, act_dim)") from None
    for name, v in (("obs_dim", obs_dim), ("act_dim", act_dim)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_DIM:
            raise ValueError(f"{source}: {name}={v!r} in its header; expected an integer in [1, {MAX_DIM}]")
    return obs_dim, act_dim


def check_state(algo_name: str, dims: tuple[int, int], cfg, modules: dict, source) -> None:
    """The file's module tensors are exactly what its header's algorithm and config build (names, shapes,
    dtypes; checked against a copy built on the meta device, which allocates nothing) and finite. A buffer the
    algorithm builds empty and fills from the data (a per-row table) may have any length: it is the file's own."""
    with torch.device("meta"):
        shadow = build_algorithm(algo_name, *dims, cfg)
    want = shadow.state_dict()
    params = {k for k, _ in shadow.named_parameters()}
    missing, extra = sorted(set(want) - set(modules)), sorted(set(modules) - set(want))
    if missing or extra:
        raise ValueError(f"{source}: its tensors do not match its header's {algo_name} (missing {missing[:3]}, "
                         f"unexpected {extra[:3]})")
    for k, w in want.items():
        t = modules[k]
        sized_by_data = k not in params and w.numel() == 0  # a per-row table filled from the data (SfBC's returns)
        if not isinstance(t, torch.Tensor) or t.dtype != w.dtype or (
                tuple(t.shape) != tuple(w.shape) and not (sized_by_data and t.dim() == w.dim())):
            got = (tuple(t.shape), t.dtype) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{source}: tensor {k} is {got}; its header's {algo_name} needs "
                             f"{(tuple(w.shape), w.dtype)}")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{source}: tensor {k} holds {int((~torch.isfinite(t)).sum())} non-finite value(s)")


def check_normalizer(norm: dict, obs_dim: int, source) -> None:
    """The observation normalizer: float32 ``mean`` and ``std`` of shape ``(obs_dim,)``, finite, ``std > 0``."""
    for key in ("mean", "std"):
        t = norm.get(key)
        if not isinstance(t, torch.Tensor) or t.dtype != torch.float32 or tuple(t.shape) != (obs_dim,):
            got = (tuple(t.shape), t.dtype) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{source}: normalizer {key} is {got}; expected float32 of shape ({obs_dim},)")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{source}: normalizer {key} holds non-finite values")
    if not bool((norm["std"] > 0).all()):
        raise ValueError(f"{source}: normalizer std has {int((norm['std'] <= 0).sum())} entries <= 0 "
                         f"(observations would divide by zero)")
