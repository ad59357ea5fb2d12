"""A method called on a str is str's, not a tensor's (id `str-receivers`).

`.split`, `.replace`, `.index`, ... are names of torch.Tensor methods too, so on a receiver the pass does not know
to be a tensor the table flags them ("not known to be a tensor"). Where the receiver is a Python str the call is
str's and stays exactly as written: the flag is dropped. A str is what `tensors.is_str` reads: a string literal,
an f-string, `str(x)`, a str method returning a str on one (`norm_layer.replace('_', '').lower()`), a name every
binding of which in the scope is a str (`names.Scope.str_names`: parameters annotated `str` or asserted
`isinstance(p, str)` first, keys of a read-only str-keyed dict literal iterated at module level, ...), and, inside
the body of `if isinstance(name, str):` that never rebinds `name`, that name (timm's create_norm_act.py:125,
`if isinstance(norm_layer, str): ... norm_layer.replace('_', '').lower().split('-')`). Nothing is translated
here; unknown stays flagged. A `.split` whose arguments Tensor.split cannot take (a string separator, none at
all, `sep=` / `maxsplit=`) is str's (or another object's) too: under torch, Tensor.split would raise there.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.tensors import is_str
from torch2mlx.transforms import Transform

def _narrowed(test: cst.BaseExpression) -> list:
    """`isinstance(name, str)` (the names of an `and` of them)."""
    if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And):
        return _narrowed(test.left) + _narrowed(test.right)
    if (isinstance(test, cst.Call) and isinstance(test.func, cst.Name) and test.func.value == "isinstance"
            and len(test.args) == 2 and all(a.keyword is None and not a.star for a in test.args)
            and isinstance(test.args[0].value, cst.Name) and isinstance(test.args[1].value, cst.Name)
            and test.args[1].value.value == "str"):
        return [test.args[0].value.value]
    return []


class _Bound(cst.CSTVisitor):
    """The names a block may rebind, or bind in a nested scope under the same spelling (assignment, loop,
    comprehension, `with ... as`, `import ... as`, walrus, `global` / `nonlocal`, `del`, a def's or lambda's
    parameters, a def or class)."""

    def __init__(self) -> None:
        self.names: set = set()

    def _add(self, target) -> None:
        for node in _names(target):
            self.names.add(node)

    def visit_AssignTarget(self, node) -> None:
        self._add(node.target)

    def visit_AugAssign(self, node) -> None:
        self._add(node.target)

    def visit_AnnAssign(self, node) -> None:
        self._add(node.target)

    def visit_For(self, node) -> None:
        self._add(node.target)

    def visit_CompFor(self, node) -> None:  # a comprehension's own names: other values under the same spelling
        self._add(node.target)

    def visit_Param(self, node) -> None:  # a nested def's or lambda's
        self.names.add(node.name.value)

    def visit_FunctionDef(self, node) -> None:
        self.names.add(node.name.value)

    def visit_ClassDef(self, node) -> None:
        self.names.add(node.name.value)

    def visit_ImportAlias(self, node) -> None:
        if node.asname is None:
            name = node.name
            while isinstance(name, cst.Attribute):
                name = name.value
            if isinstance(name, cst.Name):
                self.names.add(name.value)

    def visit_AsName(self, node) -> None:
        self._add(node.name)

    def visit_NamedExpr(self, node) -> None:
        self._add(node.target)

    def visit_Del(self, node) -> None:
        self._add(node.target)

    def visit_Global(self, node) -> None:
        self.names.update(n.name.value for n in node.names)

    def visit_Nonlocal(self, node) -> None:
        self.names.update(n.name.value for n in node.names)


def _names(target) -> list:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for e in target.elements for n in _names(e.value)]
    if isinstance(target, cst.StarredElement):
        return _names(target.value)
    return []


class StrReceivers(Transform):
    id = "str-receivers"
    description = "a method called on a str is str's: the table's unknown-receiver flag is dropped"

    def __init__(self) -> None:
        self.narrowed: list = []  # per open `if isinstance(x, str):` body: the names known to be strs there
        self.bodies: dict = {}    # id(body block) -> names narrowed in it

    def _builtins_shadowed(self, rw) -> bool:
        return any(name in s.other or name in s.imports for s in rw.scopes for name in ("str", "isinstance"))

    def visit_If(self, rw, node: cst.If) -> None:
        names = _narrowed(node.test)
        if not names or self._builtins_shadowed(rw):
            return
        bound = _Bound()
        node.body.visit(bound)
        kept = frozenset(n for n in names if n not in bound.names)
        if kept:
            self.bodies[id(node.body)] = kept

    def visit_IndentedBlock(self, rw, node) -> None:
        if id(node) in self.bodies:
            self.narrowed.append(self.bodies[id(node)])

    def leave_IndentedBlock(self, rw, original, updated):
        if id(original) in self.bodies:
            self.narrowed.pop()
            del self.bodies[id(original)]
        return updated

    def visit_SimpleStatementSuite(self, rw, node) -> None:  # `if isinstance(s, str): return s.split('_')`
        self.visit_IndentedBlock(rw, node)

    def leave_SimpleStatementSuite(self, rw, original, updated):
        return self.leave_IndentedBlock(rw, original, updated)

    def leave_Call(self, rw, original: cst.Call, updated):
        func = original.func
        if not isinstance(func, cst.Attribute):
            return updated
        if not any(f.node is original and str(getattr(f.kind, "value", f.kind)) == "unknown-receiver" for f in rw.flags()):
            return updated
        strs = rw.scopes[-1].str_names() if rw.scopes else frozenset()
        for names in self.narrowed:
            strs = strs | names
        if is_str(func.value, strs) or _str_only_split(original):
            rw.drop_flags(original, kind="unknown-receiver")
        return updated


_STR_ARGUMENT = (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)


def _str_only_split(call: cst.Call) -> bool:
    """`x.split('.', 1)`, `x.split()`, `x.split(sep=...)`: Tensor.split takes a size or a list of sizes, and torch
    raises TypeError for a string or for none, so code that runs under torch does not call Tensor.split there
    (timm's `f['module'].split('.', 1)` over its feature_info dicts: densenet, cspnet, rexnet)."""
    if not (isinstance(call.func, cst.Attribute) and call.func.attr.value == "split"):
        return False
    if not call.args:
        return True
    first = call.args[0]
    if first.keyword is None and not first.star and isinstance(first.value, _STR_ARGUMENT):
        return True
    return any(a.keyword is not None and a.keyword.value in ("sep", "maxsplit") for a in call.args)
