"""`torch.split(x, sizes)` when the source does not show whether `sizes` is one chunk size or a list
(rules/shape.yaml, torch.split).

The generic handler (split_sizes.py) writes the split indices out when it can read the argument's kind
(a list display, an int) and flags the rest: `x.split([self.qkv_dim] * 3, dim=-1)`,
`torch.linspace(...).split(config.depths)`. Both kinds are exact at run time through the local helper
`split_by_sizes(x, sizes, axis)`, torch's rule written out: an int is the size of every chunk (the last
may be smaller), a sequence the size of each chunk; the tensor and the sizes are evaluated once.
"""
from __future__ import annotations

import ast

import libcst as cst

from torch2mlx.binding import Bound, Flag, bind
from torch2mlx.handlers import register
from torch2mlx.handlers.creation_literals import literal_kind
from torch2mlx.handlers.local_helpers import expand_with_helpers
from torch2mlx.handlers.split_sizes import _pure, split_sizes
from torch2mlx.template import expand, int_literal_value, is_simple, normalize

HELPERS = {
    "split_by_sizes": '''
def split_by_sizes(x, sizes, axis=0):
    """PyTorch's split: an int is the size of every chunk (the last may be smaller); a sequence gives each chunk's size."""
    if isinstance(sizes, int):
        return mx.split(x, list(range(sizes, x.shape[axis], sizes)), axis=axis)
    indices, total = [], 0
    for size in list(sizes)[:-1]:
        total += size
        indices.append(total)
    return mx.split(x, indices, axis=axis)
''',
}


@register("split_sizes_any")
def split_sizes_any(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound: Bound = normalize(rule, bind(call.args, rule.signature, receiver))
    sizes = bound.get("split_size_or_sections")
    scopes = rewriter.scopes
    ints = scopes[-1].int_names() if scopes else frozenset()
    known_int = int_literal_value(sizes) is not None or (literal_kind(sizes, ints) == "int" and _pure(sizes))
    if isinstance(sizes, (cst.List, cst.Tuple)) or (known_int and is_simple(bound.get("tensor"))):
        return split_sizes(rule, original, call, receiver, rewriter)  # the indices written out
    template = "split_by_sizes({tensor}, {split_size_or_sections}, {dim})"
    return expand_with_helpers(rewriter, template, rule, bound, HELPERS), frozenset({"mx"})


CHUNK_HELPERS = {
    "chunk_by_count": '''
def chunk_by_count(x, chunks, axis=0):
    """PyTorch's chunk: chunks of ceil(n / chunks) along axis (the last smaller, possibly fewer chunks)."""
    step = -(-x.shape[axis] // chunks)
    return mx.split(x, list(range(step, x.shape[axis], step)), axis=axis)
''',
}


@register("chunk_any")
def chunk_any(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """torch.chunk: `mx.split(x, chunks, axis=dim)` where the size along dim is known to be a multiple of chunks (torch's
    chunks are then equal: what mx.split makes); else the rule's template, which reads the input, chunks and dim
    several times and so needs them as names or literals; anything else goes through the local helper
    chunk_by_count (each evaluated once)."""
    bound: Bound = normalize(rule, bind(call.args, rule.signature, receiver))
    if _divides(rewriter, original, rule):
        return expand("mx.split({input}, {chunks}, axis={dim})", rule, bound), frozenset({"mx"})
    if all(is_simple(bound.get(name)) for name in ("input", "chunks", "dim") if bound.present(name)):
        return expand(rule.mlx, rule, bound), frozenset({"mx"})
    template = "chunk_by_count({input}, {chunks}, {dim})"
    return expand_with_helpers(rewriter, template, rule, bound, CHUNK_HELPERS), frozenset({"mx"})


# creation calls whose positional arguments are the sizes: `torch.randn(4, 6)`, `torch.zeros((2, 9))`
_SIZED = frozenset({"torch.randn", "torch.rand", "torch.zeros", "torch.ones", "torch.empty"})


def _divides(rewriter, original: cst.Call, rule) -> bool:
    """The size of the chunked axis is a known multiple of a literal `chunks` (so torch.chunk makes `chunks` equal
    pieces): the input is `self.<name>(...)`, in a method of the class whose only store of `self.<name>` is an
    `nn.Linear` with `out_features` an int literal or `<expr> * <int literal>` that chunks divides, chunked on the
    last axis (`self.qkv(x).chunk(3, dim=-1)` with `self.qkv = nn.Linear(dim, dim * 3)`); or a creation call with
    literal sizes (`torch.randn(4, 6).chunk(2, 1)`)."""
    method = isinstance(original.func, cst.Attribute) and rewriter.qualified_name(original.func) is None
    try:
        bound = bind(original.args, rule.signature, original.func.value if method else None)
    except Flag:
        return False
    chunks = int_literal_value(bound.get("chunks")) if bound.present("chunks") else None
    dim = int_literal_value(bound.get("dim")) if bound.present("dim") else 0
    source = bound.get("input")
    if chunks is None or chunks < 1 or dim is None or not isinstance(source, cst.Call):
        return False
    size = _literal_size(rewriter, source, dim)
    if size is None and dim == -1:
        size = _linear_out_features(rewriter, source)
    if isinstance(size, int):
        return size > 0 and size % chunks == 0
    return size is not None and any(k % chunks == 0 for k in size)


def _literal_size(rewriter, call: cst.Call, dim: int):
    """The size along `dim` of `torch.randn(4, 6)`-style creation calls whose sizes are int literals, else None."""
    if rewriter.qualified_name(call.func) not in _SIZED or not call.args or any(a.keyword or a.star for a in call.args):
        return None
    values = [a.value for a in call.args]
    if len(values) == 1 and isinstance(values[0], (cst.Tuple, cst.List)):
        values = [e.value for e in values[0].elements]
    sizes = [int_literal_value(v) for v in values]
    if not sizes or any(n is None for n in sizes) or not -len(sizes) <= dim < len(sizes):
        return None
    return sizes[dim]


def _linear_out_features(rewriter, call: cst.Call):
    """For `self.<name>(...)` in a method: the class's one store of `self.<name>` is `nn.Linear(in, out, ...)`; `out`
    as an int (a literal) or as the int factors it is a multiple of (`dim * 3`: (3,)); else None."""
    func = call.func
    scopes = rewriter.scopes
    if not (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self"
            and len(scopes) >= 2 and scopes[-1].kind == "function" and scopes[-2].kind == "class"):
        return None
    cls, module = scopes[-2], scopes[0]
    if cls.node is None or module.node is None:
        return None
    stores = [node for node in ast.walk(module.node) if _stores_self_attribute(node, func.attr.value)]
    if len(stores) != 1:
        return None  # set elsewhere too (another class, a second assignment, `+=`): not one known layer
    value = next((node.value for node in ast.walk(cls.node) if isinstance(node, ast.Assign)
                  and len(node.targets) == 1 and node.targets[0] is stores[0]), None)
    if not isinstance(value, ast.Call) or _qualified(cls, value.func) != "torch.nn.Linear":
        return None
    out = value.args[1] if len(value.args) >= 2 else next((k.value for k in value.keywords if k.arg == "out_features"), None)
    if isinstance(out, ast.Constant) and type(out.value) is int:
        return out.value
    if isinstance(out, ast.BinOp) and isinstance(out.op, ast.Mult):
        return tuple(side.value for side in (out.left, out.right) if isinstance(side, ast.Constant) and type(side.value) is int) or None
    return None


def _stores_self_attribute(node: ast.AST, name: str) -> bool:
    """A store of `self.<name>`: `self.<name> = ...`, `+=`, a tuple or `with` target (all counted: the layer is known
    only where it is set once, by a plain assignment of the class)."""
    if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
        return node.attr == name and isinstance(node.value, ast.Name) and node.value.id == "self"
    return False


def _qualified(scope, node: ast.AST):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    root = scope.resolve(node.id)
    return ".".join([root, *reversed(parts)]) if root is not None else None
