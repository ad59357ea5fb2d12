"""Creation and random calls whose translation depends on the *kind* of a literal argument.

- `torch.arange(5)`, `torch.tensor([1, 2])`, `torch.full((2,), 3)` are int64 in torch, but MLX
  infers int32 from Python ints: when no dtype is given, the handler reads the literal and
  writes `dtype=mx.int64` for integers (floats are float32 and bools bool in both). When the
  kind cannot be read from the source (a plain name, say), the call is flagged.
- `torch.randn(5)` takes an int, `mx.random.normal` only a sequence: a single size argument
  must be a tuple/list literal, an integer literal (written as `(5,)`) or a `.shape`.
"""
from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from torch2mlx.binding import Bound, Flag, bind, code_of
from torch2mlx.handlers import register
from torch2mlx.handlers.device_dtype import _is_dtype as is_dtype_expression
from torch2mlx.template import choose_template, expand, normalize, sentinel, template_roots
from torch2mlx.tensors import attribute_chain

_INT_FUNCS = {"int", "len", "round"}
_FLOAT_FUNCS = {"float"}
_RANK = {"bool": 0, "int": 1, "float": 2}
_FLOAT_CONSTANTS = frozenset({"nan", "inf", "pi", "e"})
_FLOAT_CONSTANT_MODULES = frozenset({sentinel("mx"), "mx", "math", "np", "numpy"})


def _combine(kinds) -> Optional[str]:
    kinds = list(kinds)
    if any(k is None for k in kinds):
        return None
    if not kinds:
        return "float"  # torch.tensor([]) is float32, like mx.array([])
    return max(kinds, key=lambda k: _RANK[k])


def _is_shape(node: cst.BaseExpression) -> bool:
    """`x.shape` (or a slice of it)."""
    if isinstance(node, cst.Subscript):
        return _is_shape(node.value) and all(isinstance(s.slice, cst.Slice) for s in node.slice)
    return isinstance(node, cst.Attribute) and node.attr.value == "shape"


def _sequence_key(node: cst.BaseExpression) -> Optional[str]:
    """`n[]` / `a.b[]`, the entry of `names.Scope.int_names` saying every element of `n` / `a.b` is an int."""
    if isinstance(node, cst.Name):
        return f"{node.value}[]"
    if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name):
        return f"{node.value.value}.{node.attr.value}[]"
    return None


def literal_kind(node: cst.BaseExpression, ints: frozenset = frozenset()) -> Optional[str]:
    """'bool', 'int' or 'float' when the source shows the Python type of a value, else None. `ints`: the names
    of the scope known to hold ints (`names.Scope.int_names`)."""
    if isinstance(node, cst.Integer):
        return "int"
    if isinstance(node, cst.Float):
        return "float"
    if isinstance(node, cst.Name):
        return "bool" if node.value in ("True", "False") else "int" if node.value in ints else None
    if isinstance(node, cst.UnaryOperation):
        if isinstance(node.operator, (cst.Minus, cst.Plus)):
            kind = literal_kind(node.expression, ints)
            return "int" if kind == "bool" else kind
        return None
    if isinstance(node, (cst.List, cst.Tuple)):
        if any(not isinstance(e, cst.Element) for e in node.elements):
            return None
        return _combine(literal_kind(e.value, ints) for e in node.elements)
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Name):
        if node.func.value in _FLOAT_FUNCS:
            return "float"
        if node.func.value in _INT_FUNCS and len(node.args) == 1:
            return "int"
        return None
    if isinstance(node, cst.Subscript):
        # x.shape[0] is an int; x.shape[1:] is not a scalar
        if _is_shape(node.value) and len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index):
            return "int"
        if len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index) and _sequence_key(node.value) in ints:
            return "int"  # an element of a sequence of ints: `window_size[0]` (scalar_facts' `n[]` entries)
        return None
    if isinstance(node, cst.Attribute) and node.attr.value == "ndim":
        return "int"
    if isinstance(node, cst.Attribute) and ".".join(attribute_chain(node) or ()) in ints:
        return "int"  # `config.max_position_embeddings` of a strict transformers config, `self.emb.num_embeddings` of
        # a torch layer (names.Scope.int_names)
    if (isinstance(node, cst.Attribute) and node.attr.value in _FLOAT_CONSTANTS and isinstance(node.value, cst.Name)
            and node.value.value in _FLOAT_CONSTANT_MODULES):
        return "float"  # torch.nan (already mx.nan here), math.pi, np.inf
    if isinstance(node, cst.BinaryOperation):
        left, right = literal_kind(node.left, ints), literal_kind(node.right, ints)
        if left is None or right is None:
            return None
        if isinstance(node.operator, cst.Divide):
            return "float"
        kind = _combine([left, right])
        return "int" if kind == "bool" else kind
    return None


def _mx_dtype(name: str) -> cst.BaseExpression:
    return cst.parse_expression(f"{sentinel('mx')}.{name}")


def _finish(rule, bound: Bound):
    template = choose_template(rule, bound)
    return expand(template, rule, bound), template_roots(template) | frozenset({"mx"})


def _scope_ints(context) -> frozenset:
    """The names of the innermost scope being converted that always hold ints."""
    scopes = context.scopes
    ints = scopes[-1].int_names() if scopes else frozenset()
    narrowed = context.tensors.narrowed_ints  # `module.num_positions` in `if isinstance(module, C):` (layer_checks)
    return ints.union(*narrowed) if narrowed else ints


def _maybe_none(dtype: cst.BaseExpression) -> bool:
    """A dtype argument that may be None at run time (`dtype=dtype`, timm's `**dd`): anything but `mx.<dtype>`."""
    return not (isinstance(dtype, cst.Attribute) and isinstance(dtype.value, cst.Name)
                and dtype.value.value in ("mx", sentinel("mx")))


def _infer_dtype(rule, bound: Bound, names: tuple, ints: frozenset = frozenset()) -> Bound:
    given = bound.get("dtype") if bound.present("dtype") else None
    if given is not None and not _maybe_none(given):
        return bound
    present = [bound.get(n) for n in names if bound.present(n)]
    kind = _combine(literal_kind(v, ints) for v in present)
    if given is not None:
        # torch infers the dtype when the argument is None at run time (int64 from ints, MLX int32): the literal
        # kinds that infer alike need nothing; ints get int64 when it is None; unknown data is flagged as without dtype=
        given_none = isinstance(given, cst.Name) and given.value == "None"
        if kind == "int" and not given_none:  # (an attribute chain such as self.dtype is read twice, like a name)
            values = dict(bound.values)
            values["dtype"] = cst.IfExp(test=cst.Comparison(given, [cst.ComparisonTarget(cst.Is(), cst.Name("None"))]),
                                        body=_mx_dtype("int64"), orelse=given)
            return Bound(values)
        if kind is not None and kind != "int":
            return bound
        if kind is None and not given_none:
            shown = ", ".join(code_of(v) for v in present)
            raise Flag(
                f"torch infers int64 from Python ints but MLX int32 when `dtype={code_of(given)}` is None, and the "
                f"type of `{shown}` cannot be read from the source; pass a dtype that is never None"
            )
    if kind is None:
        shown = ", ".join(code_of(v) for v in present)
        raise Flag(
            f"torch infers int64 from Python ints but MLX int32, and the type of `{shown}` cannot be read "
            "from the source; pass dtype= explicitly"
        )
    if kind == "int":
        values = dict(bound.values)
        values["dtype"] = _mx_dtype("int64")
        return Bound(values)
    return bound


def _fix_size(bound: Bound, tuples: frozenset = frozenset(), ints: frozenset = frozenset()) -> Bound:
    size = bound.get("size")
    if size is None or not isinstance(size, list):
        return bound
    if len(size) != 1:
        return bound
    only = size[0]
    if isinstance(only, (cst.Tuple, cst.List)) or _is_shape(only):
        return bound
    if isinstance(only, cst.Name) and only.value in tuples:
        return bound  # every binding of the name is a tuple (scalar_facts.tuple_names)
    if isinstance(only, cst.Integer) or literal_kind(only, ints) == "int":  # one int: a 1-D shape
        values = dict(bound.values)
        values["size"] = [cst.Tuple([cst.Element(only, comma=cst.Comma())])]
        return Bound(values)
    raise Flag(
        f"cannot tell whether `{code_of(only)}` is an int or a shape (MLX random functions take a sequence); "
        f"write ({code_of(only)},) or a tuple"
    )


def _bound(rule, call, receiver) -> Bound:
    return normalize(rule, bind(call.args, rule.signature, receiver))


@register("arange_dtype")
def arange_dtype(rule, original, call, receiver, rewriter):
    return _finish(rule, _infer_dtype(rule, _bound(rule, call, receiver), ("start", "end", "step"), _scope_ints(rewriter)))


_FLOAT_DTYPE = re.compile(r"\.(float16|float32|bfloat16|complex64)$")
_INT_DTYPE = re.compile(r"\.(u?int(8|16|32|64))$")


def _dtype_dominates(dtype: cst.BaseExpression, kind: Optional[str]) -> bool:
    """mx.full(shape, v, dtype=d) keeps d only when d is at least as wide a kind as v (else v's type wins)."""
    code = code_of(dtype)
    if not code.startswith(sentinel("mx")):
        return False
    if _FLOAT_DTYPE.search(code):
        return kind is not None
    if _INT_DTYPE.search(code):
        return kind in ("int", "bool")
    return kind == "bool"


@register("full_dtype")
def full_dtype(rule, original, call, receiver, rewriter):
    """torch.full / Tensor.new_full. MLX's mx.full(shape, 2.5, dtype=mx.int32) silently returns float32,
    so a dtype that does not dominate the fill value's type is applied to the fill value instead."""
    bound = _bound(rule, call, receiver)
    dtype = bound.get("dtype")
    if dtype is None and receiver is not None:
        dtype = cst.Attribute(bound.get("input"), cst.Name("dtype"))
    if dtype is None:
        return _finish(rule, _infer_dtype(rule, bound, ("fill_value",), _scope_ints(rewriter)))
    fill = bound.get("fill_value")
    values = dict(bound.values)
    if _dtype_dominates(dtype, literal_kind(fill, _scope_ints(rewriter))):
        values["dtype"] = dtype
    else:
        values.pop("dtype", None)
        values["fill_value"] = cst.Call(
            cst.parse_expression(f"{sentinel('mx')}.array"),
            [cst.Arg(fill), cst.Arg(dtype, keyword=cst.Name("dtype"), equal=cst.AssignEqual(
                whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")))],
        )
    return _finish(rule, Bound(values))


def bind_original(rule, original, call, receiver):
    """The source's arguments bound (their value facts are keyed by the source's nodes); the converted call's where
    the source's cannot be bound and the converted call can (keyword-dicts: `torch.tensor(0, **dd)` given as
    `torch.tensor(0, device=device, dtype=dtype)`), so that the translation does not depend on a second pass."""
    try:
        return bind(original.args, rule.signature, receiver)
    except Flag:
        if not any(a.star == "**" for a in original.args) or any(a.star for a in call.args):
            raise
        return bind(call.args, rule.signature, receiver)


@register("tensor_dtype")
def tensor_dtype(rule, original, call, receiver, rewriter):
    bound = _bound(rule, call, receiver)
    data = bind_original(rule, original, call, receiver).get("data")
    if data is not None and rewriter.tensors.is_tensor(data):
        return _finish(rule, bound)  # a tensor keeps its dtype in both
    return _finish(rule, _infer_dtype(rule, bound, ("data",), _scope_ints(rewriter)))


@register("random_shape")
def random_shape(rule, original, call, receiver, rewriter):
    bound = _bound(rule, call, receiver)
    dtype = bound.get("dtype")
    if dtype is not None and _is_complex_dtype(dtype):
        raise Flag(f"MLX random functions draw real numbers only (dtype={code_of(dtype)}): for a complex tensor draw "
                   "the real and imaginary parts and combine them (a + 1j * b; torch's draw differs in scale for randn)")
    return _finish(rule, _fix_size(bound, _scope_tuples(rewriter), _scope_ints(rewriter)))


def _scope_tuples(context) -> frozenset:
    """The names of the innermost scope being converted that always hold tuples."""
    scopes = context.scopes
    return scopes[-1].tuple_names() if scopes else frozenset()


def _is_complex_dtype(dtype: cst.BaseExpression) -> bool:
    """`mx.complex64` written out (torch.complex64 / torch.cfloat, already translated)."""
    match = _MX_DTYPE.match(code_of(dtype))
    return match is not None and match.group(1) == "complex64"


_TYPE_STRINGS = {
    "FloatTensor": "float32", "HalfTensor": "float16", "BFloat16Tensor": "bfloat16",
    "LongTensor": "int64", "IntTensor": "int32", "ShortTensor": "int16", "CharTensor": "int8",
    "ByteTensor": "uint8", "BoolTensor": "bool_",
}
_MX_DTYPE = re.compile(rf"^{re.escape(sentinel('mx'))}\.(bool_|u?int(8|16|32|64)|float(16|32)|bfloat16|complex64)$")


@register("tensor_type")
def tensor_type(rule, original, call, receiver, rewriter):
    """`x.type(torch.float16)` / `x.type('torch.LongTensor')` -> `.astype(...)`; `x.type()` (a string) is flagged."""
    bound = _bound(rule, call, receiver)
    dtype = bound.get("dtype")
    if dtype is None:
        raise Flag("`.type()` without a dtype returns a type name string; use `x.dtype` in MLX")
    if isinstance(dtype, cst.SimpleString):
        name = dtype.evaluated_value
        short = name.replace("torch.cuda.", "").replace("torch.", "")
        if short not in _TYPE_STRINGS:
            raise Flag(f"no MLX dtype for the tensor type {name!r}")
        dtype = _mx_dtype(_TYPE_STRINGS[short])
    elif not (_MX_DTYPE.match(code_of(dtype)) or is_dtype_expression(dtype)):
        raise Flag(f"cannot tell whether `{code_of(dtype)}` is a dtype; translate by hand")
    values = dict(bound.values)
    values["dtype"] = dtype
    return _finish(rule, Bound(values))
