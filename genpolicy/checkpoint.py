"""Crash-safe, pickle-free checkpoint files and RNG state, for every resumable job (training, SAC agents).

A file is written to ``NAME.tmp``, flushed to disk (fsync) and renamed over ``NAME``, so a job killed at any moment
leaves either the old or the new file, never a torn one. Files hold only tensors and plain data (dicts, lists,
tuples, str, numbers, None) and are read with ``torch.load(..., weights_only=True)``: opening a checkpoint never
runs code, and a file that would need to is refused. RNG capture covers torch, numpy, Python's ``random`` and
optionally one ``torch.Generator`` (e.g. the batch sampler's), stored as tensors and lists.
"""

from __future__ import annotations

import os
import random
import zipfile
from pathlib import Path
from typing import Callable, IO

import numpy as np
import torch

__all__ = ["atomic_write", "atomic_torch_save", "capture_rng", "restore_rng", "load_torch", "UnsafeCheckpointError",
           "check_torch_archive"]


class UnsafeCheckpointError(ValueError):
    """A file that needs Python objects beyond tensors and plain data to load (refused: loading could run code)."""


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a temporary binary file beside ``path``, fsync it, and rename it to ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # e.g. a full disk: leave no half-written file behind
        raise


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save(obj, path)`` through :func:`atomic_write`; a failed write (a full disk: torch reports it as an
    ``enforce fail`` of its zip writer) is an ``OSError`` naming the file, and the previous file stays."""
    try:
        atomic_write(path, lambda f: torch.save(obj, f))
    except (OSError, RuntimeError) as e:
        raise OSError(f"writing {path} failed ({' '.join(str(e).split())[:200]}); is the disk full? The previous "
                      f"{Path(path).name}, if any, is unchanged") from e


def load_torch(path: str | Path) -> dict:
    """Read a file written by :func:`atomic_torch_save` on the CPU with ``weights_only=True``.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file holds other Python objects (a pickle payload, or an old-format file).
    """
    import pickle

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        check_torch_archive(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, OSError, RuntimeError, zipfile.BadZipFile) as e:  # truncated, corrupt, not a checkpoint
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:160]})") from None
    except pickle.UnpicklingError as e:
        what = str(e).split("WeightsUnpickler error:")[-1].strip().splitlines()[0]
        raise UnsafeCheckpointError(f"{path}: refusing to load: it holds Python objects other than tensors and "
                                    f"plain data ({what})") from None


def check_torch_archive(path: str | Path) -> None:
    """A ``.pt`` file is a zip archive whose entries torch stores uncompressed: an entry that is compressed (which
    torch never writes) could expand to any size, so it is refused before ``torch.load`` reads it."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        return  # not an archive: torch.load names the problem
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"{path}: entry {info.filename} is compressed ({info.file_size} bytes from "
                                 f"{info.compress_size}); torch writes checkpoints uncompressed, so this file was not "
                                 f"written by genpolicy")


def capture_rng(gen: torch.Generator | None = None) -> dict:
    """The global torch, numpy and Python RNG states (and ``gen``'s, when given), as tensors and lists."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    s = {"torch": torch.get_rng_state(), "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
         "python": [version, list(internal), gauss]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        s["cuda"] = torch.cuda.get_rng_state_all()  # GPU noise (and compiled steps' random streams)
    if gen is not None:
        s["batches"] = gen.get_state()
    return s


def restore_rng(s: dict, gen: torch.Generator | None = None) -> None:
    """Undo :func:`capture_rng`: set the global states (and ``gen``'s)."""
    torch.set_rng_state(s["torch"])
    name, keys, pos, has_gauss, cached = s["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = s["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    if gen is not None:
        gen.set_state(s["batches"])
