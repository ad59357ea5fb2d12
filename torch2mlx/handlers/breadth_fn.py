"""Breadth (issue 13, the torch / torch.linalg namespaces) calls a plain template cannot check.

- `tuple_result`: decompositions whose MLX function returns a plain tuple in the order of torch's named
  tuple (`mx.linalg.eigh` -> (eigenvalues, eigenvectors), `mx.linalg.qr` -> (Q, R), ...). Unpacking and
  indexing translate as they are; a field read on the call itself (`torch.linalg.eigh(A).eigenvalues`)
  is flagged with the index to write, since an MLX tuple has no such attribute.
"""
from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from torch2mlx.patterns import is_name
from torch2mlx.binding import Bound, Flag, bind, code_of
from torch2mlx.handlers import register
from torch2mlx.template import choose_template, expand, int_literal_value, is_int_literal, normalize, template_roots


@register("tuple_result")
def tuple_result(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    # a field read on the result (`torch.linalg.eigh(a).eigenvalues`) is the rewriter's: the translation returns
    # the tuple in the order of the rule's `namedtuple` fields, and the read becomes that item
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    template = choose_template(rule, bound)
    return expand(template, rule, bound), template_roots(template)



def _filled(rule, text: str, values: dict):
    """`text` with placeholders {t0}, {t1}, ... filled through the template engine (which adds the MLX import and
    flags an argument that would be evaluated twice unless it is a name or literal)."""
    return expand(text, rule, Bound(values)), template_roots(text)


@register("block_diag")
def block_diag(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """torch.block_diag(a, b, ...): each tensor (0-D, 1-D as one row, 2-D) padded with zero columns to the left
    (the widths of the tensors before it) and right (those after), then the rows stacked."""
    tensors = list(bind(call.args, rule.signature, receiver).get("tensors") or [])
    if not tensors:
        raise Flag("block_diag of no tensors")
    if len(tensors) == 1:
        return _filled(rule, "mx.atleast_2d({t0})", {"t0": tensors[0]})
    widths = [f"mx.atleast_2d({{t{i}}}).shape[1]" for i in range(len(tensors))]
    blocks = []
    for i in range(len(tensors)):
        left = " + ".join(widths[:i]) or "0"
        right = " + ".join(widths[i + 1:]) or "0"
        blocks.append(f"mx.pad(mx.atleast_2d({{t{i}}}), [(0, 0), ({left}, {right})])")
    return _filled(rule, f"mx.concatenate([{', '.join(blocks)}], axis=0)", {f"t{i}": t for i, t in enumerate(tensors)})


@register("cartesian_prod")
def cartesian_prod(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """torch.cartesian_prod(a, b, ...): the 'ij' meshgrid flattened into columns; one tensor is returned as it is."""
    tensors = list(bind(call.args, rule.signature, receiver).get("tensors") or [])
    if not tensors:
        raise Flag("cartesian_prod of no tensors")
    if len(tensors) == 1:
        return tensors[0], frozenset()
    args = ", ".join(f"{{t{i}}}" for i in range(len(tensors)))
    return _filled(rule, f"mx.stack([g.reshape(-1) for g in mx.meshgrid({args}, indexing='ij')], axis=-1)",
                   {f"t{i}": t for i, t in enumerate(tensors)})


@register("matrix_power")
def matrix_power(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """torch.linalg.matrix_power(A, n) for an integer literal n: n products of A (the identity for 0, the inverse
    for -1)."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    n = int_literal_value(bound.get("n"))
    if n is None:
        raise Flag(f"matrix_power: the exponent must be an integer literal: {code_of(bound.get('n'))}")
    if n < -1:  # torch: the inverse, then its power (the inverse of a name computes the same each time)
        text = " @ ".join(["mx.linalg.inv({t0}, stream=mx.cpu)"] * -n)
    elif n == 0:
        text = "mx.broadcast_to(mx.eye({t0}.shape[-1], dtype={t0}.dtype), {t0}.shape)"
    elif n == -1:
        text = "mx.linalg.inv({t0}, stream=mx.cpu)"
    else:
        text = " @ ".join(["{t0}"] * n)
    return _filled(rule, text, {"t0": bound.get("A")})


def _real_literal(node) -> Optional[float]:
    """The value of a real number literal (2, 3.5, -1, float('inf'), -float('inf'), math.inf); None otherwise."""
    if isinstance(node, (cst.Integer, cst.Float)):
        return float(node.evaluated_value)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        value = _real_literal(node.expression)
        return None if value is None else -value
    if (isinstance(node, cst.Call) and is_name(node.func, "float") and len(node.args) == 1
            and node.args[0].keyword is None and isinstance(node.args[0].value, cst.SimpleString)):
        text = node.args[0].value.evaluated_value.strip().lower()
        return {"inf": float("inf"), "+inf": float("inf"), "-inf": float("-inf")}.get(text)
    if isinstance(node, cst.Attribute) and is_name(node.value, "math") and node.attr.value == "inf":
        return float("inf")
    return None


@register("dist")
def dist(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """torch.dist(input, other, p): the p-norm of the flattened difference, for a literal p: 0 counts the nonzero
    differences (a NaN counts), inf / -inf take the largest / smallest magnitude, any other p
    (sum |d|^p)^(1/p)."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    node = bound.get("p")
    p = 2.0 if node is None else _real_literal(node)
    if p is None:
        raise Flag(f"torch.dist: the order p must be a number literal: {code_of(node)}")
    values = {"t0": bound.get("input"), "t1": bound.get("other")}
    if p == 2.0 and node is None:
        text = "mx.sqrt(mx.sum(mx.square(mx.abs({t0} - {t1}))))"  # abs: complex differences give a real norm
    elif p == 0:
        # 1 where the difference is nonzero (NaN included: NaN != 0), in the float dtype of the difference
        text = "mx.sum(mx.where({t0} - {t1} == 0, 0, 1).astype(({t0} - {t1}).dtype))"
    elif p == float("inf"):
        text = "mx.max(mx.abs({t0} - {t1}))"
    elif p == float("-inf"):
        text = "mx.min(mx.abs({t0} - {t1}))"
    else:
        text = f"mx.sum(mx.abs({{t0}} - {{t1}}) ** {code_of(node)}) ** (1 / {code_of(node)})"
    return _filled(rule, text, values)


@register("norm_dims")
def norm_dims(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """torch.norm(input, p, dim, keepdim) is, since torch 2.0, torch.linalg.vector_norm over `dim` (all dims when
    None) for a number p and for 'fro' (the default) over at most two dims, and torch.linalg.matrix_norm for 'nuc'.
    - 'fro' / 2 / None: mx.linalg.norm with no ord (the 2-norm of the flattened input, of one axis, or the Frobenius
      norm of two axes: the same sums); a dim that is not a literal (timm's GRN: `dim=self.spatial_dim`) or more
      than two dims: the sum of squares written out, right for an int, a tuple or None.
    - 'nuc': mx.linalg.norm(x, 'nuc') (both require a matrix: a 2-D input or a dim pair).
    - another number p: over no dim the flattened input, over one literal dim mx.linalg.norm's vector norm (its ord
      0 / inf / -inf / negative / fractional agree with torch); over a dim tuple or a dim that is not a literal, the
      reduction written out (mx.linalg.norm would take a matrix norm over two axes).
    - a p that is not a literal: taken as a number (a string there raises in MLX)."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    p_node, dim = bound.get("p"), bound.get("dim")
    values = {"t0": bound.get("input"), "t1": dim}
    axis = ", axis={t1}" if dim is not None else ""
    keep = ", keepdims=True" if bound.present("keepdim") else ""
    if isinstance(p_node, cst.SimpleString):
        if p_node.evaluated_value != "nuc":
            raise Flag(f"torch.norm: p={code_of(p_node)} is not a norm torch.norm computes ('fro', 'nuc' or a number)")
        if dim is not None and not (isinstance(dim, (cst.List, cst.Tuple)) and len(dim.elements) == 2
                                    and all(is_int_literal(e.value) for e in dim.elements)):
            raise Flag("torch.norm's nuclear norm takes a literal pair of dims")
        return _filled(rule, "mx.linalg.norm({t0}, 'nuc'" + axis + keep + ")", {k: v for k, v in values.items() if v is not None})
    if dim is None or is_int_literal(dim):  # the rule's variants: the flattened input, or one axis
        template = choose_template(rule, bound)
        return expand(template, rule, bound), template_roots(template)
    literal_dims = isinstance(dim, (cst.List, cst.Tuple)) and all(is_int_literal(e.value) for e in dim.elements)
    p = 2.0 if p_node is None or is_name(p_node, "None") else _real_literal(p_node)
    if p is None:
        raise Flag(f"torch.norm with an order that is not a literal ({code_of(p_node)}) over {code_of(dim)}: a vector "
                   "norm over those dims (mx.linalg.norm would take a matrix norm over two axes); write the reduction out")
    if p_node is None and literal_dims:
        if len(dim.elements) > 2:
            raise Flag("torch.norm's Frobenius norm takes at most two dims")
        template = choose_template(rule, bound)  # mx.linalg.norm over the axes: the Frobenius norm of a pair
        return expand(template, rule, bound), template_roots(template)
    # a vector norm over a dim tuple (or a dim that is not a literal: an int, a tuple or None), written out
    if p == 2.0:
        text = "mx.sqrt(mx.sum(mx.square(mx.abs({t0}))" + axis + keep + "))"
    elif p == 0:
        text = "mx.sum(({t0} != 0).astype({t0}.dtype)" + axis + keep + ")"
    elif p == float("inf"):
        text = "mx.max(mx.abs({t0})" + axis + keep + ")"
    elif p == float("-inf"):
        text = "mx.min(mx.abs({t0})" + axis + keep + ")"
    elif p == 1.0:
        text = "mx.sum(mx.abs({t0})" + axis + keep + ")"
    else:
        text = f"mx.sum(mx.abs({{t0}}) ** {code_of(p_node)}" + axis + keep + f") ** (1 / {code_of(p_node)})"
    return _filled(rule, text, values)


@register("diag_embed")
def diag_embed(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """torch.diag_embed(input, offset, dim1, dim2) for integer literals: the last axis of the input (padded by
    |offset| zeros before it for a positive offset, after it for a negative one) spread over an eye(n + |offset|, k)
    mask in the last two axes, then those two axes moved to dim1 and dim2 (dim1 before dim2, both of one sign)."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    literals = {}
    for name, default in (("offset", 0), ("dim1", -2), ("dim2", -1)):
        node = bound.get(name)
        literals[name] = default if node is None else int_literal_value(node)
        if literals[name] is None:
            raise Flag(f"diag_embed: {name} must be an integer literal: {code_of(node)}")
    k, dim1, dim2 = literals["offset"], literals["dim1"], literals["dim2"]
    if (dim1 < 0) != (dim2 < 0) or dim1 >= dim2:
        raise Flag("diag_embed: dim1 and dim2 of one sign with dim1 before dim2 are translated (swap them and negate "
                   "the offset, or write the axes from the same end)")
    if k == 0:
        text = "mx.where(mx.eye({t0}.shape[-1], dtype=mx.bool_), mx.expand_dims({t0}, -2), mx.array(0, dtype={t0}.dtype))"
    else:
        pad = f"({k}, 0)" if k > 0 else f"(0, {-k})"
        text = (f"mx.where(mx.eye({{t0}}.shape[-1] + {abs(k)}, k={k}, dtype=mx.bool_), "
                f"mx.expand_dims(mx.pad({{t0}}, [(0, 0)] * ({{t0}}.ndim - 1) + [{pad}]), -2), mx.array(0, dtype={{t0}}.dtype))")
    if (dim1, dim2) != (-2, -1):
        text = f"mx.moveaxis(mx.moveaxis({text}, -2, {dim1}), -1, {dim2})"
    return _filled(rule, text, {"t0": bound.get("input")})


@register("rot90")
def rot90(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """torch.rot90(x, k, dims) for literal k and dims: flips and a transpose, as ATen composes them (k = 1:
    flip dims[1] then swap; k = 2: flip both; k = 3: flip dims[0] then swap)."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    k = int_literal_value(bound.get("k")) if bound.present("k") else 1
    dims = bound.get("dims")
    if dims is None:
        d0, d1 = 0, 1
    else:
        items = [e.value for e in dims.elements] if isinstance(dims, (cst.List, cst.Tuple)) else []
        values = [int_literal_value(v) for v in items]
        if len(values) != 2 or None in values:
            raise Flag(f"rot90: dims must be a literal pair of integers: {code_of(dims)}")
        d0, d1 = values
    if k is None:
        raise Flag(f"rot90: k must be an integer literal: {code_of(bound.get('k'))}")
    text = {0: "{t0}", 1: f"mx.swapaxes(mx.flip({{t0}}, axis={d1}), {d0}, {d1})",
            2: f"mx.flip(mx.flip({{t0}}, axis={d0}), axis={d1})",
            3: f"mx.swapaxes(mx.flip({{t0}}, axis={d0}), {d0}, {d1})"}[k % 4]
    return _filled(rule, text, {"t0": bound.get("input")})


@register("tensor_split")
def tensor_split(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """torch.tensor_split(x, n, dim): n parts, the first len % n one element longer; with a literal list of
    indices, mx.split at those indices (numpy's array_split rule, which torch follows)."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    dim = bound.get("dim") if bound.present("dim") else cst.Integer("0")
    sections = bound.get("indices_or_sections")
    values = {"t0": bound.get("input"), "d": dim, "s": sections}
    if isinstance(sections, (cst.List, cst.Tuple)):
        return _filled(rule, "mx.split({t0}, {s}, axis={d})", values)
    n = int_literal_value(sections)
    if n is None:
        raise Flag(f"tensor_split: sections must be an integer literal or a literal list of indices: {code_of(sections)}")
    return _filled(rule, "mx.split({t0}, [i * ({t0}.shape[{d}] // {s}) + min(i, {t0}.shape[{d}] % {s}) "
                         "for i in range(1, {s})], axis={d})", values)


@register("constant_pad_nd")
def constant_pad_nd(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """torch.constant_pad_nd(x, pad, value): pad is (before, after) pairs from the last axis backwards; mx.pad
    takes one pair per axis from the first. A literal list of non-negative integers only (negative pads crop)."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    pad = bound.get("pad")
    items = [e.value for e in pad.elements] if isinstance(pad, (cst.List, cst.Tuple)) else None
    numbers = [int_literal_value(v) for v in items] if items is not None else None
    if not numbers or len(numbers) % 2 or any(n is None or n < 0 for n in numbers):
        raise Flag(f"constant_pad_nd: pad must be a literal list of (before, after) pairs of non-negative integers: "
                   f"{code_of(pad)}")
    pairs = [f"({numbers[i]}, {numbers[i + 1]})" for i in range(0, len(numbers), 2)][::-1]
    k = len(pairs)
    values = {"t0": bound.get("input"), "v": bound.get("value") if bound.present("value") else cst.Integer("0")}
    return _filled(rule, f"mx.pad({{t0}}, [(0, 0)] * ({{t0}}.ndim - {k}) + [{', '.join(pairs)}], constant_values={{v}})",
                   values)


@register("split_copy")
def split_copy(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """torch.split_copy(x, size, dim): parts of `size` along dim, the last one shorter."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    dim = bound.get("dim") if bound.present("dim") else cst.Integer("0")
    return _filled(rule, "mx.split({t0}, list(range({s}, {t0}.shape[{d}], {s})), axis={d})",
                   {"t0": bound.get("input"), "s": bound.get("split_size"), "d": dim})


# math functions whose value is a Python float whatever their arguments (math.floor / ceil / trunc give ints)
_MATH_FLOAT_FUNCS = frozenset({"log", "log2", "log10", "log1p", "exp", "expm1", "sqrt", "sin", "cos", "tan", "asin",
                               "acos", "atan", "atan2", "sinh", "cosh", "tanh", "erf", "erfc", "gamma", "lgamma",
                               "hypot", "pow", "fabs", "radians", "degrees"})


def _number_kind(node: cst.BaseExpression) -> Optional[str]:
    """'complex' or 'float' for literal data the creation handler cannot read: a complex literal (1 + 2j, 3j)
    or a float-valued math call (math.log(2.)) anywhere in nested lists / tuples of numbers; None otherwise
    (the creation handler decides)."""
    from torch2mlx.handlers.creation_literals import literal_kind

    def kind(n) -> Optional[str]:
        if isinstance(n, cst.Imaginary):
            return "complex"
        if (isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute) and isinstance(n.func.value, cst.Name)
                and n.func.value.value == "math" and n.func.attr.value in _MATH_FLOAT_FUNCS):
            return "float"
        if isinstance(n, cst.UnaryOperation) and isinstance(n.operator, (cst.Minus, cst.Plus)):
            return kind(n.expression)
        if isinstance(n, cst.BinaryOperation) and isinstance(n.operator, (cst.Add, cst.Subtract, cst.Multiply)):
            left, right = kind(n.left), kind(n.right)
            if left is None or right is None:
                return None
            return max(left, right, key=_KIND_RANK.__getitem__)
        if isinstance(n, (cst.List, cst.Tuple)):
            if not n.elements or any(not isinstance(e, cst.Element) for e in n.elements):
                return None
            kinds = [kind(e.value) for e in n.elements]
            return None if None in kinds else max(kinds, key=_KIND_RANK.__getitem__)
        return literal_kind(n)

    result = kind(node)
    return result if result in ("complex", "float") else None


_KIND_RANK = {"bool": 0, "int": 1, "float": 2, "complex": 3}


@register("tensor_literal_kinds")
def tensor_literal_kinds(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """torch.tensor: complex literal data is complex64 in torch (mx.array would infer it too, but the creation
    handler cannot read the type and flags it); data with float-valued math calls is float32 in both. Anything
    else goes to the creation handler (tensor_dtype: int64 for integer literals, flags unreadable data)."""
    from torch2mlx.handlers.creation_literals import bind_original, tensor_dtype

    bound = bind_original(rule, original, call, receiver)
    data = bound.get("data")
    if data is not None and not bound.present("dtype"):
        kind = _number_kind(data)
        if kind is not None:
            converted = normalize(rule, bind(call.args, rule.signature, receiver))
            template = "mx.array({data}, dtype=mx.complex64)" if kind == "complex" else "mx.array({data})"
            return expand(template, rule, converted), template_roots(template)
    return tensor_dtype(rule, original, call, receiver, rewriter)


# callees whose value is a new array nothing else holds: `out=` of one of them is only the result's dtype
_FRESH_ARRAYS = frozenset({"zeros", "ones", "empty", "full", "array", "zeros_like", "ones_like", "full_like",
                           "empty_like"})


def _fresh_array(node) -> bool:
    """A call that makes a new array (mx.zeros(...), mx.array(...)), already translated: no name sees it."""
    return (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in _FRESH_ARRAYS)


@register("fresh_out")
def fresh_out(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """`out=` of a new array (`torch.logical_and(a, b, out=torch.empty(4, dtype=torch.int16))`): torch writes
    the result into it, cast to its dtype, and nothing else holds it, so the value is the result cast to that
    dtype (the `out` variant). An `out=` a name or another expression may hold is flagged: MLX cannot write
    into it."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    out = bound.get("out")
    if out is not None and not _fresh_array(out):
        raise Flag(f"argument out={code_of(out)}: torch writes the result into that tensor and MLX has no out= "
                   "arguments; assign the result", "unsupported-arg")
    template = choose_template(rule, bound)
    return expand(template, rule, bound), template_roots(template)


# torch / torch.linalg names of linear algebra that mx.linalg runs on float32 / float64 only
_REAL_LINALG = re.compile(r"\b(linalg|cholesky\w*|inverse|pinverse|det|logdet|slogdet|solve\w*|triangular_solve|lu\w*|"
                          r"qr|eig\w*|matrix_\w+|svd\w*|lstsq|geqrf|orgqr|ormqr)\b")


def _complex_may_reach_linalg(rewriter) -> bool:
    """The file calls a linear-algebra function (mx.linalg takes float32 / float64 arrays only: a complex
    array reaching one raises)."""
    import ast
    scopes = rewriter.scopes
    module = scopes[0].node if scopes else None
    if module is None:
        return True
    for node in ast.walk(module):
        name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        if name is not None and _REAL_LINALG.fullmatch(name):
            return True
    return False


@register("random_complex")
def random_complex(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """torch.randn / torch.rand with dtype=torch.complex64 (cfloat): torch draws the real and imaginary parts
    interleaved, N(0, 1/2) each for randn (mx.random.normal's complex64 draw: the same distribution) and
    U[0, 1) each for rand (a uniform draw of shape + (2,) viewed as complex64). Flagged in a file that also
    does linear algebra (mx.linalg takes real arrays only). Any other dtype: the creation handler."""
    from torch2mlx.handlers.creation_literals import random_shape

    bound = bind(call.args, rule.signature, receiver)
    dtype = bound.get("dtype")
    if dtype is None or not re.search(r"\.complex64$", code_of(dtype)):
        return random_shape(rule, original, call, receiver, rewriter)
    if _complex_may_reach_linalg(rewriter):
        raise Flag(f"a complex draw (dtype={code_of(dtype)}) in a file that does linear algebra: mx.linalg takes "
                   "float32 / float64 arrays only; draw the real and imaginary parts and keep the linear algebra "
                   "real (or run it with numpy on the host)", "no-equivalent")
    rest = call.with_changes(args=[a for a in call.args if not (a.keyword is not None and a.keyword.value == "dtype")])
    drawn, _ = random_shape(rule, original, rest, receiver, rewriter)
    shape = next((a.value for a in drawn.args if a.keyword is None or a.keyword.value == "shape"), None)
    if shape is None:
        raise Flag("a complex draw without a shape")
    if "uniform" in code_of(drawn.func):
        if isinstance(shape, (cst.Tuple, cst.List)):
            pairs = shape.with_changes(elements=[*[e.with_changes(comma=cst.MaybeSentinel.DEFAULT) for e in shape.elements],
                                                 cst.Element(cst.Integer("2"))])
            if isinstance(pairs, cst.List):
                pairs = cst.Tuple(elements=pairs.elements)
            return _filled(rule, "mx.view(mx.random.uniform(shape={s}), mx.complex64).squeeze(-1)", {"s": pairs})
        return _filled(rule, "mx.view(mx.random.uniform(shape=(*{s}, 2)), mx.complex64).squeeze(-1)", {"s": shape})
    return _filled(rule, "mx.random.normal({s}, dtype=mx.complex64)", {"s": shape})


def _sublist_letters(node) -> Optional[str]:
    """The einsum subscripts of a literal sublist ([0, 1], [..., 0, 2]): 'ab', '...ac'; None if not one."""
    if not isinstance(node, (cst.List, cst.Tuple)) or not node.elements:
        return None
    out = ""
    for e in node.elements:
        if not isinstance(e, cst.Element):
            return None
        if isinstance(e.value, cst.Ellipsis):
            out += "..."
            continue
        n = int_literal_value(e.value)
        if n is None or not 0 <= n < 52:
            return None
        out += "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[n]
    return out


@register("einsum_sublist")
def einsum_sublist(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """torch.einsum(a, [0, 1], b, [1, 2], [0, 2]) (operands each followed by a literal list of axis numbers,
    an optional output list last): the equation string written from the lists (number i is the i-th letter,
    Ellipsis '...'), then mx.einsum. Any other form: the einsum handler."""
    from torch2mlx.handlers.math_ops import math_einsum

    args = list(call.args)
    if (len(args) >= 2 and all(a.keyword is None and a.star == "" for a in args)
            and _sublist_letters(args[1].value) is not None):
        pairs = args[:len(args) - len(args) % 2]
        inputs = [_sublist_letters(a.value) for a in pairs[1::2]]
        output = _sublist_letters(args[-1].value) if len(args) % 2 else None
        if None in inputs or (len(args) % 2 and output is None):
            raise Flag("the sublist form of torch.einsum with lists that are not literal axis numbers: write the "
                       "equation string, e.g. mx.einsum('ij,jk->ik', a, b)")
        equation = ",".join(inputs) + (f"->{output}" if output is not None else "")
        values = {f"t{i}": a.value for i, a in enumerate(pairs[0::2])}
        operands = ", ".join(f"{{t{i}}}" for i in range(len(values)))
        return _filled(rule, f"mx.einsum({equation!r}, {operands})", values)
    return math_einsum(rule, original, call, receiver, rewriter)


@register("fft_axes")
def fft_axes(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """torch.fft.fft2 / fftn / rfft2 / ... take an int for dim= and s= as well as a sequence (`fftn(x, dim=-1)`);
    mx.fft's axes= and s= take only a sequence (an int raised): an integer literal becomes a one-element tuple."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    values = dict(bound.values)
    for name in ("dim", "s"):
        node = values.get(name)
        if node is not None and is_int_literal(node):
            values[name] = cst.parse_expression(f"({code_of(node)},)")
    bound = Bound(values)
    template = choose_template(rule, bound)
    return expand(template, rule, bound), template_roots(template)
