"""`F.pad(x, pad)`: torch lists (before, after) pairs from the LAST axis backwards; `mx.pad`
wants one pair per axis from the first.

A tuple or list display (its length, hence the axes padded, is known) becomes the pairs themselves; its
elements may be any expressions free of side effects (`(0, 0, 0, pad_r, 0, pad_b)` in torchvision's Swin,
`[pad_w // 2, pad_w - pad_w // 2, ...]` in timm's padding.py): each appears once in the output, so it
is evaluated once, in the reversed pair order, which only side effects could tell apart. A negative
literal (torch crops) is flagged; a negative computed width raises in mx.pad at run time. Any other pad
(a name, a call, a display with * elements or with elements that may have side effects) goes through the local `pad_widths(pad, ndim)`, which
pairs and reverses it at run time (raising, as torch does, on an odd length or too many pairs)."""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Flag, bind, code_of
from torch2mlx.handlers import register
from torch2mlx.handlers.local_helpers import refill
from torch2mlx.transforms.codegen import add_helpers
from torch2mlx.template import expand, int_literal_value, is_simple, normalize, same_literal

# a pad that is not a display (`pad_values` bound earlier, timm's Swin): its length is read at run time;
# modes mx.pad lacks or checks differently, or known at run time only (`mode=self.pad_mode`)
_HELPERS = {"pad_widths": '''
def pad_widths(pad, ndim):
    """mx.pad's (before, after) pair per axis from PyTorch's pad sequence, which runs from the last axis backwards."""
    if len(pad) % 2 or len(pad) // 2 > ndim:
        raise ValueError(f"padding length {len(pad)} must be even and at most twice the number of dimensions {ndim}")
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
    return [(0, 0)] * (ndim - len(pairs)) + pairs[::-1]
''', "pad_modes": '''
def pad_modes(x, widths, mode="constant", value=None):
    """PyTorch's F.pad modes on mx.pad widths (a (before, after) pair per axis): 'constant' (value None is 0),
    'replicate', 'reflect' (widths below the axis size, as PyTorch requires) and 'circular' (at most the size)."""
    if mode == "constant":
        return mx.pad(x, widths, constant_values=0 if value is None else value)
    if mode == "replicate":
        return mx.pad(x, widths, mode="edge")
    if mode not in ("reflect", "circular"):
        raise NotImplementedError(f"padding mode {mode!r}")
    for axis, (before, after) in enumerate(widths):
        if before < 0 or after < 0:
            raise NotImplementedError("negative padding (cropping)")
        limit = x.shape[axis] if mode == "circular" else x.shape[axis] - 1
        if max(before, after) > limit:
            raise ValueError(f"{mode} padding ({before}, {after}) of an axis of size {x.shape[axis]}: too large")
    if mode == "reflect":
        return mx.pad(x, widths, mode="reflect")
    for axis, (before, after) in enumerate(widths):
        if before or after:
            size, index = x.shape[axis], (slice(None),) * axis
            x = mx.concatenate([x[index + (slice(size - before, size),)], x, x[index + (slice(0, after),)]], axis=axis)
    return x
'''}

# builtins whose calls have no side effects (on numbers)
_PURE_CALLS = frozenset({"max", "min", "int", "abs", "round", "len"})


def pure_expression(node: cst.BaseExpression) -> bool:
    """Evaluating `node` has no side effect: names, attributes, items, literals, arithmetic, comparisons,
    conditional expressions and calls of max/min/int/abs/round/len over such expressions."""
    if isinstance(node, (cst.Name, cst.Integer, cst.Float, cst.SimpleString)):
        return True
    if isinstance(node, cst.Attribute):
        return pure_expression(node.value)
    if isinstance(node, cst.Subscript):
        return pure_expression(node.value) and all(isinstance(e.slice, cst.Index) and pure_expression(e.slice.value) for e in node.slice)
    if isinstance(node, cst.UnaryOperation):
        return pure_expression(node.expression)
    if isinstance(node, (cst.BinaryOperation, cst.BooleanOperation)):
        return pure_expression(node.left) and pure_expression(node.right)
    if isinstance(node, cst.Comparison):
        return pure_expression(node.left) and all(pure_expression(c.comparator) for c in node.comparisons)
    if isinstance(node, cst.IfExp):
        return pure_expression(node.test) and pure_expression(node.body) and pure_expression(node.orelse)
    if isinstance(node, cst.Call):
        return (isinstance(node.func, cst.Name) and node.func.value in _PURE_CALLS
                and all(a.keyword is None and not a.star and pure_expression(a.value) for a in node.args))
    return False


class _Fill(cst.CSTTransformer):
    """Put the pad's element expressions in place of the `_t2m_padwidth<i>__` markers of the filled template."""

    def __init__(self, elements: list) -> None:
        self.elements = elements

    def leave_Name(self, original, updated):
        name = updated.value
        if name.startswith("_t2m_padwidth") and name.endswith("__"):
            return self.elements[int(name[len("_t2m_padwidth"):-2])]
        return updated


@register("nn_pad")
def nn_pad(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    pad = bound.get("pad")
    x = bound.get("input")
    if not is_simple(x):
        raise Flag(f"the padded tensor is read twice (for its ndim); assign it to a name first: {code_of(x)}")
    helpers = []
    elements = values = None
    display = isinstance(pad, (cst.Tuple, cst.List)) and not any(isinstance(e, cst.StarredElement) for e in pad.elements)
    if not display or not all(int_literal_value(e.value) is not None or pure_expression(e.value) for e in pad.elements):
        widths = "pad_widths({pad}, {input}.ndim)"
        helpers.append("pad_widths")
    else:
        elements = [e.value for e in pad.elements]
        if not elements or len(elements) % 2:
            raise Flag("pad must have an even number of elements: (before, after) per axis")
        values = [int_literal_value(e) for e in elements]
        if any(v is not None and v < 0 for v in values):
            raise Flag("negative padding (cropping) has no mx.pad equivalent; slice instead")
        texts = [str(v) if v is not None else f"_t2m_padwidth{i}__" for i, v in enumerate(values)]
        pairs = [f"({texts[i]}, {texts[i + 1]})" for i in range(0, len(texts), 2)]
        widths = "[(0, 0)] * ({input}.ndim - %d) + [%s]" % (len(pairs), ", ".join(reversed(pairs)))
    mode = code_of(bound.get("mode")) if bound.present("mode") else None
    if mode is None:
        template = "mx.pad({input}, %s, constant_values={value})" % widths
    elif same_literal(mode, "'replicate'"):
        template = "mx.pad({input}, %s, mode='edge')" % widths
    else:  # 'reflect', 'circular' or a mode known at run time only
        template = "pad_modes({input}, %s, {mode}, {value})" % widths
        helpers.append("pad_modes")
    result = expand(template, rule, bound)
    result = refill(result, template, rule, bound, add_helpers(rewriter, helpers, _HELPERS))
    if values is None or all(v is not None for v in values):
        return result, frozenset({"mx"})
    return result.visit(_Fill(elements)), frozenset({"mx"})
