"""Crash-safe files and RNG state, for every resumable job (the training loop, the SAC behaviour agents).

A file is written to ``NAME.tmp``, flushed to disk (fsync) and renamed over ``NAME``, so a job killed at any moment
leaves either the old or the new file, never a torn one. RNG capture covers torch, numpy, Python's ``random`` and
optionally one ``torch.Generator`` (e.g. the batch sampler's).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Callable, IO

import numpy as np
import torch

__all__ = ["atomic_write", "atomic_torch_save", "capture_rng", "restore_rng", "load_torch"]


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a temporary binary file beside ``path``, fsync it, and rename it to ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save(obj, path)`` through :func:`atomic_write`."""
    atomic_write(path, lambda f: torch.save(obj, f))


def load_torch(path: str | Path) -> dict:
    """Read a file written by :func:`atomic_torch_save` (on the CPU), with a clear error when it is missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location="cpu", weights_only=False)


def capture_rng(gen: torch.Generator | None = None) -> dict:
    """The global torch, numpy and Python RNG states (and ``gen``'s, when given)."""
    s = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if gen is not None:
        s["batches"] = gen.get_state()
    return s


def restore_rng(s: dict, gen: torch.Generator | None = None) -> None:
    """Undo :func:`capture_rng`: set the global states (and ``gen``'s)."""
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])
    if gen is not None:
        gen.set_state(s["batches"])
