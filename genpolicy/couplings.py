"""Couplings between data ``x0`` and noise ``x1`` for (conditional) flow matching.

``IndependentCoupling`` keeps the independent pairing (I-CFM). ``OTCoupling`` re-pairs a minibatch by exact
optimal transport (OT-CFM, Tong et al. 2024) with ``scipy.optimize.linear_sum_assignment``. For a
conditional model the condition is part of the cost: by default pairs are only formed between data and
noise that carry the *same* condition, so a state's noise stays N(0, I) and pairs never cross states; a
finite ``cond_weight`` instead adds ``cond_weight * ||c_i - c_j||^2`` to the cost.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import Tensor

__all__ = ["Coupling", "IndependentCoupling", "OTCoupling", "make_coupling"]


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


class Coupling(ABC):
    """Pairs data with noise: ``couple(x0, x1, cond) -> x1`` re-ordered to match ``x0`` row by row."""

    @abstractmethod
    def couple(self, x0: Tensor, x1: Tensor, cond: Tensor | None = None) -> Tensor:
        """Return the noise re-ordered so that ``(x0[i], returned[i])`` are the coupled pairs."""


class IndependentCoupling(Coupling):
    """The independent coupling: noise is left as drawn."""

    def couple(self, x0, x1, cond=None):
        return x1

    def __repr__(self):
        return "IndependentCoupling()"


class OTCoupling(Coupling):
    """Exact minibatch optimal transport with squared Euclidean cost (OT-CFM).

    Args:
        cond_weight: ``inf`` (default) solves a separate assignment within each group of identical
            conditions; a finite value adds ``cond_weight * ||c_i - c_j||^2`` to the cost of pairing
            data i with the noise drawn for row j.
        max_batch: the exact assignment costs O(n^3) (about 10 ms at n=128 and 160 ms at n=512 on 2-D
            Swiss-roll data on one CPU core), so
            larger batches are split into consecutive chunks of at most ``max_batch`` rows, each solved
            exactly (minibatch OT on smaller minibatches). ``None`` never splits.
    """

    def __init__(self, cond_weight: float = math.inf, max_batch: int | None = 128):
        if cond_weight < 0:
            raise ValueError(f"cond_weight must be >= 0, got {cond_weight}")
        if max_batch is not None and max_batch < 2:
            raise ValueError(f"max_batch must be >= 2 or None, got {max_batch}")
        self.cond_weight = float(cond_weight)
        self.max_batch = max_batch

    @staticmethod
    def _assign(cost: Tensor) -> np.ndarray:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(cost.detach().cpu().double().numpy())
        perm = np.empty_like(cols)
        perm[rows] = cols
        return perm

    def permutation(self, x0: Tensor, x1: Tensor, cond: Tensor | None = None) -> Tensor:
        """Index ``p`` such that ``(x0[i], x1[p[i]])`` is an optimal pairing (within chunks of ``max_batch``)."""
        if x0.shape != x1.shape:
            raise ValueError(f"OTCoupling: x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
        n = x0.shape[0]
        if cond is not None and _flat(cond).shape[0] != n:
            raise ValueError(f"OTCoupling: cond has batch {_flat(cond).shape[0]} but x0 has batch {n}")
        if self.max_batch is None or n <= self.max_batch:
            return self._permutation(x0, x1, cond)
        parts = []
        for s in range(0, n, self.max_batch):
            sl = slice(s, min(n, s + self.max_batch))
            parts.append(s + self._permutation(x0[sl], x1[sl], None if cond is None else cond[sl]))
        return torch.cat(parts)

    def _permutation(self, x0: Tensor, x1: Tensor, cond: Tensor | None) -> Tensor:
        a, b = _flat(x0), _flat(x1)
        n = a.shape[0]
        if cond is None:
            return torch.as_tensor(self._assign(torch.cdist(a, b) ** 2), device=x0.device)
        c = _flat(cond).to(a.dtype)
        if math.isfinite(self.cond_weight):
            cost = torch.cdist(a, b) ** 2 + self.cond_weight * torch.cdist(c, c) ** 2
            return torch.as_tensor(self._assign(cost), device=x0.device)
        _, group = torch.unique(c, dim=0, return_inverse=True)
        perm = torch.arange(n, device=x0.device)
        for g in torch.unique(group).tolist():
            idx = torch.nonzero(group == g).squeeze(1)
            if idx.numel() > 1:
                local = self._assign(torch.cdist(a[idx], b[idx]) ** 2)
                perm[idx] = idx[torch.as_tensor(local, device=x0.device)]
        return perm

    def couple(self, x0, x1, cond=None):
        return x1[self.permutation(x0, x1, cond)]

    def __repr__(self):
        return f"OTCoupling(cond_weight={self.cond_weight})"


def make_coupling(name: str | Coupling | None) -> Coupling:
    """``"independent"`` (or None) or ``"ot"``; a Coupling instance is returned as is."""
    if isinstance(name, Coupling):
        return name
    if name is None or name == "independent":
        return IndependentCoupling()
    if name in ("ot", "exact_ot"):
        return OTCoupling()
    raise ValueError(f"unknown coupling {name!r}; expected 'independent' or 'ot'")
