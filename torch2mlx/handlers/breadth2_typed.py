"""Legacy typed tensor constructors (issue 13): `torch.LongTensor([1, 2])` is a typed literal, `torch.FloatTensor(2, 3)`
an array of that shape (uninitialised in torch: zeros in MLX, a program cannot rely on torch's contents)."""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Bound, Flag, code_of
from torch2mlx.handlers import register
from torch2mlx.template import expand, int_literal_value, template_roots

# float64 is left out: MLX runs it on the CPU stream only (the float64 policy decides it elsewhere)
_DTYPES = {"FloatTensor": "mx.float32", "HalfTensor": "mx.float16", "BFloat16Tensor": "mx.bfloat16",
           "LongTensor": "mx.int64", "IntTensor": "mx.int32", "ShortTensor": "mx.int16", "CharTensor": "mx.int8",
           "ByteTensor": "mx.uint8", "BoolTensor": "mx.bool_"}


def _number_data(node) -> bool:
    """Nested lists / tuples of int, float and bool literals (a name could be a tensor or a size)."""
    if isinstance(node, (cst.Integer, cst.Float)):
        return True
    if isinstance(node, cst.Name):
        return node.value in ("True", "False")
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        return isinstance(node.expression, (cst.Integer, cst.Float))
    if isinstance(node, (cst.List, cst.Tuple)):
        return all(isinstance(e, cst.Element) and _number_data(e.value) for e in node.elements)
    return False


@register("typed_tensor")
def typed_tensor(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    func = call.func
    name = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
    dtype = _DTYPES.get(name)
    if dtype is None:
        raise Flag(f"{code_of(func)}: only FloatTensor, HalfTensor, BFloat16Tensor, LongTensor, IntTensor, ShortTensor, "
                   "CharTensor, ByteTensor and BoolTensor called by their name are translated")
    args = list(call.args)
    if not args or any(a.keyword is not None or a.star for a in args):
        raise Flag("legacy constructor: data (a list literal) or integer sizes, positionally")
    if len(args) == 1 and isinstance(args[0].value, (cst.List, cst.Tuple)) and _number_data(args[0].value):
        text = f"mx.array({{t0}}, dtype={dtype})"
        return expand(text, rule, Bound({"t0": args[0].value})), template_roots(text)
    if all(int_literal_value(a.value) is not None for a in args):
        shape = "{t0}" if len(args) == 1 else "(" + ", ".join(f"{{t{i}}}" for i in range(len(args))) + ")"
        text = f"mx.zeros({shape}, dtype={dtype})"
        return expand(text, rule, Bound({f"t{i}": a.value for i, a in enumerate(args)})), template_roots(text)
    raise Flag("legacy constructor: its argument may be data or a size: write torch.tensor(data, dtype=...) or "
               "torch.empty(sizes, dtype=...)")
