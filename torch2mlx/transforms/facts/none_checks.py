"""`self.x` in the body of `if self.x is not None:` is a tensor where every store of `x` is a tensor or None (id
`none-checks`).

timm's ConvNeXt block stores `self.gamma = nn.Parameter(...) if ls_init_value is not None else None` and reads
`self.gamma.reshape(1, -1, 1, 1)` under `if self.gamma is not None:`. value_facts finds the attributes every store
of which in the class family is a tensor or None, one at least a tensor (`names.Scope.optional_attributes`); where
the test says the value is not None (`is not None`, in an `and` of tests; or the `else` of `is None`) it is a tensor
(`tensors.TensorFacts.narrowed`, as transforms/facts/layer_checks.py narrows `m.weight`). Nothing else is ever
stored in it, so a store between the test and the read can only make it None again, where torch raises as well
(no method of None, no arithmetic with it).
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.transforms import Transform


def _not_none(test, attrs: frozenset, negated: bool = False) -> list:
    """`self.<a>` (a in attrs) that `test` being true (false: `negated`) shows not to be None."""
    if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.Or if negated else cst.And):
        return _not_none(test.left, attrs, negated) + _not_none(test.right, attrs, negated)
    if not (isinstance(test, cst.Comparison) and len(test.comparisons) == 1):
        return []
    op = test.comparisons[0]
    wanted = cst.Is if negated else cst.IsNot
    left, right = test.left, op.comparator
    if not (isinstance(op.operator, wanted) and isinstance(right, cst.Name) and right.value == "None"):
        return []
    if (isinstance(left, cst.Attribute) and isinstance(left.value, cst.Name) and left.value.value == "self"
            and left.attr.value in attrs):
        return [f"self.{left.attr.value}"]
    return []


class NoneChecks(Transform):
    id = "none-checks"
    description = "`self.x` under `if self.x is not None:` is a tensor where every store of x is a tensor or None"

    def __init__(self) -> None:
        self.bodies: dict = {}  # id(block) -> frozenset of "self.x" narrowed there

    def applies_to(self, text: str) -> bool:
        return "None" in text

    def _attributes(self, rw) -> frozenset:
        scopes = rw.scopes
        if len(scopes) < 2 or scopes[-1].kind != "function" or scopes[-2].kind != "class":
            return frozenset()
        node = scopes[-1].node
        first = (node.args.posonlyargs + node.args.args)[:1] if hasattr(node, "args") else []
        if not first or first[0].arg != "self" or node.decorator_list:
            return frozenset()  # (a decorated method's `self` may be anything: as value_facts reads it)
        return scopes[-2].optional_attributes

    def visit_If(self, rw, node: cst.If) -> None:
        attrs = self._attributes(rw)
        if not attrs:
            return
        body = frozenset(_not_none(node.test, attrs))
        if body:
            self.bodies[id(node.body)] = body
        orelse = frozenset(_not_none(node.test, attrs, negated=True))
        if orelse and isinstance(node.orelse, cst.Else):
            self.bodies[id(node.orelse.body)] = orelse

    def visit_IndentedBlock(self, rw, node) -> None:
        if id(node) in self.bodies:
            rw.tensors.narrowed.append(self.bodies[id(node)])

    def leave_IndentedBlock(self, rw, original, updated):
        if id(original) in self.bodies:
            rw.tensors.narrowed.pop()
            del self.bodies[id(original)]
        return updated

    def visit_SimpleStatementSuite(self, rw, node) -> None:
        self.visit_IndentedBlock(rw, node)

    def leave_SimpleStatementSuite(self, rw, original, updated):
        return self.leave_IndentedBlock(rw, original, updated)
