"""Breadth (issue 13): torch.nn.functional calls a template alone cannot check (rules/breadth_nn_functional.yaml).

- `F.conv2d`, `F.conv3d`, `F.conv_transpose1d/2d/3d`: a string padding ('same' / 'valid') is flagged (MLX's
  convolutions take integers); for the 1-D transposed convolution a one-element tuple becomes its element
  (mx.conv_transpose1d takes ints only) and a longer one is flagged.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Bound, Flag, bind, code_of
from torch2mlx.handlers import register
from torch2mlx.template import choose_template, expand, normalize, template_roots

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
    bound = Bound(values)
    template = choose_template(rule, bound)
    return expand(template, rule, bound), template_roots(template) | frozenset({"mx"})
