"""Couplings: exact minibatch OT is optimal, never pairs across conditions, and re-orders noise only."""

import itertools

import pytest
import torch

from genpolicy.couplings import IndependentCoupling, OTCoupling, make_coupling


def _cost(a, b):
    return float(((a - b) ** 2).sum())


def test_ot_is_optimal_against_brute_force():
    x0, x1 = torch.randn(6, 2), torch.randn(6, 2)
    best = min(_cost(x0, x1[list(p)]) for p in itertools.permutations(range(6)))
    paired = OTCoupling().couple(x0, x1)
    assert _cost(x0, paired) == pytest.approx(best, rel=1e-6)
    assert _cost(x0, paired) <= _cost(x0, x1) + 1e-9
    # a re-ordering of the same noise rows
    torch.testing.assert_close(paired.sort(0).values, x1.sort(0).values)


def test_pairs_never_cross_conditions():
    cond = torch.tensor([[0.0], [1.0], [0.0], [1.0], [0.0], [1.0], [2.0]])
    x0 = torch.randn(7, 3)
    x1 = torch.randn(7, 3)
    perm = OTCoupling().permutation(x0, x1, cond)
    assert sorted(perm.tolist()) == list(range(7))
    torch.testing.assert_close(cond[perm], cond)  # every data row got noise drawn for its own condition
    # within the group of condition 0 the pairing is optimal
    idx = torch.tensor([0, 2, 4])
    best = min(_cost(x0[idx], x1[idx][list(p)]) for p in itertools.permutations(range(3)))
    assert _cost(x0[idx], x1[perm[idx]]) == pytest.approx(best, rel=1e-6)


def test_finite_condition_weight_trades_off():
    cond = torch.tensor([[0.0], [10.0]])
    x0 = torch.tensor([[5.0], [-5.0]])
    x1 = torch.tensor([[-5.0], [5.0]])
    assert OTCoupling(cond_weight=0.0).permutation(x0, x1, cond).tolist() == [1, 0]
    assert OTCoupling(cond_weight=1.0).permutation(x0, x1, cond).tolist() == [0, 1]


def test_large_batches_are_chunked_and_still_permutations():
    x0, x1 = torch.randn(300, 2), torch.randn(300, 2)
    perm = OTCoupling(max_batch=128).permutation(x0, x1)
    assert sorted(perm.tolist()) == list(range(300))
    assert all(int(p) // 128 == i // 128 for i, p in enumerate(perm))
    assert _cost(x0, x1[perm]) < 0.5 * _cost(x0, x1)


def test_registry_and_errors():
    assert isinstance(make_coupling(None), IndependentCoupling)
    assert isinstance(make_coupling("ot"), OTCoupling)
    with pytest.raises(ValueError, match="unknown coupling"):
        make_coupling("sinkhorn-ish")
    with pytest.raises(ValueError, match="same shape"):
        OTCoupling().couple(torch.randn(3, 2), torch.randn(4, 2))
    with pytest.raises(ValueError, match="cond has batch"):
        OTCoupling().couple(torch.randn(3, 2), torch.randn(3, 2), torch.randn(4, 1))
