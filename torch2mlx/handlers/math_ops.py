"""Math calls a template cannot express: `torch.div(rounding_mode=...)` and `torch.einsum`."""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Flag, bind, code_of
from torch2mlx.handlers import register
from torch2mlx.template import expand, normalize, sentinel

# torch.div(a, b, rounding_mode=...):
#   None    -> true division (int/int gives float32 in both torch and MLX)
#   'floor' -> mx.floor_divide (keeps integer dtypes, like torch)
#   'trunc' -> MLX has no truncating division. trunc(a / b) would turn integer inputs into
#              float32; instead: floor division when the signs agree, else -floor(-a / b).
#              It reads a and b twice, so they must be plain names or literals.
_DIV = {
    None: "mx.divide({input}, {other})",
    "floor": "mx.floor_divide({input}, {other})",
    "trunc": "mx.where(({input} < 0) != ({other} < 0), -mx.floor_divide(-{input}, {other}), mx.floor_divide({input}, {other}))",
}


@register("math_div")
def math_div(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    mode = bound.get("rounding_mode")
    key = None
    if mode is not None:
        if not isinstance(mode, cst.SimpleString) or mode.evaluated_value not in ("floor", "trunc"):
            raise Flag(f"rounding_mode={code_of(mode)} must be the literal 'floor', 'trunc' or None for an exact translation")
        key = mode.evaluated_value
    template = _DIV[key]
    return expand(template, rule, bound), frozenset({"mx"})


@register("math_einsum")
def math_einsum(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """torch.einsum(eq, a, b) and torch.einsum(eq, [a, b]) -> mx.einsum(eq, a, b)."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    operands = bound.get("operands") or []
    sublists = [v for v in [bound.get("equation"), *operands] if isinstance(v, (cst.List, cst.Tuple)) and any(
        isinstance(e, cst.Element) and isinstance(e.value, (cst.Integer, cst.Ellipsis)) for e in v.elements)]
    if sublists:  # torch.einsum(a, [0, 1], b, [1, 2]): MLX takes an equation string only
        raise Flag("the sublist form of torch.einsum (operands each followed by a list of axis numbers) has no "
                   "MLX form: write the equation string, e.g. mx.einsum('ij,jk->ik', a, b)")
    if len(operands) == 1 and isinstance(operands[0], (cst.List, cst.Tuple)):
        items = operands[0].elements
        if any(not isinstance(e, cst.Element) for e in items):
            raise Flag("cannot unpack a starred operand list for mx.einsum")
        operands = [e.value for e in items]
    elif len(operands) == 1:
        orig_args = [a for a in original.args if a.keyword is None]
        if len(orig_args) < 2 or not rewriter.tensors.is_tensor(orig_args[1].value):
            raise Flag("torch.einsum with one operand that may be a list of tensors: "
                       "mx.einsum takes the operands unpacked; write mx.einsum(eq, *operands) or annotate the tensor")
    if not operands:
        raise Flag("torch.einsum without operands")
    func = cst.parse_expression(f"{sentinel('mx')}.einsum")
    args = [cst.Arg(bound.get("equation"))] + [cst.Arg(v) for v in operands]
    sep = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    args = [a.with_changes(comma=sep) for a in args[:-1]] + [args[-1]]
    return cst.Call(func=func, args=args), frozenset({"mx"})
