"""Behaviour pinned bit for bit: a fixed tiny run of every algorithm ends with the same checkpoint as the code that
wrote these hashes (the weights, every optimizer's state and the normalizer, hashed tensor by tensor).

A refactor that changes no arithmetic keeps every hash. A change that means to alter a step's numerics updates the
hash here in the same commit and says why: ``GENPOLICY_PRINT_GOLDEN=1 pytest tests/test_golden.py -s`` prints the
new table. The hashes hold on one machine kind and torch build (rounding of GEMMs differs across CPUs); the run is
one-threaded so xdist and plain runs agree.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import torch

from genpolicy.rl.algos import ALGORITHMS
from genpolicy.rl.datasets import TransitionDataset
from genpolicy.train import prepare_run, train

from .tiny import tiny_config

#: sha256 (first 16 hex digits) of the checkpoint state after the tiny run, per algorithm
GOLDEN = {
    "bc": "a94f584e271137ed",
    "dql": "bd8a27373c282b75",
    "fql": "fd7af9fd6dc6b995",
    "gmpg": "b332e035a2f3dfc8",
    "gmpo": "85f1ea7251a1343f",
    "idql": "ebe9a6c25ddcbaed",
    "iql": "116b52cbbc0b0509",
    "qgpo": "d20fe01ad98d3103",
    "sfbc": "741af67ced6de001",
    "srpo": "99b9875376da2478",
    "td3bc": "cfd92e75f7f109b7",
}


def _dataset(n: int = 300) -> TransitionDataset:
    rng = np.random.default_rng(7)
    obs = rng.normal(size=(n, 11)).astype(np.float32)
    return TransitionDataset(obs, rng.uniform(-1, 1, (n, 3)).astype(np.float32), rng.normal(size=n).astype(np.float32),
                             rng.normal(size=(n, 11)).astype(np.float32), np.zeros(n, bool), np.arange(n) % 50 == 49)


def state_hash(state) -> str:
    """sha256 of every tensor (and plain value) in a nested state dict, keys in sorted order."""
    h = hashlib.sha256()

    def walk(prefix: str, v) -> None:
        if isinstance(v, dict):
            for k in sorted(v, key=str):
                walk(f"{prefix}/{k}", v[k])
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(f"{prefix}/{i}", x)
        elif isinstance(v, torch.Tensor):
            t = v.detach().cpu().contiguous()
            h.update(f"{prefix}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(f"{prefix}={v!r}".encode())

    walk("", state)
    return h.hexdigest()[:16]


def golden_run(name: str, tmp_path) -> str:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = tiny_config(name, seed=3)
        algo, data = prepare_run(name, cfg, _dataset())
        train(algo, data, tmp_path / name, progress=False)
        return state_hash(algo.full_state_dict())
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_a_tiny_run_ends_with_the_pinned_checkpoint(name, tmp_path):
    got = golden_run(name, tmp_path)
    if os.environ.get("GENPOLICY_PRINT_GOLDEN"):
        print(f'\n    "{name}": "{got}",')
    assert got == GOLDEN[name], f"{name}: checkpoint hash {got}, pinned {GOLDEN[name]}"


def test_every_registered_algorithm_is_pinned():
    builtin = {n for n, c in ALGORITHMS.items() if c.__module__.startswith("genpolicy.")}
    assert builtin == set(GOLDEN)
