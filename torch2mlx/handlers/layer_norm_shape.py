"""`nn.LayerNorm(normalized_shape)`: MLX's LayerNorm takes one int (it normalises the last axis only).

A one-element list or tuple literal (`nn.LayerNorm([c])`, `(c,)`) is that int; a literal of several elements
(`nn.LayerNorm((4, 6))`, torch normalising the last two axes) has no MLX layer and is flagged, where before it
reached MLX and failed there with `std::bad_cast`. Any other expression is passed through as the int it usually is
(a tuple held in a name raises when the MLX layer is built).
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Bound, Flag, bind
from torch2mlx.handlers import register
from torch2mlx.template import choose_template, expand, normalize, template_roots


@register("layer_norm_shape")
def layer_norm_shape(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    shape = bound.get("normalized_shape")
    if isinstance(shape, (cst.List, cst.Tuple)):
        if len(shape.elements) != 1 or isinstance(shape.elements[0], cst.StarredElement):
            raise Flag("normalized_shape of several axes: MLX's nn.LayerNorm normalises the last axis only: "
                       "flatten those axes into one (x.reshape(*x.shape[:-k], -1)) around an nn.LayerNorm of their product, "
                       "or write the mean/variance over the axes by hand", "no-equivalent")
        bound = Bound({**bound.values, "normalized_shape": shape.elements[0].value})
    template = choose_template(rule, bound)
    return expand(template, rule, bound), template_roots(template)
