"""`self.w = nn.Parameter(t, requires_grad=False)` in an nn.Module class -> `self.w = t` and a freeze (id
`parameter-freeze`).

What it does
    In a method of a class deriving from torch.nn.Module (directly, through a class of the file, or through a
    module class of another project file), the statement `self.<name> = nn.Parameter(<data>, requires_grad=<R>)`
    becomes `self.<name> = <data>` followed by `self.freeze(keys=["<name>"], recurse=False)` for R = False, or by
    `if not <R>: self.freeze(...)` for R a name or an attribute chain (timm metaformer.py's
    `requires_grad=trainable`). An MLX array member of a module is a parameter: it is in `parameters()`, loads
    from a torch state_dict and is saved, and `freeze` leaves it out of `trainable_parameters()`, so
    nn.value_and_grad and the optimizers leave it alone, as torch's autograd does one with requires_grad=False.
    (requires_grad=True, torch's default, is the rule torch.nn.Parameter alone.)
Left in place (flagged by that rule) when
    the Parameter is not the whole value of a one-target assignment to an attribute of `self`, the class is not
    known to be a module, or R is anything else (a call: evaluating it after the assignment could differ).
"""
from __future__ import annotations

import ast

import libcst as cst

from torch2mlx.binding import Flag, bind
from torch2mlx.tensors import attribute_chain
from torch2mlx.transforms import Transform

RULE_ID = "parameter-freeze"
PARAMETER = ("torch.nn.Parameter", "torch.nn.parameter.Parameter")
MODULE = "torch.nn.Module"


class ParameterFreeze(Transform):
    id = RULE_ID
    description = "self.w = nn.Parameter(t, requires_grad=False) -> self.w = t; self.freeze(keys=['w'], recurse=False)"
    text_decides = True  # the word decides; module classes of other files are read from the module scope

    def __init__(self) -> None:
        super().__init__()
        self.pending: dict = {}  # id(original statement) -> the freeze statement written after it
        self.modules: set = set()

    def applies_to(self, text: str) -> bool:
        return "requires_grad" in text

    def prepare(self, tree: ast.Module, module_scope) -> None:
        """The classes of the file that are nn.Modules (by their bases, in source order)."""
        self.pending = {}
        modules = set(getattr(module_scope, "project_classes", ()) or ())
        self.modules = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            for base in node.bases:
                chain = []
                while isinstance(base, ast.Attribute):
                    chain.append(base.attr)
                    base = base.value
                if not isinstance(base, ast.Name):
                    continue
                root = module_scope.resolve(base.id)
                qual = ".".join([root, *reversed(chain)]) if root else None
                if qual == MODULE or (not chain and base.id in modules | self.modules):
                    self.modules.add(node.name)
                    break

    def leave_Call(self, rw, original: cst.Call, updated):
        if not isinstance(updated, cst.Call) or rw.qualified_name(original.func) not in PARAMETER:
            return updated
        stmt = rw.statement
        target = _self_target(stmt, original)
        scopes = rw.scopes
        if target is None or len(scopes) < 3 or scopes[-2].kind != "class" or scopes[-1].kind != "function":
            return updated
        klass = getattr(scopes[-2], "node", None)
        if not isinstance(klass, ast.ClassDef) or klass.name not in self.modules:
            return updated
        rule = rw.index.function(PARAMETER[0])
        try:
            bound = bind(updated.args, rule.signature, None)
        except Flag:
            return updated
        data, grad = bound.get("data"), bound.get("requires_grad")
        if data is None or grad is None:
            return updated
        if isinstance(grad, cst.Name) and grad.value == "True":
            return updated  # the rule translates torch's default
        if isinstance(grad, cst.Name) and grad.value == "False":
            freeze = f'self.freeze(keys=["{target}"], recurse=False)\n'
        elif attribute_chain(grad) is not None:
            freeze = f'if not {cst.Module([]).code_for_node(grad)}:\n    self.freeze(keys=["{target}"], recurse=False)\n'
        else:
            return updated
        rw.drop_flags(original, rule_id=rule.id)
        rw.count_conversion()
        self.pending[id(stmt)] = cst.parse_statement(freeze)
        return data

    def leave_SimpleStatementLine(self, rw, original, updated):
        freeze = self.pending.pop(id(original), None)
        if freeze is None or not isinstance(updated, cst.SimpleStatementLine):
            return updated
        return cst.FlattenSentinel([updated, freeze])


def _self_target(stmt, call: cst.Call):
    """`name` where `stmt` is `self.name = <call>` (one statement on its line, one target), else None."""
    if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign)):
        return None
    assign = stmt.body[0]
    if assign.value is not call or len(assign.targets) != 1:
        return None
    target = assign.targets[0].target
    if (isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.value.value == "self"):
        return target.attr.value
    return None
