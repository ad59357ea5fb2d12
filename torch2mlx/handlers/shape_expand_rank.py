"""`x.expand(...)` where the receiver's rank is read off the source (rules/shape.yaml, torch.Tensor.expand).

A -1 in `expand` keeps that dim, so the generic handler (shape_ops.shape_expand) writes `x.shape[i]`
and needs the receiver twice: a call receiver is flagged there. The receiver of real code's most common
expand, `torch.arange(n).expand((1, -1))` (the `position_ids` buffer of BERT, CLIP, ...), is a call whose
result is always 1-D: expanding a 1-D tensor to `(1, ..., 1, -1)` only adds leading dims of size 1,
which is `mx.expand_dims(x, (0, ..., k - 2))`, with the receiver written once. Anything else goes to the
generic handler.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.handlers import register
from torch2mlx.handlers.shape_ops import _bound, _with, shape_expand
from torch2mlx.template import expand, int_literal_value

# torch functions whose result is always 1-D, whatever their arguments
_RANK_ONE = frozenset({"torch.arange", "torch.linspace", "torch.logspace", "torch.randperm"})


def _sizes(bound) -> list | None:
    sizes = bound.get("size")
    if isinstance(sizes, list) and len(sizes) == 1 and isinstance(sizes[0], (cst.Tuple, cst.List)):
        sizes = sizes[0]
    if isinstance(sizes, (cst.Tuple, cst.List)):
        if any(isinstance(e, cst.StarredElement) for e in sizes.elements):
            return None
        return [e.value for e in sizes.elements]
    return sizes if isinstance(sizes, list) else None


@register("shape_expand_rank")
def shape_expand_rank(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    source = original.func.value if isinstance(original.func, cst.Attribute) else None
    rank_one = (isinstance(source, cst.Call) and rewriter.qualified_name(source.func) in _RANK_ONE)
    if rank_one:
        bound = _bound(rule, call, receiver)
        items = _sizes(bound)
        if (items is not None and len(items) >= 2 and int_literal_value(items[-1]) == -1
                and all(int_literal_value(i) == 1 for i in items[:-1])):
            axes = "0" if len(items) == 2 else "(" + ", ".join(str(i) for i in range(len(items) - 1)) + ")"
            return expand("mx.expand_dims({input}, " + axes + ")", rule, _with(bound)), frozenset({"mx"})
    return shape_expand(rule, original, call, receiver, rewriter)
