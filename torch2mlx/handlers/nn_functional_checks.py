"""torch.nn.functional calls whose exactness depends on a literal's value."""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Bound, Flag, bind, code_of
from torch2mlx.handlers import register
from torch2mlx.template import choose_template, expand, normalize, template_roots


def _number(node: cst.BaseExpression):
    """The value of an int/float literal (optionally negated), else None."""
    sign = 1.0
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        sign, node = -1.0, node.expression
    if isinstance(node, (cst.Integer, cst.Float)):
        return sign * float(node.evaluated_value)
    return None


@register("nnf_leaky_relu")
def leaky_relu(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """nn.leaky_relu is max(slope * x, x): equal to torch only for slope <= 1."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    if bound.present("negative_slope"):
        slope = _number(bound.get("negative_slope"))
        if slope is None or slope > 1:
            raise Flag(
                f"negative_slope={code_of(bound.get('negative_slope'))}: nn.leaky_relu computes max(slope*x, x), "
                "equal to torch only for a literal slope <= 1; use mx.where(x >= 0, x, slope * x)"
            )
    return expand("nn.leaky_relu({input}, negative_slope={negative_slope})", rule, bound), frozenset({"nn"})


def _is_last_dim_only(node: cst.BaseExpression) -> bool:
    """(C,), [C], or x.shape[-1:]: a normalized_shape that covers the last dimension only."""
    if isinstance(node, (cst.List, cst.Tuple)):
        return len(node.elements) == 1 and not isinstance(node.elements[0], cst.StarredElement)
    code = code_of(node).replace(" ", "")
    return code.endswith(".shape[-1:]") or code.endswith(".size()[-1:]")


@register("nnf_last_dim_norm")
def last_dim_norm(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """F.layer_norm / F.rms_norm over the last dimension -> mx.fast.layer_norm / rms_norm."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    shape = bound.get("normalized_shape")
    if shape is None or not _is_last_dim_only(shape):
        raise Flag("normalized_shape must be a one-element list/tuple (the last dimension); "
                   "mx.fast norms normalise the last axis only: reshape by hand")
    template = rule.mlx
    if "rms_norm" in rule.mlx and not bound.present("eps"):
        template = template.replace("{eps}", "mx.finfo({input}.dtype).eps")
    # weight/bias are positional in mx.fast.*: write None explicitly when absent
    values = dict(bound.values)
    for name in ("weight", "bias", "eps"):
        if "{" + name + "}" in template and name not in values:
            param = rule.signature.get(name)
            values[name] = cst.parse_expression(param.default if param is not None and param.default is not None else "None")
    return expand(template, rule, Bound(values)), frozenset({"mx"})


_REDUCTIONS = {"'mean'": "mean", '"mean"': "mean", "'sum'": "sum", '"sum"': "sum",
               "'none'": "none", '"none"': "none", "'batchmean'": "batchmean", '"batchmean"': "batchmean"}


@register("nnf_reduced_loss")
def reduced_loss(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """A loss whose rule template is the elementwise loss; wrap it for the literal `reduction`.

    'mean' (torch's default) -> mx.mean, 'sum' -> mx.sum, 'none' -> as is,
    'batchmean' (kl_div only) -> mx.sum(...) / input.shape[0].
    """
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    kind = "mean"
    if bound.present("reduction"):
        kind = _REDUCTIONS.get(code_of(bound.get("reduction")))
        if kind is None or (kind == "batchmean" and rule.id != "torch.nn.functional.kl_div"):
            raise Flag(f"reduction={code_of(bound.get('reduction'))} must be a literal 'mean', 'sum' or 'none'")
    template = choose_template(rule, bound)
    if kind == "mean":
        template = f"mx.mean({template})"
    elif kind == "sum":
        template = f"mx.sum({template})"
    elif kind == "batchmean":
        template = f"mx.sum({template}) / {{input}}.shape[0]"
    return expand(template, rule, bound), template_roots(template)
