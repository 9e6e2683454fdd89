"""Crash-safe writes and RNG capture (genpolicy.checkpoint), shared by training and the SAC pipeline."""

import random

import numpy as np
import pytest
import torch

from genpolicy.checkpoint import atomic_torch_save, atomic_write, capture_rng, load_torch, restore_rng


def test_a_write_that_fails_leaves_the_old_file(tmp_path):
    f = tmp_path / "state.pt"
    atomic_torch_save({"step": 1}, f)

    def broken(fh):
        fh.write(b"partial")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(f, broken)
    assert load_torch(f) == {"step": 1}
    assert not (tmp_path / "state.pt.tmp").exists()
    atomic_write(tmp_path / "a.npz", lambda fh: np.savez(fh, x=np.arange(3)))  # numpy keeps the name as given
    assert np.load(tmp_path / "a.npz")["x"].tolist() == [0, 1, 2]
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_torch(tmp_path / "missing.pt")


def test_rng_capture_and_restore_replays_every_stream():
    gen = torch.Generator().manual_seed(3)
    s = capture_rng(gen)
    first = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    restore_rng(s, gen)
    again = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]
    assert torch.equal(first[3], again[3])
