"""Shape and indexing calls a template cannot express (rules/shape.yaml, rules/indexing.yaml).

- `x.view(...)` / `x.reshape(...)`: one int becomes a 1-tuple (`mx.reshape` takes no int);
  `x.view(dtype)` is a bit-cast and is flagged.
- `x.expand(...)` / `torch.broadcast_to`: a literal -1 keeps that dim; it becomes
  `x.shape[-k]` (sizes align from the right, and -1 is not allowed for new leading dims).
- `torch.narrow` / `torch.select`: a subscript on the right axis.
- `index_add`: `.at[...].add(...)`, which accumulates repeated indices (scatter_add: local_helpers.py).
- `torch.meshgrid` / `torch.atleast_*d`: torch varargs (or one list) become MLX varargs.
- `torch.hstack`: concatenation on axis 0 for 1-D inputs, axis 1 otherwise.
"""
from __future__ import annotations

import re

import libcst as cst

from torch2mlx.binding import Bound, Flag, bind, code_of
from torch2mlx.handlers import register
from torch2mlx.tensors import attribute_chain
from torch2mlx.template import expand, int_literal_value, is_simple, normalize, sentinel

_MX = re.escape(sentinel("mx"))
_DTYPE = re.compile(rf"^({_MX}\.(bool_|u?int(8|16|32|64)|float(16|32|64)|bfloat16|complex64)|torch\.\w+)$")


_DTYPE_NAMES = re.compile(r"^(bool_|u?int(8|16|32|64)|float(16|32|64)|bfloat16|complex64)$")


def _is_mlx_dtype(node, rewriter) -> bool:
    """`mx.uint8` under the file's own alias of mlx.core, as converted code has it (a second pass): the same bit-cast."""
    chain = attribute_chain(node)
    return chain is not None and len(chain) == 2 and bool(_DTYPE_NAMES.match(chain[1])) and rewriter.tensors.is_mlx_core(chain[0])


def _bound(rule, call, receiver) -> Bound:
    return normalize(rule, bind(call.args, rule.signature, receiver))


def _with(bound: Bound, **extra) -> Bound:
    return Bound({**bound.values, **extra})


def _axis_prefix(dim: cst.BaseExpression) -> str:
    """Subscript text that puts the next index on axis `dim` (a literal int), e.g. ':, ' or '..., '."""
    d = int_literal_value(dim)
    if d is None:
        raise Flag(f"dim must be an integer literal to write a subscript: {code_of(dim)}")
    return ":, " * d if d >= 0 else "..., "


def _axis_suffix(dim: cst.BaseExpression) -> str:
    d = int_literal_value(dim)
    assert d is not None
    return "" if d >= 0 else ", :" * (-d - 1)


@register("shape_reshape")
def shape_reshape(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    if receiver is not None and len(call.args) == 1 and call.args[0].star == "*":
        # x.view(*shape): the sequence itself is the shape
        bound = Bound({"input": receiver, "shape": [call.args[0].value]})
        return expand("mx.reshape({input}, {shape})", rule, bound), frozenset({"mx"})
    if receiver is not None and len(call.args) > 1 and all(a.keyword is None and a.star in ("", "*") for a in call.args) \
            and any(a.star == "*" for a in call.args):
        # x.reshape(*input_shape, -1): with two positionals or more torch reads each as one size (the varargs form;
        # a sequence among them is a TypeError, as in MLX), so the shape is the tuple they spell
        if any(a.star == "" and _DTYPE.match(code_of(a.value)) for a in call.args):
            raise Flag("`view(dtype)` reinterprets the bits; use mx.view(x, dtype) by hand after checking the itemsizes", "no-equivalent")
        shape = cst.Tuple([cst.StarredElement(a.value) if a.star == "*" else cst.Element(a.value) for a in call.args])
        bound = Bound({"input": receiver, "shape": [shape]})
        return expand("mx.reshape({input}, {shape})", rule, bound), frozenset({"mx"})
    bound = _bound(rule, call, receiver)
    if bound.present("dtype"):
        raise Flag("`view(dtype)` reinterprets the bits; use mx.view(x, dtype) by hand after checking the itemsizes", "no-equivalent")
    shape = bound.get("shape")
    if not shape:
        raise Flag("missing shape")
    if len(shape) == 1:
        only = shape[0]
        if _DTYPE.match(code_of(only)) or _is_mlx_dtype(only, rewriter):
            raise Flag("`view(dtype)` reinterprets the bits; use mx.view(x, dtype) by hand after checking the itemsizes", "no-equivalent")
        if int_literal_value(only) is not None:
            return expand("mx.reshape({input}, ({_n},))", rule, _with(bound, _n=only)), frozenset({"mx"})
    return expand("mx.reshape({input}, {shape})", rule, bound), frozenset({"mx"})


@register("shape_expand")
def shape_expand(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = _bound(rule, call, receiver)
    sizes = bound.get("size")
    if sizes is None:
        raise Flag("missing size")
    if isinstance(sizes, list) and len(sizes) == 1:
        sizes = sizes[0]
    if isinstance(sizes, (cst.Tuple, cst.List)):
        items = [e.value for e in sizes.elements]
        if any(isinstance(e, cst.StarredElement) for e in sizes.elements):
            raise Flag("cannot read a starred size")
    elif isinstance(sizes, list):
        items = sizes
    else:
        # one size expression (a torch.Size, a variable, or one int)
        if int_literal_value(sizes) is not None:
            if int_literal_value(sizes) == -1:
                return bound.get("input"), frozenset()
            return expand("mx.broadcast_to({input}, ({_s},))", rule, _with(bound, _s=sizes)), frozenset({"mx"})
        return expand("mx.broadcast_to({input}, {_s})", rule, _with(bound, _s=sizes)), frozenset({"mx"})
    k = len(items)
    parts, extra = [], {}
    for i, item in enumerate(items):
        if int_literal_value(item) == -1:
            if not is_simple(bound.get("input")):
                raise Flag(f"expand(-1, ...) reads the tensor's shape: assign `{code_of(bound.get('input'))}` to a name first")
            parts.append(f"{{input}}.shape[{i - k}]")
        else:
            extra[f"_s{i}"] = item
            parts.append(f"{{_s{i}}}")
    shape = "(" + ", ".join(parts) + ("," if k == 1 else "") + ")"
    return expand("mx.broadcast_to({input}, " + shape + ")", rule, _with(bound, **extra)), frozenset({"mx"})


@register("shape_narrow")
def shape_narrow(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = _bound(rule, call, receiver)
    dim, start = bound.get("dim"), bound.get("start")
    s = int_literal_value(start)
    if int_literal_value(dim) is not None and s is not None and s >= 0:
        length = int_literal_value(bound.get("length"))
        stop = str(s + length) if length is not None else f"{s} + {{length}}" if s else "{length}"
        text = "{input}[" + _axis_prefix(dim) + f"{s or ''}:{stop}" + _axis_suffix(dim) + "]"
        return expand(text, rule, bound), frozenset()
    # start read once, and an int or a 0-d array alike (torch's docstring passes torch.tensor(1)); mx.arange takes
    # Python numbers only
    return expand("mx.take({input}, {start} + mx.arange({length}), axis={dim})", rule, bound), frozenset({"mx"})


@register("shape_select")
def shape_select(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = _bound(rule, call, receiver)
    dim = bound.get("dim")
    if int_literal_value(dim) is not None:
        text = "{input}[" + _axis_prefix(dim) + "{index}" + _axis_suffix(dim) + "]"
        return expand(text, rule, bound), frozenset()
    return expand("mx.take({input}, {index}, axis={dim})", rule, bound), frozenset({"mx"})


@register("shape_index_add")
def shape_index_add(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = _bound(rule, call, receiver)
    dim = bound.get("dim")
    value = "{source}" if not bound.present("alpha") else "{source} * {alpha}"
    text = "{input}.at[" + _axis_prefix(dim) + "{index}" + _axis_suffix(dim) + "].add(" + value + ")"
    return expand(text, rule, bound), frozenset()


def _splat(rule, call, receiver, name):
    bound = _bound(rule, call, receiver)
    items = bound.get(name) or []
    if len(items) == 1:
        only = items[0]
        if isinstance(only, (cst.List, cst.Tuple)):
            if any(isinstance(e, cst.StarredElement) for e in only.elements):
                raise Flag("cannot read a starred element")
            items = [e.value for e in only.elements]
    return bound, items


@register("shape_meshgrid")
def shape_meshgrid(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound, items = _splat(rule, call, receiver, "tensors")
    if len(items) == 1 and not rewriter.tensors.is_tensor(original.args[0].value):
        raise Flag("one argument that may be a list of tensors: write the tensors out, or annotate it torch.Tensor")
    extra = {f"_t{i}": v for i, v in enumerate(items)}
    args = ", ".join(f"{{_t{i}}}" for i in range(len(items)))
    return expand("mx.meshgrid(" + args + ", indexing={indexing})", rule, _with(bound, **extra)), frozenset({"mx"})


@register("shape_atleast")
def shape_atleast(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound, items = _splat(rule, call, receiver, "tensors")
    fn = rule.mlx.split("(", 1)[0]
    single_list = len(call.args) == 1 and isinstance(call.args[0].value, (cst.List, cst.Tuple))
    if len(call.args) == 1 and not single_list and not rewriter.tensors.is_tensor(original.args[0].value):
        raise Flag("one argument that may be a list of tensors: write the tensors out, or annotate it torch.Tensor")
    extra = {f"_t{i}": v for i, v in enumerate(items)}
    args = ", ".join(f"{{_t{i}}}" for i in range(len(items)))
    text = fn + "(" + args + ")"
    if single_list and len(items) == 1:
        text = "(" + text + ",)"  # torch returns a tuple for a sequence argument
    return expand(text, rule, _with(bound, **extra)), frozenset({"mx"})


@register("shape_hstack")
def shape_hstack(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = _bound(rule, call, receiver)
    tensors = bound.get("tensors")
    if isinstance(tensors, (cst.List, cst.Tuple)) and tensors.elements and is_simple(tensors.elements[0].value):
        first = tensors.elements[0].value
        text = "mx.concatenate({tensors}, axis=0 if {_f}.ndim == 1 else 1)"
        return expand(text, rule, _with(bound, _f=first)), frozenset({"mx"})
    if is_simple(tensors):
        return expand("mx.concatenate({tensors}, axis=0 if {tensors}[0].ndim == 1 else 1)", rule, bound), frozenset({"mx"})
    raise Flag("hstack picks the axis from the first tensor's ndim: pass a list of names")
