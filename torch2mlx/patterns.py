"""Typed syntax patterns over libcst trees: what plugins ask of a node, without `libcst.matchers`.

`libcst.matchers` defines a dataclass for every node type when imported, which costs about as much
CPU as importing libcst itself (measured: 0.22 s vs 0.20 s for `import libcst, yaml, click, rich`),
paid by every run, since transform discovery imports every plugin module. These few functions cover
what the converter matches: a name or literal of a given value, `self.<attr>`, and every node of some
types under a node (`find`, in the order libcst's `findall` gives: depth first, parents first).
"""
from __future__ import annotations

from typing import Callable, Optional, Union

import libcst as cst

Kinds = Union[type, tuple]


def is_name(node: Optional[cst.CSTNode], *values: str) -> bool:
    """`node` is a plain name, one of `values` if any are given (`is_name(x, "False")`)."""
    return isinstance(node, cst.Name) and (not values or node.value in values)


def is_integer(node: Optional[cst.CSTNode], value: str) -> bool:
    """`node` is an integer literal written `value` (`0`, not `00` or `0x0`)."""
    return isinstance(node, cst.Integer) and node.value == value


def is_self_attribute(node: Optional[cst.CSTNode], attr: Optional[str] = None) -> bool:
    """`self.<attr>` (any attribute of `self` when `attr` is None)."""
    return (isinstance(node, cst.Attribute) and is_name(node.value, "self")
            and (attr is None or node.attr.value == attr))


def dotted(node: Optional[cst.CSTNode]) -> Optional[str]:
    """`a.b.c` for a name or a chain of attributes of one (`model.fc.weight`), read from the tree (parentheses and
    spaces as written do not matter); None for anything else (a call, a subscript)."""
    parts = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, cst.Name):
        return None
    parts.append(node.value)
    return ".".join(reversed(parts))


def is_method_call(node: Optional[cst.CSTNode], receiver: str, method: str) -> bool:
    """`<receiver>.<method>()` with no arguments (`is_method_call(x, "model", "parameters")`; `receiver` dotted)."""
    return (isinstance(node, cst.Call) and not node.args and isinstance(node.func, cst.Attribute)
            and node.func.attr.value == method and dotted(node.func.value) == receiver)


def is_string(node: Optional[cst.CSTNode], *values: str) -> bool:
    """`node` is a plain string literal (not bytes, not an f-string) whose value is one of `values`."""
    if not isinstance(node, cst.SimpleString) or "b" in node.prefix.lower():
        return False
    value = node.evaluated_value
    return isinstance(value, str) and value in values


def index_of(node: Optional[cst.CSTNode]) -> Optional[cst.BaseExpression]:
    """The index of `x[i]` (one plain index, not a slice, not starred); None for anything else."""
    if not isinstance(node, cst.Subscript) or len(node.slice) != 1:
        return None
    index = node.slice[0].slice
    return index.value if isinstance(index, cst.Index) and index.star is None else None


class _Find(cst.CSTVisitor):
    def __init__(self, kinds: Kinds, where: Optional[Callable[[cst.CSTNode], bool]]) -> None:
        super().__init__()
        self.kinds, self.where = kinds, where
        self.found: list = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, self.kinds) and (self.where is None or self.where(node)):
            self.found.append(node)
        return True


def find(tree: cst.CSTNode, kinds: Kinds, where: Optional[Callable[[cst.CSTNode], bool]] = None) -> list:
    """Every node of `kinds` in `tree` (itself included) for which `where` holds, depth first, parents first."""
    finder = _Find(kinds, where)
    tree.visit(finder)
    return finder.found


def names_in(module: cst.CSTNode):
    """Every name the tree reads or binds (not attribute names, `x.qkv`, nor keywords, `f(qkv=1)`)."""
    stack = [module]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Name):
            yield node.value
        elif isinstance(node, cst.Attribute):
            stack.append(node.value)
        elif isinstance(node, cst.Arg):
            stack.append(node.value)
        else:
            stack.extend(node.children)
