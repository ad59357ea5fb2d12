"""Breadth (issue 13): torch.nn.functional calls a template alone cannot check (rules/breadth_nn_functional.yaml).

- `F.conv2d`, `F.conv3d`, `F.conv_transpose1d/2d/3d`: a string padding ('same' / 'valid') is flagged (MLX's
  convolutions take integers); for the 1-D transposed convolution a one-element tuple becomes its element
  (mx.conv_transpose1d takes ints only) and a longer one is flagged.
- `torch.movedim` / `moveaxis` with tuples of axes (rules/shape.yaml): one mx.transpose.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Bound, Flag, bind, code_of
from torch2mlx.handlers import register
from torch2mlx.template import choose_template, expand, int_literal_value, is_simple, normalize, template_roots
from torch2mlx.transforms.codegen import mlx_expr

_STRINGS = (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)


def _single(value):
    """`(2,)` -> `2`; anything else unchanged."""
    if isinstance(value, cst.Tuple) and len(value.elements) == 1 and isinstance(value.elements[0], cst.Element):
        return value.elements[0].value
    return value


@register("functional_conv_nd")
def functional_conv_nd(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    values = dict(bound.values)
    one_d = rule.id.endswith("1d")
    for name in ("stride", "padding", "dilation", "output_padding"):
        if name not in values:
            continue
        value = values[name]
        if isinstance(value, _STRINGS):
            raise Flag(f"{rule.id.rpartition('.')[2]}: {name}={code_of(value)}: MLX's convolutions take integer "
                       "padding (write the numbers: 'same' is dilation * (kernel - 1) // 2 per side for odd kernels)")
        if one_d:
            value = _single(value)
            if isinstance(value, (cst.Tuple, cst.List)):
                raise Flag(f"{rule.id.rpartition('.')[2]}: {name}={code_of(value)} is not one integer")
        values[name] = value
    crop = ""
    if "conv_transpose" in rule.id and "padding" in values:
        # MLX's transposed convolutions give a wrong size (and values) when the padding exceeds dilation * (kernel
        # - 1) (MLX 0.32: conv_transpose1d(L=4, k=1, stride=2, padding=1) has length 3, torch 5); with no padding
        # they agree, and torch's padding only crops that many positions off each end of every spatial axis
        crop = _transpose_crop(values["padding"], 1 if one_d else 2 if rule.id.endswith("2d") else 3)
        if crop:
            del values["padding"]
    bound = Bound(values)
    template = choose_template(rule, bound)
    if crop:
        marker = "output_padding={output_padding})"
        assert marker in template, rule.id
        template = template.replace(marker, marker + crop, 1)
    return expand(template, rule, bound), template_roots(template) | frozenset({"mx"})


def _transpose_crop(padding, rank: int) -> str:
    """The slice that crops a channels-last transposed convolution computed without padding to torch's size:
    `[:, 1:-1, 2:-2]` for padding (1, 2); "" for a padding that is not an integer literal or a tuple of them
    (left to MLX's padding=, right while it is at most dilation * (kernel - 1): the rule states the assumption)."""
    sizes = [int_literal_value(padding)] * rank if int_literal_value(padding) is not None else _int_tuple(padding)
    if sizes is None or len(sizes) != rank or any(v < 0 for v in sizes) or not any(sizes):
        return ""
    return "[:, " + ", ".join(f"{v}:-{v}" if v else ":" for v in sizes) + "]"


def _int_tuple(value) -> "list[int] | None":
    """`(1, 2)` / `[1, 2]` of integer literals -> [1, 2]; anything else None."""
    if not isinstance(value, (cst.Tuple, cst.List)):
        return None
    out = []
    for element in value.elements:
        if not isinstance(element, cst.Element):
            return None
        number = int_literal_value(element.value)
        if number is None:
            return None
        out.append(number)
    return out


@register("movedim_any")
def movedim_any(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """`torch.movedim(x, (1, 2), (0, 1))`: mx.moveaxis takes single axes, so the tuple form becomes one
    mx.transpose. Its permutation is numpy's moveaxis order (the other axes in order, each source inserted
    at its destination, by increasing destination) on the axes up to the largest one named; the axes past
    it keep their places (`*range(k, x.ndim)`), so the rank need not be known. Non-negative literals only."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    source, destination = bound.get("source"), bound.get("destination")
    if not isinstance(source, (cst.Tuple, cst.List)) and not isinstance(destination, (cst.Tuple, cst.List)):
        for name, value in (("source", source), ("destination", destination)):
            if not is_simple(value):
                raise Flag(f"argument {name} must be a plain name or literal for an exact translation")
        template = choose_template(rule, bound)
        return expand(template, rule, bound), template_roots(template) | frozenset({"mx"})
    src, dst = _int_tuple(source), _int_tuple(destination)
    if (src is None or dst is None or len(src) != len(dst) or not src or min(src + dst) < 0
            or len(set(src)) != len(src) or len(set(dst)) != len(dst)):
        raise Flag("movedim: a tuple source / destination is translated when both are literal tuples of one length "
                   "of distinct non-negative integers")
    tensor = bound.get("input")
    if not isinstance(tensor, (cst.Name, cst.Attribute)):
        raise Flag("movedim: the tensor is read twice (its rank): assign it to a name first")
    k = max(src + dst) + 1
    order = [axis for axis in range(k) if axis not in src]
    for dest, axis in sorted(zip(dst, src)):
        order.insert(dest, axis)
    text = code_of(tensor)
    return mlx_expr(rewriter, f"mx.transpose({text}, [{', '.join(map(str, order))}, *range({k}, {text}.ndim)])"), frozenset({"mx"})


@register("adaptive_pool1d")
def adaptive_pool1d(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """F.adaptive_avg_pool1d / adaptive_max_pool1d(x, output_size): torch takes an int or a one-element tuple
    (`(5,)`, as nn.AdaptiveAvgPool1d keeps it); MLX's unflatten needs the int, so a literal one-element tuple
    or list gives its element (unflatten raised on the tuple)."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    size = bound.get("output_size")
    if isinstance(size, (cst.Tuple, cst.List)):
        if len(size.elements) != 1 or not isinstance(size.elements[0], cst.Element):
            raise Flag(f"adaptive 1-D pooling takes one output size: {code_of(size)}")
        bound = Bound({**bound.values, "output_size": size.elements[0].value})
    template = choose_template(rule, bound)
    return expand(template, rule, bound), template_roots(template)
