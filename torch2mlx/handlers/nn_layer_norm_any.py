"""`F.layer_norm(x, shape, ...)` where the source does not show that `shape` is the last dimension only
(rules/nn_functional.yaml, torch.nn.functional.layer_norm).

timm's `LayerNorm` / `LayerNorm2d` (subclasses of nn.LayerNorm) call
`F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)`: the shape is an attribute, one
axis or several depending on how the layer was built. A literal one-element shape (or `x.shape[-1:]`) stays
`mx.fast.layer_norm` (nn_functional_checks.last_dim_norm); anything else becomes the local helper
`layer_norm_any`, torch's definition written out: normalise over the last len(normalized_shape) axes
(an int is one axis), biased variance, then weight and bias; torch's shape check raises as torch's does.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Bound, bind
from torch2mlx.handlers import register
from torch2mlx.handlers.local_helpers import expand_with_helpers
from torch2mlx.handlers.nn_functional_checks import _is_last_dim_only, last_dim_norm
from torch2mlx.template import normalize

HELPERS = {
    "layer_norm_any": '''
def layer_norm_any(x, normalized_shape, weight=None, bias=None, eps=1e-05):
    """PyTorch's layer_norm: normalise over the last len(normalized_shape) axes (an int is one axis)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise ValueError(f"layer_norm: normalized_shape {shape} is not the trailing shape of {tuple(x.shape)}")
    if len(shape) == 1:
        return mx.fast.layer_norm(x, weight, bias, eps)
    axes = tuple(range(-len(shape), 0))
    mean = mx.mean(x, axis=axes, keepdims=True)
    y = (x - mean) * mx.rsqrt(mx.var(x, axis=axes, keepdims=True) + eps)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias
''',
}


@register("nnf_layer_norm_any")
def layer_norm_any(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    shape = bound.get("normalized_shape")
    if shape is not None and _is_last_dim_only(shape):
        return last_dim_norm(rule, original, call, receiver, rewriter)
    values = dict(bound.values)
    for name, default in (("weight", "None"), ("bias", "None"), ("eps", "1e-05")):
        values.setdefault(name, cst.parse_expression(default))
    template = "layer_norm_any({input}, {normalized_shape}, {weight}, {bias}, {eps})"
    return expand_with_helpers(rewriter, template, rule, Bound(values), HELPERS), frozenset({"mx"})
