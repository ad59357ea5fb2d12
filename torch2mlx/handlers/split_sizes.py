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
        template = "mx.split({tensor}, list(range({split_size_or_sections}, {tensor}.shape[{dim}], {split_size_or_sections})), axis={dim})"
        return _expand_reading_twice(template, rule, bound), frozenset({"mx"})
    raise Flag(f"cannot tell whether `{code_of(sizes)}` is one chunk size or a list of sizes (mx.split takes split "
               "indices, computed differently for each): write an int or a list")


def _split_at_sums(rule, bound: Bound, sizes: cst.BaseExpression):
    """`[a, b, c]` (torch's sizes) -> split indices `[a, a + b]`: exact for any ints (torch requires ints)."""
    elements = [e.value for e in sizes.elements]
    if any(not isinstance(e, cst.Element) for e in sizes.elements) or not all(_pure(v) for v in elements):
        raise Flag("split sizes must be integers written out (names, attributes or literals) for an exact translation")
    literal = [int_literal_value(v) for v in elements]
    if all(v is not None for v in literal):
        indices = [str(sum(literal[:i + 1])) for i in range(len(literal) - 1)]
    else:
        indices = [" + ".join(_parenthesized(code_of(v)) for v in elements[:i + 1]) for i in range(len(elements) - 1)]
    if not indices:
        return expand("[{tensor}]", rule, bound), frozenset()
    template = "mx.split({tensor}, [" + ", ".join(indices) + "], axis={dim})"
    return expand(template, rule, bound), frozenset({"mx"})


def _parenthesized(code: str) -> str:
    return code if code.replace("_", "").replace(".", "").isalnum() else f"({code})"


def _pure(node: cst.BaseExpression) -> bool:
    """Safe to read more than once: names, attribute chains, int literals, `x.shape[i]`, and arithmetic of those."""
    if is_simple(node):
        return True
    if isinstance(node, cst.BinaryOperation):
        return _pure(node.left) and _pure(node.right)
    if isinstance(node, cst.UnaryOperation):
        return _pure(node.expression)
    return False


def _expand_reading_twice(template: str, rule, bound: Bound) -> cst.BaseExpression:
    """`expand`, with a pure size expression (`h // 2`) allowed to appear twice."""
    size = bound.get("split_size_or_sections")
    if is_simple(size):
        return expand(template, rule, bound)
    text = template.replace("{split_size_or_sections}", "(" + code_of(size) + ")")
    return expand(text, rule, bound)
