"""`x.expand(...)` with a -1 on a receiver that is not a plain name (rules/shape.yaml, torch.Tensor.expand).

A -1 in `expand` keeps that dim, so the generic handler (shape_ops.shape_expand) writes `x.shape[i]`
and needs the receiver twice: a call or subscript receiver is flagged there. Two exact ways out:
- the receiver's rank is read off the source: real code's most common expand,
  `torch.arange(n).expand((1, -1))` (the `position_ids` buffer of BERT, CLIP, ...), has a receiver that
  is always 1-D, and expanding a 1-D tensor to `(1, ..., 1, -1)` only adds leading dims of size 1:
  `mx.expand_dims(x, (0, ..., k - 2))`, the receiver written once;
- otherwise (`x.unsqueeze(1).expand(-1, n, -1)`, `x[:, None].expand(-1, -1, d)`): the local helper
  `broadcast_expand(x, *sizes)`, torch's rule written out (sizes align from the right, -1 keeps that dim,
  a -1 for a new leading dim or fewer sizes than dims raise), evaluating the receiver once.
Everything else goes to the generic handler.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.handlers import register
from torch2mlx.handlers.local_helpers import expand_with_helpers
from torch2mlx.handlers.shape_ops import _bound, _with, shape_expand
from torch2mlx.template import expand, int_literal_value, is_simple

# torch functions whose result is always 1-D, whatever their arguments
_RANK_ONE = frozenset({"torch.arange", "torch.linspace", "torch.logspace", "torch.randperm"})

HELPERS = {
    "broadcast_expand": '''
def broadcast_expand(x, *sizes):
    """PyTorch's Tensor.expand: sizes align with x's dims from the right; -1 keeps that dim of x."""
    k = len(sizes)
    if k < x.ndim or -1 in sizes[:k - x.ndim]:
        raise ValueError(f"expand: the sizes {sizes} do not fit an array of shape {x.shape}")
    return mx.broadcast_to(x, tuple(x.shape[i - k] if s == -1 else s for i, s in enumerate(sizes)))
''',
}


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
    bound = _bound(rule, call, receiver)
    items = _sizes(bound)
    keeps = items is not None and any(int_literal_value(i) == -1 for i in items)
    if not keeps or is_simple(bound.get("input")):
        return shape_expand(rule, original, call, receiver, rewriter)
    source = original.func.value if isinstance(original.func, cst.Attribute) else None
    rank_one = isinstance(source, cst.Call) and rewriter.qualified_name(source.func) in _RANK_ONE
    if (rank_one and len(items) >= 2 and int_literal_value(items[-1]) == -1
            and all(int_literal_value(i) == 1 for i in items[:-1])):
        axes = "0" if len(items) == 2 else "(" + ", ".join(str(i) for i in range(len(items) - 1)) + ")"
        return expand("mx.expand_dims({input}, " + axes + ")", rule, _with(bound)), frozenset({"mx"})
    extra = {f"_s{i}": item for i, item in enumerate(items)}
    template = "broadcast_expand({input}, " + ", ".join(f"{{_s{i}}}" for i in range(len(items))) + ")"
    return expand_with_helpers(rewriter, template, rule, _with(bound, **extra), HELPERS), frozenset({"mx"})
