"""A graph pass for compiled CPU steps: matrix products laid out for CPU BLAS.

Narrow products. A network's first layer takes few inputs (11 for hopper), so its weight gradient ``G^T X`` is a
``(256, 11)`` product over the batch. CPU BLAS computes an output that narrow several times slower than its transpose
``X^T G`` (``(11, 256)``: 166 µs against 31 µs for batch 256 on one thread), though both are the same sums. The
pass rewrites each ``mm`` whose output has fewer than :data:`NARROW` columns and at least :data:`TALL` rows as
the transposed product, read back through a transposed view (no copy); values agree up to the order of the sums.

Biases added after the product. ``addmm(bias, a, b)`` first copies the broadcast bias into the output and then
accumulates the product onto it: one more pass over a ``(256, 256)`` output that has often left the cache. As
``mm(a, b) + bias`` the addition joins the element-wise kernel that reads the product next (the ReLU).
"""

from __future__ import annotations

import torch
from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files

__all__ = ["BlasLayout", "NARROW", "TALL"]

NARROW = 16
TALL = 64

_aten = torch.ops.aten


class BlasLayout(CustomGraphPass):
    """Inductor post-grad pass: ``mm(a, b)`` with a ``(m, n)`` output, ``n < NARROW`` and ``m >= TALL``, becomes
    ``mm(b^T, a^T)^T``; then ``addmm(bias, a, b)`` becomes ``mm(a, b) + bias``. ``turned`` and ``unfused`` count
    the rewrites of the graphs it has seen."""

    def __init__(self):
        self.turned = self.unfused = 0

    def __call__(self, graph: torch.fx.Graph) -> None:
        for node in list(graph.nodes):
            if node.op != "call_function" or node.target is not _aten.mm.default:
                continue
            val = node.meta.get("val")
            if val is None or val.dim() != 2 or not (val.shape[1] < NARROW and val.shape[0] >= TALL):
                continue
            a, b = node.args
            with graph.inserting_before(node):
                bt = _call(graph, _aten.permute.default, b, [1, 0])
                at = _call(graph, _aten.permute.default, a, [1, 0])
                out = _call(graph, _aten.permute.default, _call(graph, _aten.mm.default, bt, at), [1, 0])
            node.replace_all_uses_with(out)
            graph.erase_node(node)
            self.turned += 1
        for node in list(graph.nodes):
            if node.op != "call_function" or node.target is not _aten.addmm.default or node.kwargs:
                continue  # beta/alpha given: left as it is
            bias, a, b = node.args
            with graph.inserting_before(node):
                out = _call(graph, _aten.add.Tensor, _call(graph, _aten.mm.default, a, b), bias)
            node.replace_all_uses_with(out)
            graph.erase_node(node)
            self.unfused += 1
        graph.lint()

    def uuid(self):
        return get_hash_for_files((__file__,))


def _call(graph: torch.fx.Graph, target, *args) -> torch.fx.Node:
    """A new ``call_function`` node with its ``meta["val"]`` (the fake tensor Inductor's lowering reads)."""
    node = graph.call_function(target, args)
    node.meta["val"] = target(*(a.meta["val"] if isinstance(a, torch.fx.Node) else a for a in args))
    return node
