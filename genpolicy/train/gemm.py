"""A graph pass for compiled CPU steps: narrow matrix products computed in their fast orientation.

A network's first layer takes few inputs (11 for hopper, 17 + 6 for a walker2d critic), so its weight gradient
``G^T X`` is a ``(256, 11)`` product over the batch. CPU BLAS (MKL here) computes an output that narrow several
times slower than its transpose ``X^T G``, though both are the same sums: for batch 256 on one thread 115 µs against
27 µs at width 11, 89 against 42 at width 23, 122 against 114 at width 64; the transpose was never the slower one
for widths 3-128, batches 256 and 1024, 256 or 512 rows. The pass rewrites each ``mm`` whose output has fewer
than :data:`NARROW` columns and at least :data:`TALL` rows as the transposed product, read back through a
transposed view (no copy); the values agree up to the order of the sums.
"""

from __future__ import annotations

import torch
from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files

__all__ = ["NarrowProducts", "NARROW", "TALL"]

NARROW = 64
TALL = 64

_aten = torch.ops.aten


class NarrowProducts(CustomGraphPass):
    """Inductor post-grad pass: ``mm(a, b)`` with a ``(m, n)`` output, ``n < NARROW`` and ``m >= TALL``, becomes
    ``mm(b^T, a^T)^T``. ``turned`` counts the rewrites in the graphs it has seen."""

    def __init__(self):
        self.turned = 0

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
        graph.lint()

    def uuid(self):
        return get_hash_for_files((__file__,))


def _call(graph: torch.fx.Graph, target, *args) -> torch.fx.Node:
    """A new ``call_function`` node with its ``meta["val"]`` (the fake tensor Inductor's lowering reads)."""
    node = graph.call_function(target, args)
    node.meta["val"] = target(*(a.meta["val"] if isinstance(a, torch.fx.Node) else a for a in args))
    return node
