"""`m.weight` inside `if isinstance(m, nn.Linear):` is a tensor; `m.n` inside `if isinstance(m, C):` is an int where
`self.n` always is in class C of the file (id `layer-checks`).

timm's weight-init functions test a module's class and read its weight (_efficientnet_builder.py:568,
`elif isinstance(m, nn.Linear): fan_out = m.weight.size(0)`). In the body of such a test, a name the body never
rebinds holds an instance of that torch.nn class, whose `weight` is always a Parameter: `m.weight` is a tensor there
(`tensors.TensorFacts.narrowed`). Only classes whose MLX layer keeps the weight in torch's layout count (Linear
(out, in), Embedding (num, dim)): a convolution's weight is (out, *kernel, in) in MLX, so `m.weight.size(1)` of one
must stay flagged. A `bias` may be None (bias=False): never narrowed. `isinstance` and the class name must be the
builtin and torch's (the scope binds them no other way).

transformers' CLIP initialises `torch.arange(module.num_positions)` under `isinstance(module, CLIPVisionEmbeddings)`:
`self.num_positions` is an int in every method of that class and its relatives in the file (value_facts
`_int_attributes`, the module's `class_ints`), so it is one there (`tensors.TensorFacts.narrowed_ints`, read by
handlers/creation_literals.py).
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.transforms import Transform
from torch2mlx.transforms.facts.str_receivers import _Bound

_WEIGHT_LAYERS = frozenset({"torch.nn.Linear", "torch.nn.Embedding", "torch.nn.modules.linear.Linear",
                            "torch.nn.modules.sparse.Embedding"})


class LayerChecks(Transform):
    id = "layer-checks"
    description = "`m.weight` in the body of `if isinstance(m, nn.Linear):` is a tensor"

    def __init__(self) -> None:
        self.bodies: dict = {}  # id(body block) -> {"m.weight"}

    def _classes(self, rw, test) -> list:
        """(name, class) of `isinstance(name, C)` tests (an `and` of them), C a class of the file with int attributes."""
        if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And):
            return self._classes(rw, test.left) + self._classes(rw, test.right)
        if not (isinstance(test, cst.Call) and isinstance(test.func, cst.Name) and test.func.value == "isinstance"
                and len(test.args) == 2 and all(a.keyword is None and not a.star for a in test.args)
                and isinstance(test.args[0].value, cst.Name) and isinstance(test.args[1].value, cst.Name)):
            return []
        kind = test.args[1].value.value
        module = rw.scopes[0] if rw.scopes else None
        if module is None or kind not in module.class_ints or any(s.is_bound_locally(kind) for s in rw.scopes[1:]):
            return []
        return [(test.args[0].value.value, kind)]

    def _checked(self, rw, test) -> list:
        if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And):
            return self._checked(rw, test.left) + self._checked(rw, test.right)
        if not (isinstance(test, cst.Call) and isinstance(test.func, cst.Name) and test.func.value == "isinstance"
                and len(test.args) == 2 and all(a.keyword is None and not a.star for a in test.args)
                and isinstance(test.args[0].value, cst.Name)):
            return []
        kinds = test.args[1].value
        kinds = [e.value for e in kinds.elements] if isinstance(kinds, cst.Tuple) else [kinds]
        if not kinds or not all(rw.qualified_name(k) in _WEIGHT_LAYERS for k in kinds):
            return []
        return [test.args[0].value.value]

    def visit_If(self, rw, node: cst.If) -> None:
        if any("isinstance" in s.other or "isinstance" in s.imports for s in rw.scopes):
            return
        names = self._checked(rw, node.test)
        classes = self._classes(rw, node.test)
        if not names and not classes:
            return
        bound = _Bound()
        node.body.visit(bound)
        kept = frozenset(f"{n}.weight" for n in names if n not in bound.names)
        ints = frozenset(f"{n}.{a}" for n, kind in classes if n not in bound.names for a in rw.scopes[0].class_ints[kind])
        if kept or ints:
            self.bodies[id(node.body)] = (kept, ints)

    def visit_IndentedBlock(self, rw, node) -> None:
        if id(node) in self.bodies:
            tensors, ints = self.bodies[id(node)]
            rw.tensors.narrowed.append(tensors)
            rw.tensors.narrowed_ints.append(ints)

    def leave_IndentedBlock(self, rw, original, updated):
        if id(original) in self.bodies:
            rw.tensors.narrowed.pop()
            rw.tensors.narrowed_ints.pop()
            del self.bodies[id(original)]
        return updated

    def visit_SimpleStatementSuite(self, rw, node) -> None:
        self.visit_IndentedBlock(rw, node)

    def leave_SimpleStatementSuite(self, rw, original, updated):
        return self.leave_IndentedBlock(rw, original, updated)
