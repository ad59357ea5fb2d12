"""`torch.split(x, size_or_sizes, dim)`: torch takes chunk *sizes*, `mx.split` takes split *indices*."""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Bound, Flag, bind, code_of
from torch2mlx.handlers import register
from torch2mlx.handlers.creation_literals import literal_kind
from torch2mlx.template import expand, int_literal_value, is_simple, normalize


@register("split_sizes")
def split_sizes(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    sizes = bound.get("split_size_or_sections")
    if isinstance(sizes, (cst.List, cst.Tuple)):
        return _split_at_sums(rule, bound, sizes)
    scopes = rewriter.scopes
    ints = scopes[-1].int_names() if scopes else frozenset()
    if int_literal_value(sizes) is not None or (literal_kind(sizes, ints) == "int" and _pure(sizes)):
        tensor = bound.get("tensor")
        if not is_simple(tensor):
            raise Flag(f"split by size needs the tensor as a plain name (it is read twice): {code_of(tensor)}")
        # an int expression (`h // 2`) is read twice: cheap and side-effect free, so each use gets its own copy
        bound = Bound({**bound.values, "_step": sizes.deep_clone()})
        template = "mx.split({tensor}, list(range({split_size_or_sections}, {tensor}.shape[{dim}], {_step})), axis={dim})"
        return expand(template, rule, bound), frozenset({"mx"})
    raise Flag(f"cannot tell whether `{code_of(sizes)}` is one chunk size or a list of sizes (mx.split takes split "
               "indices, computed differently for each): write an int or a list")


def _split_at_sums(rule, bound: Bound, sizes: cst.BaseExpression):
    """`[a, b, c]` (torch's sizes) -> split indices `[a, a + b]`: exact for any ints (torch requires ints)."""
    if any(not isinstance(e, cst.Element) for e in sizes.elements):
        raise Flag("split sizes must be written out (no starred element) for an exact translation")
    elements = [e.value for e in sizes.elements]
    if not all(_pure(v) for v in elements):
        raise Flag("split sizes must be names, attributes, literals or arithmetic of those for an exact translation")
    literal = [int_literal_value(v) for v in elements]
    if all(v is not None for v in literal):
        indices = [str(sum(literal[:i + 1])) for i in range(len(literal) - 1)]
    else:  # sizes summed in the template, each use its own copy (the expander parenthesises where needed)
        indices, copies = [], {}
        for i in range(len(elements) - 1):
            for j in range(i + 1):
                copies[f"_size{i}_{j}"] = elements[j].deep_clone()
            indices.append(" + ".join(f"{{_size{i}_{j}}}" for j in range(i + 1)))
        bound = Bound({**bound.values, **copies})
    if not indices:
        return expand("[{tensor}]", rule, bound), frozenset()
    template = "mx.split({tensor}, [" + ", ".join(indices) + "], axis={dim})"
    return expand(template, rule, bound), frozenset({"mx"})


def _pure(node: cst.BaseExpression) -> bool:
    """Safe to read more than once: what `is_simple` accepts, and arithmetic of it (`h // 2`, `n - 1`)."""
    if is_simple(node):
        return True
    if isinstance(node, cst.BinaryOperation):
        return _pure(node.left) and _pure(node.right)
    if isinstance(node, cst.UnaryOperation):
        return _pure(node.expression)
    return False
