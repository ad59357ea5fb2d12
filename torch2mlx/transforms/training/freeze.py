"""Freezing a sub-model for fine-tuning: `requires_grad = False` on its parameters -> `module.freeze()` (id `freeze-parameters`).

What it does
    ::

        for param in model.backbone.parameters():         model.backbone.freeze()
            param.requires_grad = False               ->
        model.backbone.requires_grad_(False)              model.backbone.freeze()

    and an optimizer over the parameters that still train, `filter(lambda p: p.requires_grad,
    model.parameters())` or `[p for p in model.parameters() if p.requires_grad]`, is an optimizer of
    `model` (scan.py): `nn.value_and_grad(model, ...)` differentiates only the trainable (unfrozen)
    parameters, so `optimizer.update(model, grads)` leaves the frozen ones alone, as torch's step
    skips parameters without a gradient.
Why
    MLX has no per-array requires_grad: a module's arrays are trainable unless frozen.
Left in place (flagged by the table) when
    the loop does anything else or selects parameters by name, the receiver is not a module of the
    file (a model an optimizer trains, or an owner of `.parameters()`), or parameters are made
    trainable again (`requires_grad = True`, `requires_grad_()`): MLX's `unfreeze()` would also
    unfreeze buffers that torch never trains, and torch's optimizer built from the filter holds
    only the parameters trainable when it was built.
"""
from __future__ import annotations

import ast

import libcst as cst

from torch2mlx.binding import code_of
from torch2mlx.patterns import dotted
from torch2mlx.transforms import Transform
from torch2mlx.transforms.training.scan import optimizer_models

RULE_ID = "freeze-parameters"


def _false(node) -> bool:
    return isinstance(node, cst.Name) and node.value == "False"


def module_roots(tree: ast.Module) -> set:
    """Root names of the models optimizers train and of every receiver of `.parameters()` in the file."""
    roots = {m.split(".")[0] for models in optimizer_models(tree).values() for m in models if m}
    for n in ast.walk(tree):
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("parameters", "named_parameters")
                and not n.args):
            receiver = n.func.value
            while isinstance(receiver, ast.Attribute):
                receiver = receiver.value
            if isinstance(receiver, ast.Name):
                roots.add(receiver.id)
    return roots


def unfreezes(tree: ast.Module) -> bool:
    """Does the file make parameters trainable again (requires_grad = True / requires_grad_() / requires_grad_(True))?"""
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("requires_grad_", "unfreeze"):
            value = n.args[0] if n.args else next((k.value for k in n.keywords if k.arg == "requires_grad"), None)
            if n.func.attr == "unfreeze" or value is None or not (isinstance(value, ast.Constant) and value.value is False):
                if n.func.attr == "unfreeze" or not _is_input_tensor_use(n):
                    return True
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "requires_grad" for t in n.targets):
            if not (isinstance(n.value, ast.Constant) and n.value.value is False):
                return True
    return False


def _is_input_tensor_use(call: ast.Call) -> bool:
    """`x.requires_grad_()` / `(expr).requires_grad_(True)` on a tensor (for torch.autograd.grad), not a module: its
    receiver is not a plain `model.x` chain of a module (decided loosely: a call or an arithmetic expression)."""
    return not isinstance(call.func.value, (ast.Name, ast.Attribute))


class FreezeParameters(Transform):
    id = RULE_ID
    description = "for p in m.parameters(): p.requires_grad = False / m.requires_grad_(False) -> m.freeze()"
    hot_attributes = frozenset({"requires_grad", "requires_grad_"})
    order = 86

    def __init__(self) -> None:
        self.roots: set = set()
        self.unfreezes = False

    def applies_to(self, text: str) -> bool:
        return "requires_grad" in text

    def prepare(self, tree: ast.Module, module_scope) -> None:
        self.roots = module_roots(tree)
        self.unfreezes = unfreezes(tree)

    def _module(self, rw, node) -> bool:
        chain = code_of(node).split(".")
        return (all(part.isidentifier() for part in chain) and chain[0] in self.roots and chain[0] != "torch"
                and not rw.tensors.is_tensor(node) and rw.qualified_name(node) is None)

    def _freeze(self, rw, receiver, original, updated, inner=()):
        new = cst.SimpleStatementLine([cst.Expr(cst.Call(cst.Attribute(receiver, cst.Name("freeze"))))])
        ids = {id(original), *(id(s) for s in inner)}
        rw.drop_reports(lambda f: f.statement is not None and id(f.statement) in ids)
        rw.count_conversion()
        lines = [x for x in updated.leading_lines if not (x.comment is not None and x.comment.value.startswith("# torch2mlx: "))]
        return new.with_changes(leading_lines=lines)

    def leave_For(self, rw, original, updated):
        """for p in M.parameters(): p.requires_grad = False  (or p.requires_grad_(False))."""
        it = original.iter
        if self.unfreezes or not (isinstance(it, cst.Call) and not it.args and isinstance(it.func, cst.Attribute)
                                  and it.func.attr.value == "parameters" and isinstance(original.target, cst.Name)):
            return updated
        receiver = it.func.value
        if original.orelse is not None or not isinstance(original.body, cst.IndentedBlock) or not self._module(rw, receiver):
            return updated
        body = original.body.body
        if len(body) != 1 or not isinstance(body[0], cst.SimpleStatementLine) or len(body[0].body) != 1:
            return updated
        small = body[0].body[0]
        name = original.target.value
        assign = (isinstance(small, cst.Assign) and len(small.targets) == 1 and dotted(small.targets[0].target) == f"{name}.requires_grad"
                  and _false(small.value))
        call = (isinstance(small, cst.Expr) and isinstance(small.value, cst.Call) and dotted(small.value.func) == f"{name}.requires_grad_"
                and len(small.value.args) == 1 and _false(small.value.args[0].value))
        if not (assign or call):
            return updated
        return self._freeze(rw, receiver, original, updated, body)

    def leave_SimpleStatementLine(self, rw, original, updated):
        """M.requires_grad_(False) as a statement, M a module."""
        if self.unfreezes or len(original.body) != 1 or not isinstance(original.body[0], cst.Expr):
            return updated
        call = original.body[0].value
        if not (isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) and call.func.attr.value == "requires_grad_"
                and len(call.args) == 1 and _false(call.args[0].value) and self._module(rw, call.func.value)):
            return updated
        return self._freeze(rw, call.func.value, original, updated)
