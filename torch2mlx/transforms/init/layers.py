"""Which torch.nn layer class a module expression is, for init code (nn-init).

Two sources, both exact:
- `self.<attr>` where the class assigns `self.<attr> = nn.<Layer>(...)` (or `nn.Parameter(...)`)
  exactly once, in any of its methods;
- a name narrowed by the `if`/`elif` branch it is in: `if isinstance(m, (nn.Conv2d, nn.Linear)):`
  (the name is not reassigned inside the branch).
Anything else is unknown (None), and callers that need the layer flag it.
"""
from __future__ import annotations

from typing import Optional

import libcst as cst

from torch2mlx.tensors import attribute_chain

PARAMETER = "torch.nn.Parameter"


def isinstance_classes(rw, test: cst.BaseExpression) -> Optional[tuple]:
    """(name, frozenset of torch class names) for `isinstance(name, C)` / `isinstance(name, (C1, C2))`."""
    if not (isinstance(test, cst.Call) and isinstance(test.func, cst.Name) and test.func.value == "isinstance"
            and len(test.args) == 2 and not any(a.star or a.keyword for a in test.args)
            and isinstance(test.args[0].value, cst.Name) and not _is_rebound(rw, "isinstance")):
        return None
    classes = test.args[1].value
    parts = [e.value for e in classes.elements] if isinstance(classes, cst.Tuple) else [classes]
    quals = [rw.qualified_name(p) for p in parts]
    if not quals or any(q is None for q in quals):
        return None
    return test.args[0].value.value, frozenset(quals)


def _is_rebound(rw, name: str) -> bool:
    return any(name in s.other or name in s.imports for s in rw.scopes)


class _Assigns(cst.CSTVisitor):
    """Does a block rebind `name` (assignment, loop, with, walrus, nested def)?"""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.found = False

    def visit_Name(self, node: cst.Name) -> None:
        return None

    def _check(self, target) -> None:
        for n in _names(target):
            if n == self.name:
                self.found = True

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._check(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._check(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._check(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._check(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._check(node.name)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._check(node.target)


def _names(node) -> list:
    if isinstance(node, cst.Name):
        return [node.value]
    if isinstance(node, (cst.Tuple, cst.List)):
        return [n for e in node.elements for n in _names(e.value)]
    if isinstance(node, cst.StarredElement):
        return _names(node.value)
    return []


def _class_members(rw, node: cst.ClassDef) -> dict:
    """attr -> torch class name for `self.<attr> = torch.nn.<X>(...)` assigned once in the class."""
    found: dict = {}
    counts: dict = {}

    class _Visit(cst.CSTVisitor):
        def visit_Assign(self, assign: cst.Assign) -> None:
            for target in assign.targets:
                t = target.target
                if isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name) and t.value.value == "self":
                    counts[t.attr.value] = counts.get(t.attr.value, 0) + 1
                    value = assign.value
                    qual = rw.qualified_name(value.func) if isinstance(value, cst.Call) else None
                    if qual is not None and qual.startswith("torch.nn.") and len(assign.targets) == 1:
                        found[t.attr.value] = qual

        def visit_ClassDef(self, inner: cst.ClassDef) -> bool:
            return inner is node  # a nested class has its own members

    node.visit(_Visit())
    return {attr: qual for attr, qual in found.items() if counts[attr] == 1}


class LayerFacts:
    """Tracks class members and isinstance narrowing during the pass (hooks called by nn-init)."""

    def __init__(self) -> None:
        self.members: list = [{}]       # per class nesting: attr -> torch class name (or the ClassDef, not read yet)
        self.narrowed: list = [{}]      # per block nesting: name -> frozenset of torch class names
        self.pending: dict = {}          # id(If.body) -> (name, classes)

    def visit_ClassDef(self, rw, node: cst.ClassDef) -> None:
        self.members.append(node)  # read on first use: most classes never need it (a walk of the class)

    def leave_ClassDef(self) -> None:
        self.members.pop()

    def visit_FunctionDef(self) -> None:
        self.narrowed.append({})  # narrowing does not reach into a nested function

    def leave_FunctionDef(self) -> None:
        self.narrowed.pop()

    def visit_If(self, rw, node: cst.If) -> None:
        found = isinstance_classes(rw, node.test)
        if found is not None:
            visitor = _Assigns(found[0])
            node.body.visit(visitor)
            if not visitor.found:
                self.pending[id(node.body)] = found

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        found = self.pending.pop(id(node), None)
        scope = dict(self.narrowed[-1])
        if found is not None:
            scope[found[0]] = found[1]
        self.narrowed.append(scope)

    def leave_IndentedBlock(self) -> None:
        self.narrowed.pop()

    def classes_of(self, module: cst.BaseExpression, rw) -> Optional[frozenset]:
        """The torch classes `module` is known to be one of (torch names), or None."""
        if isinstance(module, cst.Name):
            return self.narrowed[-1].get(module.value)
        chain = attribute_chain(module)
        if chain is None or len(chain) != 2 or chain[0] != "self":
            return None
        members = self._members(rw)
        return frozenset({members[chain[1]]}) if chain[1] in members else None

    def _members(self, rw) -> dict:
        if isinstance(self.members[-1], cst.ClassDef):
            self.members[-1] = _class_members(rw, self.members[-1])
        return self.members[-1]
