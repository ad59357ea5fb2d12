"""`torch.split(x, sizes)` when the source does not show whether `sizes` is one chunk size or a list
(rules/shape.yaml, torch.split).

The generic handler (split_sizes.py) writes the split indices out when it can read the argument's kind
(a list display, an int) and flags the rest: `x.split([self.qkv_dim] * 3, dim=-1)`,
`torch.linspace(...).split(config.depths)`. Both kinds are exact at run time through the local helper
`split_by_sizes(x, sizes, axis)`, torch's rule written out: an int is the size of every chunk (the last
may be smaller), a sequence the size of each chunk; the tensor and the sizes are evaluated once.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Bound, bind
from torch2mlx.handlers import register
from torch2mlx.handlers.creation_literals import literal_kind
from torch2mlx.handlers.local_helpers import expand_with_helpers
from torch2mlx.handlers.split_sizes import _pure, split_sizes
from torch2mlx.template import expand, int_literal_value, is_simple, normalize

HELPERS = {
    "split_by_sizes": '''
def split_by_sizes(x, sizes, axis=0):
    """PyTorch's split: an int is the size of every chunk (the last may be smaller); a sequence gives each chunk's size."""
    if isinstance(sizes, int):
        return mx.split(x, list(range(sizes, x.shape[axis], sizes)), axis=axis)
    indices, total = [], 0
    for size in list(sizes)[:-1]:
        total += size
        indices.append(total)
    return mx.split(x, indices, axis=axis)
''',
}


@register("split_sizes_any")
def split_sizes_any(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound: Bound = normalize(rule, bind(call.args, rule.signature, receiver))
    sizes = bound.get("split_size_or_sections")
    scopes = rewriter.scopes
    ints = scopes[-1].int_names() if scopes else frozenset()
    known_int = int_literal_value(sizes) is not None or (literal_kind(sizes, ints) == "int" and _pure(sizes))
    if isinstance(sizes, (cst.List, cst.Tuple)) or (known_int and is_simple(bound.get("tensor"))):
        return split_sizes(rule, original, call, receiver, rewriter)  # the indices written out
    template = "split_by_sizes({tensor}, {split_size_or_sections}, {dim})"
    return expand_with_helpers(rewriter, template, rule, bound, HELPERS), frozenset({"mx"})


CHUNK_HELPERS = {
    "chunk_by_count": '''
def chunk_by_count(x, chunks, axis=0):
    """PyTorch's chunk: chunks of ceil(n / chunks) along axis (the last smaller, possibly fewer chunks)."""
    step = -(-x.shape[axis] // chunks)
    return mx.split(x, list(range(step, x.shape[axis], step)), axis=axis)
''',
}


@register("chunk_any")
def chunk_any(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """torch.chunk: the rule's template reads the input, chunks and dim several times, so it needs them
    as names or literals; anything else goes through the local helper chunk_by_count (each evaluated once)."""
    bound: Bound = normalize(rule, bind(call.args, rule.signature, receiver))
    if all(is_simple(bound.get(name)) for name in ("input", "chunks", "dim") if bound.present(name)):
        return expand(rule.mlx, rule, bound), frozenset({"mx"})
    template = "chunk_by_count({input}, {chunks}, {dim})"
    return expand_with_helpers(rewriter, template, rule, bound, CHUNK_HELPERS), frozenset({"mx"})
