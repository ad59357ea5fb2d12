"""torch.index_select (rules/indexing.yaml): torch's index is 1-D or 0-D, and a 0-D index keeps the
selected axis (size 1) where `mx.take` with a 0-D index drops it.

The index is written as `mx.flatten(index)` (a no-op on 1-D, (1,) from 0-D) unless the converted
index is 1-D by construction: `mx.flatten(...)`, `mx.arange(...)`, `mx.reshape(..., (-1,))`, or
`mx.array([...])` of a flat list.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import bind
from torch2mlx.handlers import register
from torch2mlx.template import expand, int_literal_value, normalize, sentinel

_MX = sentinel("mx")


def _mx_call(node, *names) -> bool:
    func = node.func if isinstance(node, cst.Call) else None
    return (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
            and func.value.value in (_MX, "mx") and func.attr.value in names)


def _minus_one(node) -> bool:
    if isinstance(node, (cst.Tuple, cst.List)) and len(node.elements) == 1:
        node = node.elements[0].value
    return int_literal_value(node) == -1


def _one_dimensional(node: cst.BaseExpression) -> bool:
    """The converted index is 1-D whatever its inputs."""
    if _mx_call(node, "arange") or _mx_call(node, "flatten") and len(node.args) == 1:
        return True
    if _mx_call(node, "reshape"):
        return len(node.args) == 2 and _minus_one(node.args[1].value)
    if _mx_call(node, "array") and node.args and isinstance(node.args[0].value, cst.List):
        return all(isinstance(e, cst.Element) and not isinstance(e.value, (cst.List, cst.Tuple))
                   for e in node.args[0].value.elements)
    return False


@register("index_select")
def index_select(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    template = rule.mlx
    if not _one_dimensional(bound.get("index")):
        template = template.replace("{index}", "mx.flatten({index})")
    return expand(template, rule, bound), frozenset({"mx"})
