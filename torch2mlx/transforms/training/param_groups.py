"""A learning rate set by hand through `optimizer.param_groups` -> the MLX optimizer's `learning_rate` (id `param-groups-lr`).

What it does
    nanoGPT's (and many scripts') warm-up written by hand::

        for param_group in optimizer.param_groups:      optimizer.learning_rate = lr
            param_group["lr"] = lr                 ->

    For an optimizer built from parameter groups (the generated ParamGroupOptimizer), every group's
    optimizer gets the rate, as torch's loop sets every group's::

        for group_optimizer in optimizer.group_optimizers:
            group_optimizer.learning_rate = lr
Why
    MLX optimizers have no param_groups; their learning rate is an attribute read at every update.
`optimizer.param_groups[0]["lr"]` read (logging) becomes `optimizer.learning_rate.item()`
(`optimizer.group_optimizers[0].learning_rate.item()` for parameter groups).
Left in place (flagged) when
    the loop does anything else, reads the group (`g["lr"] = g["initial_lr"] * f`: per-group values)
    or sets another key. An optimizer not built by torch.optim in this file is not touched.
"""
from __future__ import annotations

import ast

import libcst as cst

from torch2mlx.binding import code_of
from torch2mlx.patterns import dotted, index_of, is_integer, is_string
from torch2mlx.transforms import Transform
from torch2mlx.transforms.codegen import mlx_expr, mlx_statements
from torch2mlx.transforms.training.scan import grouped_optimizers, optimizer_models

RULE_ID = "param-groups-lr"


def _names(node) -> list:
    found: list = []

    class V(cst.CSTVisitor):
        def visit_Name(self, n):
            found.append(n.value)

    node.visit(V())
    return found


class ParamGroupsLR(Transform):
    id = RULE_ID
    description = 'for g in opt.param_groups: g["lr"] = v -> opt.learning_rate = v'
    hot_attributes = frozenset({"param_groups"})
    order = 90

    def __init__(self) -> None:
        self.optimizers: dict = {}
        self.grouped: set = set()

    def applies_to(self, text: str) -> bool:
        return "param_groups" in text

    def prepare(self, tree: ast.Module, module_scope) -> None:
        self.optimizers = optimizer_models(tree)
        self.grouped = grouped_optimizers(tree)

    def leave_Subscript(self, rw, original, updated):
        """`opt.param_groups[0]["lr"]` read (logging): the optimizer's rate as a float (the first group's)."""
        inner = original.value
        if not (isinstance(inner, cst.Subscript) and isinstance(inner.value, cst.Attribute) and inner.value.attr.value == "param_groups"
                and is_string(index_of(original), "lr") and is_integer(index_of(inner), "0")):
            return updated
        optimizer = code_of(inner.value.value)
        stmt = rw.statement
        targets = []
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                targets += [t.target for t in getattr(small, "targets", ())] + ([small.target] if isinstance(small, (cst.AugAssign, cst.AnnAssign)) else [])
        if optimizer not in self.optimizers or any(original.deep_equals(t) for t in targets):
            return updated
        if self._scheduled(rw, optimizer):
            # a per-step scheduler became the optimizer's schedule: MLX's learning_rate is then the rate of the last
            # update, torch's lr after scheduler.step() the next one's
            rw.flag(original, RULE_ID, "needs-review", "the learning rate is an MLX schedule here: optimizer.learning_rate "
                    "holds the rate of the last update, torch's param_groups[0]['lr'] after scheduler.step() the next one's; "
                    "read the schedule at optimizer.step instead")
            return updated
        rw.count_conversion()
        owner = f"{optimizer}.group_optimizers[0]" if optimizer in self.grouped else optimizer
        return mlx_expr(rw, f"{owner}.learning_rate.item()")

    @staticmethod
    def _scheduled(rw, optimizer: str) -> bool:
        """Did the lr-schedule transform pass a per-step scheduler of `optimizer` to it as its learning_rate?"""
        sched = rw.transform("lr-schedule")
        return sched is not None and any(not isinstance(plan.build, str) and plan.optimizer == optimizer for plan in sched.plans.values())

    def _flag(self, rw, original, updated, why: str):
        message = (f"{why}: MLX optimizers have no param_groups; set optimizer.learning_rate (for parameter groups, "
                   "each optimizer of optimizer.group_optimizers)")
        rw.report(original, RULE_ID, "needs-review", message, "warning", original)
        line = cst.EmptyLine(comment=cst.Comment(f"# torch2mlx: {RULE_ID}: {message}"))
        return updated.with_changes(leading_lines=[*updated.leading_lines, line])

    def leave_For(self, rw, original, updated):
        it = original.iter
        if not (isinstance(it, cst.Attribute) and it.attr.value == "param_groups" and isinstance(original.target, cst.Name)):
            return updated
        optimizer = code_of(it.value)
        group = original.target.value
        if optimizer not in self.optimizers:
            return updated
        if self._scheduled(rw, optimizer):
            return self._flag(rw, original, updated, "a scheduler of this optimizer became its MLX schedule, which would "
                              "overwrite a rate set by hand at every update")
        result = self._translate(rw, original, updated, optimizer, group)
        if result is None:
            return self._flag(rw, original, updated, "a loop over param_groups that does more than set every group's lr to one value")
        return result

    def _translate(self, rw, original, updated, optimizer: str, group: str):
        if original.orelse is not None or not isinstance(updated.body, cst.IndentedBlock):
            return None
        body = updated.body.body
        if len(body) != 1 or not isinstance(body[0], cst.SimpleStatementLine) or len(body[0].body) != 1:
            return None
        small = body[0].body[0]
        if not (isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Subscript)):
            return None
        target = small.targets[0].target
        if dotted(target.value) != group or not is_string(index_of(target), "lr"):
            return None
        if group in _names(small.value):
            return None
        value = code_of(small.value)
        if optimizer in self.grouped:
            used = set(_names(original))
            loop = next(n for n in ("group_optimizer", "group_optimizer_", "group_opt") if n not in used)
            text = f"for {loop} in {optimizer}.group_optimizers:\n    {loop}.learning_rate = {value}\n"
        else:
            text = f"{optimizer}.learning_rate = {value}\n"
        new = mlx_statements(rw, text)[0]
        statements = {id(original), id(body[0])}
        inner = {id(s) for s in original.body.body}
        rw.drop_reports(lambda f: f.statement is not None and (id(f.statement) in statements or id(f.statement) in inner))
        rw.count_conversion()
        lines = [x for x in updated.leading_lines if not (x.comment is not None and x.comment.value.startswith("# torch2mlx: "))]
        return new.with_changes(leading_lines=lines)
