"""Tensor methods, indexing and unpacking on channels-last values, remapped axis by axis (part of nn-layout).

A value of layout "cl2" is torch's (N, C, H, W) tensor held as (N, H, W, C): `AXES[layout]` gives
the MLX position of each torch axis. What an operation gives depends on the axis order of its
result: the same order in both frameworks (a reduction over the channels or over every spatial
axis, a permute to NHWC) is a plain value; channels kept last with k spatial axes left is the
channels-last layout of rank k. Handled here:
- `x.permute(0, 2, 3, 1)` -> `x` (torch's result is NHWC: MLX has it already); other orders remapped.
- `x.transpose(1, 2)` of a (N, L, C) value -> `x`; other swaps remapped.
- `x.flatten(2)` of a (N, H, W, C) map -> `mx.flatten(x, 1, 2)`, a (N, L, C) value (ViT patches).
- `x.mean((2, 3))`, `x.sum(1, keepdim=True)`, `x.amax(dim=[-2, -1])`, `torch.mean(x, 1)`: dims remapped.
- `x[:, :c]`: the index spread over the MLX axes.
- `N, C, H, W = x.shape` (or `x.size()`): the names bound in MLX's order.
- `a, b = x.chunk(2, dim=1)` / `x.split(c, dim=1)` / `torch.chunk(x, 2, 1)`: parts of the same layout.
Every method returns None for a form it does not know; the caller flags it then.
"""
from __future__ import annotations

from typing import Optional

import libcst as cst

from torch2mlx.template import sentinel
from torch2mlx.layout_facts import Layout, Seq
from torch2mlx.transforms.layout.tables import AXES

RANK = {Layout.CL1: 3, Layout.CL2: 4, Layout.POOLED: 4, Layout.CL3: 5}
_BY_SPATIAL_COUNT = {0: Layout.PLAIN, 1: Layout.CL1, 2: Layout.CL2, 3: Layout.CL3}
# reductions whose second positional argument is keepdim (std/var's is `unbiased`: keyword only there)
_REDUCTIONS = {"mean": True, "sum": True, "amax": True, "amin": True, "logsumexp": True, "prod": True,
               "std": False, "var": False}
_SPLITS = {"chunk", "split", "tensor_split"}
_COMMA = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
# a value whose layout the analysis gave up on (flagged where that happened): in MLX it may be either layout,
# so what reads its axis order is kept as written (noted), and it is never transposed into a channels-last layer
UNKNOWN = Layout.UNKNOWN
# a `rebuild` entry: the call becomes its (converted) receiver itself (`x.permute(0, 2, 3, 1)` -> `x`)
SAME = "same"


def mx_call(name: str, *args) -> cst.Call:
    """`mx.<name>(args)`, each argument a node, an int or a tuple of ints (`mx.transpose(x, (0, 3, 1, 2))`)."""
    nodes = [_node(a) for a in args]
    return cst.Call(func=cst.Attribute(value=cst.Name(sentinel("mx")), attr=cst.Name(name)),
                    args=[cst.Arg(n, comma=_COMMA if i < len(nodes) - 1 else cst.MaybeSentinel.DEFAULT)
                          for i, n in enumerate(nodes)])


def _node(value) -> cst.BaseExpression:
    if isinstance(value, int):
        return cst.Integer(str(value))
    if isinstance(value, tuple):
        return cst.Tuple([cst.Element(cst.Integer(str(v)), comma=_COMMA if i < len(value) - 1 else cst.MaybeSentinel.DEFAULT)
                          for i, v in enumerate(value)])
    return value


def int_value(node) -> Optional[int]:
    if isinstance(node, cst.Integer):
        return int(node.value)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus) and isinstance(node.expression, cst.Integer):
        return -int(node.expression.value)
    return None


def _torch_axis(index: Optional[int], layout: str) -> Optional[int]:
    rank = RANK.get(layout)
    if index is None or rank is None or not -rank <= index < rank:
        return None
    return index + rank if index < 0 else index


def _after_removing(layout: str, removed: set) -> Optional[str]:
    """Layout of what is left when the torch axes `removed` go (0 is the batch, 1 the channels)."""
    if 0 in removed:
        return None
    if 1 in removed:
        return Layout.PLAIN  # (N, H, W) in both
    return _BY_SPATIAL_COUNT[RANK[layout] - 2 - len(removed)]


def _keyword(args: list, *names: str):
    return next((a.value for a in args if a.keyword is not None and a.keyword.value in names), None)


def _positional(args: list) -> list:
    return [a.value for a in args if a.keyword is None and not a.star]


def _dims(node) -> Optional[list]:
    """The dim nodes of `1`, `(2, 3)`, `[-2, -1]`; None for anything else."""
    if isinstance(node, (cst.Tuple, cst.List)):
        found = [el.value for el in node.elements]
        return found if found and all(int_value(n) is not None and not getattr(el, "star", None) for n, el in zip(found, node.elements)) else None
    return [node] if int_value(node) is not None else None


class LayoutOps:
    """Mixed into NnLayoutTransform: `state`, `replace`, `rebuild`, `reindex`, `_layout` and `_doubt` are its."""

    def _remap(self, nodes: list, layout: str) -> Optional[list]:
        """Schedule each dim node's replacement by its channels-last axis; the torch axes, or None."""
        axes = [_torch_axis(int_value(n), layout) for n in nodes]
        if any(a is None for a in axes):
            return None
        for node, axis in zip(nodes, axes):
            self.replace[id(node)] = cst.Integer(str(AXES[layout][axis]))
        return axes

    # ----- methods ---------------------------------------------------------------------------
    def _method(self, rw, e: cst.Call, layout: str) -> Optional[str]:
        method, args = e.func.attr.value, list(e.args)
        if any(a.star for a in args):
            return None
        if method == "permute":
            return self._permute(e, layout, args)
        if method in ("transpose", "swapaxes"):
            return self._swap(e, layout, args)
        if method == "flatten":
            return self._flatten_spatial(e, layout, args)
        if method in _REDUCTIONS:
            return self._reduce(layout, args, _REDUCTIONS[method])
        if method in ("dim",) and not args or method in ("numel", "element_size"):
            return Layout.PLAIN
        return None

    def _function(self, rw, qual: str, e: cst.Call, layout: str) -> Optional[str]:
        """`torch.mean(x, 1)` and friends: the method form with the tensor first."""
        name = qual.rsplit(".", 1)[-1]
        args = list(e.args)[1:]
        if qual.startswith("torch.") and name in _REDUCTIONS and not any(a.star for a in args):
            return self._reduce(layout, args, _REDUCTIONS[name])
        return None

    def _permute(self, e, layout, args) -> Optional[str]:
        positional = _positional(args)
        nodes = _dims(positional[0]) if len(positional) == 1 else positional
        if not nodes or len(args) != len(positional) or len(nodes) != RANK[layout]:
            return None
        dims = [_torch_axis(int_value(n), layout) for n in nodes]
        if None in dims or sorted(dims) != list(range(len(dims))):
            return None
        order = [AXES[layout][d] for d in dims]  # torch's result, read off the channels-last array
        if order == sorted(order):
            self.rebuild[id(e)] = SAME
        else:
            for node, axis in zip(nodes, order):
                self.replace[id(node)] = cst.Integer(str(axis))
        return Layout.PLAIN

    def _swap(self, e, layout, args) -> Optional[str]:
        positional = _positional(args)
        if len(positional) != 2 or len(args) != 2:
            return None
        a, b = (_torch_axis(int_value(n), layout) for n in positional)
        if a is None or b is None:
            return None
        dims = list(range(RANK[layout]))
        dims[a], dims[b] = dims[b], dims[a]
        order = [AXES[layout][d] for d in dims]
        moved = [i for i, axis in enumerate(order) if axis != i]
        if not moved:
            self.rebuild[id(e)] = SAME
        elif len(moved) == 2:
            for node, axis in zip(positional, moved):
                self.replace[id(node)] = cst.Integer(str(axis))
        else:
            self.rebuild[id(e)] = lambda x, order=tuple(order): mx_call("transpose", x, order)
        return Layout.PLAIN

    def _flatten_spatial(self, e, layout, args) -> Optional[str]:
        """`x.flatten(2)` of a feature map: torch's (N, C, H*W) is MLX's (N, H*W, C), a (N, L, C) value."""
        positional = _positional(args)
        start = positional[0] if positional else _keyword(args, "start_dim")
        end = positional[1] if len(positional) > 1 else _keyword(args, "end_dim")
        if layout not in (Layout.CL2, Layout.POOLED, Layout.CL3) or int_value(start) != 2 or (end is not None and int_value(end) != -1):
            return None
        self.rebuild[id(e)] = lambda x, end=RANK[layout] - 2: mx_call("flatten", x, 1, end)
        return Layout.CL1

    def _reduce(self, layout, args, keepdim_positional: bool) -> Optional[str]:
        positional = _positional(args)
        dim = positional[0] if positional else _keyword(args, "dim", "axis")
        keep = positional[1] if len(positional) > 1 and keepdim_positional else _keyword(args, "keepdim", "keepdims")
        if len(positional) > (2 if keepdim_positional else 1):
            return None
        if dim is None:
            return Layout.PLAIN if keep is None or _is_false(keep) else None
        nodes = _dims(dim)
        axes = self._remap(nodes, layout) if nodes else None
        if axes is None:
            return None
        if keep is not None and not _is_false(keep):
            if not (isinstance(keep, cst.Name) and keep.value == "True"):
                return None
            return Layout.POOLED if layout in (Layout.CL2, Layout.POOLED) and {2, 3} <= set(axes) else layout
        return _after_removing(layout, set(axes))

    # ----- x[...] ----------------------------------------------------------------------------
    def _index(self, e: cst.Subscript, layout: str) -> Optional[str]:
        """`x[:, :c]` / `x[:, 0]`: plain ints and slices only, spread over the channels-last axes."""
        elements = e.slice
        rank = RANK[layout]
        if len(elements) > rank:
            return None
        removed = set()
        for i, el in enumerate(elements):
            part = el.slice
            if isinstance(part, cst.Index):
                if part.star is not None or int_value(part.value) is None:
                    return None  # a tensor or list index selects, a name may be either: not followed
                removed.add(i)
            elif not isinstance(part, cst.Slice):
                return None
        self.reindex[id(e)] = layout
        return layout if not removed else _after_removing(layout, removed)

    def reindexed(self, original: cst.Subscript, updated: cst.Subscript) -> cst.Subscript:
        layout = self.reindex.pop(id(original))
        torch_elements = list(updated.slice)
        placed = {AXES[layout][i]: el for i, el in enumerate(torch_elements)}
        last = max(placed)
        full = cst.SubscriptElement(cst.Slice(lower=None, upper=None))
        elements = [placed.get(j, full).with_changes(comma=cst.MaybeSentinel.DEFAULT) for j in range(last + 1)]
        return updated.with_changes(slice=elements)

    # ----- statements ------------------------------------------------------------------------
    def _unpack(self, rw, target: cst.BaseExpression, value: cst.BaseExpression) -> Optional[list]:
        """Layouts for the names of `a, b, ... = value`, scheduling what to remap; None when not followed."""
        if not isinstance(target, cst.Tuple) or any(isinstance(el, cst.StarredElement) for el in target.elements):
            return None
        names = target.elements
        shape_of = shape_source(value)
        if shape_of is not None:
            layout = self._layout(rw, shape_of)
            if layout == Layout.PLAIN:
                return [Layout.PLAIN] * len(names)
            if layout not in RANK or len(names) != RANK[layout]:
                return None
            self.scalars.update(el.value.value for el in names if isinstance(el.value, cst.Name))
            torch_axis_at = {AXES[layout][i]: i for i in range(RANK[layout])}
            self.replace[id(target)] = target.with_changes(elements=[
                el.with_changes(value=names[torch_axis_at[j]].value) for j, el in enumerate(names)])
            return [Layout.PLAIN] * len(names)
        if isinstance(value, cst.Name) and isinstance(self.state.get(value.value), Seq):
            return [self.state[value.value].of] * len(names)  # a list of maps of one layout, unpacked
        if isinstance(value, cst.Tuple) and len(value.elements) == len(names):
            return [self._layout(rw, el.value) for el in value.elements]
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) \
                and isinstance(value.func.value, cst.Name) and value.func.value.value == "self":
            # `x, aux = self._forward(x)`: a method of the class, followed; every value it returns has one layout
            layout = self._layout(rw, value)
            if layout == Layout.PLAIN or isinstance(layout, Seq):
                return [layout.of if isinstance(layout, Seq) else layout] * len(names)
            return None
        if isinstance(value, cst.Call):
            return self._split(rw, value, len(names))
        return None

    def _split(self, rw, call: cst.Call, count: int) -> Optional[list]:
        func = call.func
        qual = rw.qualified_name(func) or ""
        if isinstance(func, cst.Attribute) and qual == "" and func.attr.value in _SPLITS:
            source, rest = func.value, list(call.args)
        elif qual in ("torch.chunk", "torch.split", "torch.tensor_split") and call.args and call.args[0].keyword is None:
            source, rest = call.args[0].value, list(call.args)[1:]
        else:
            return None
        layout = self._layout(rw, source)
        if layout == Layout.PLAIN:
            return [Layout.PLAIN] * count
        if layout not in RANK or any(a.star for a in rest):
            return None
        positional = _positional(rest)
        dim = positional[1] if len(positional) > 1 else _keyword(rest, "dim")
        if len(positional) > 2 or len(positional) < 1 and _keyword(rest, "chunks", "split_size_or_sections", "split_size") is None:
            return None
        if dim is not None and self._remap([dim], layout) is None:
            return None
        return [layout] * count


def _is_false(node) -> bool:
    return isinstance(node, cst.Name) and node.value == "False"


def shape_source(value) -> Optional[cst.BaseExpression]:
    """`x` for `x.shape` / `x.size()`, else None."""
    if isinstance(value, cst.Attribute) and value.attr.value == "shape":
        return value.value
    if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value == "size" and not value.args:
        return value.func.value
    return None
