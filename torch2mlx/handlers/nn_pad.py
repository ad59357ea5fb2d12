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
from torch2mlx.handlers.local_helpers import add_helpers
from torch2mlx.template import expand, int_literal_value, is_simple, normalize

# a pad that is not a display (`pad_values` bound earlier, timm's Swin): its length is read at run time
_PAD_WIDTHS = {"pad_widths": '''
def pad_widths(pad, ndim):
    """mx.pad's (before, after) pair per axis from PyTorch's pad sequence, which runs from the last axis backwards."""
    if len(pad) % 2 or len(pad) // 2 > ndim:
        raise ValueError(f"padding length {len(pad)} must be even and at most twice the number of dimensions {ndim}")
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
    return [(0, 0)] * (ndim - len(pairs)) + pairs[::-1]
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
    display = isinstance(pad, (cst.Tuple, cst.List)) and not any(isinstance(e, cst.StarredElement) for e in pad.elements)
    if not display or not all(int_literal_value(e.value) is not None or pure_expression(e.value) for e in pad.elements):
        template = "mx.pad({input}, pad_widths({pad}, {input}.ndim)"
        template += ", mode='edge')" if bound.present("mode") else ", constant_values={value})"
        result = expand(template, rule, bound)
        add_helpers(rewriter, ["pad_widths"], _PAD_WIDTHS)
        return result, frozenset({"mx"})
    elements = [e.value for e in pad.elements]
    if not elements or len(elements) % 2:
        raise Flag("pad must have an even number of elements: (before, after) per axis")
    values = [int_literal_value(e) for e in elements]
    if any(v is not None and v < 0 for v in values):
        raise Flag("negative padding (cropping) has no mx.pad equivalent; slice instead")
    texts = [str(v) if v is not None else f"_t2m_padwidth{i}__" for i, v in enumerate(values)]
    pairs = [f"({texts[i]}, {texts[i + 1]})" for i in range(0, len(texts), 2)]
    widths = "[" + ", ".join(reversed(pairs)) + "]"
    template = "mx.pad({input}, [(0, 0)] * ({input}.ndim - %d) + %s" % (len(pairs), widths)
    template += ", mode='edge')" if bound.present("mode") else ", constant_values={value})"
    result = expand(template, rule, bound)
    if all(v is not None for v in values):
        return result, frozenset({"mx"})
    return result.visit(_Fill(elements)), frozenset({"mx"})
