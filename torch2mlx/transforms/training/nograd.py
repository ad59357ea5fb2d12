"""`with torch.no_grad():` and `@torch.no_grad()` -> the body alone (id `no-grad`).

What it does
    Unwraps `with torch.no_grad():` / `torch.inference_mode()` / `torch.enable_grad()` blocks
    (the body is kept, one level up) and drops those decorators. `with torch.set_grad_enabled(mode):`
    outside a model's forward is unwrapped too, whatever `mode` is.
Why
    MLX computes gradients only inside `mx.grad` / `nn.value_and_grad` transforms, so code
    outside them never records anything: the context has nothing to switch off.
In a model's forward
    A `with torch.no_grad():` inside `forward` (or `forward_*`) of an nn.Module class guards
    code that MLX *would* differentiate when the model is called inside a loss (a frozen
    backbone). There the block's assignments keep their values but are cut from the graph:
    `feats = self.backbone(x)` becomes `feats = mx.stop_gradient(self.backbone(x))`. A block
    that does anything else (expression statements, control flow, tuple targets) or assigns a
    value not known to be an array is flagged with what to write.
Left in place when
    the `with` binds a name (`as ...`) or mixes other context managers.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.patterns import find
from torch2mlx.binding import code_of
from torch2mlx.tensors import attribute_chain

from torch2mlx.transforms import Transform
from torch2mlx.torch_facts import GRAD_CONTEXTS, MODULE_BASES as _MODULE_BASES
from torch2mlx.transforms.codegen import mlx_expr

_ENABLE = frozenset({"torch.enable_grad", "torch.autograd.grad_mode.enable_grad"})
SET_GRAD_ENABLED = frozenset({"torch.set_grad_enabled", "torch.autograd.set_grad_enabled", "torch.autograd.grad_mode.set_grad_enabled"})


class NoGrad(Transform):
    id = "no-grad"
    description = "with torch.no_grad(): / @torch.no_grad() -> the body alone"
    order = 60

    def __init__(self) -> None:
        self.dropped: set = set()  # ids of original context / decorator expressions
        self.withs: set = set()
        self.guarded: set = set()  # ids of the withs inside a model's forward: stop_gradient, not dropped
        self.module_classes: set = set()
        self.scopes: list = []  # "module-class", "class", "forward", "function"

    def applies_to(self, text: str) -> bool:
        return "no_grad" in text or "inference_mode" in text or "enable_grad" in text or "set_grad_enabled" in text

    def _is_grad_context(self, rw, expr) -> bool:
        func = expr.func if isinstance(expr, cst.Call) and not expr.args else expr
        return rw.qualified_name(func) in GRAD_CONTEXTS

    def _is_set_grad_enabled(self, rw, expr) -> bool:
        """`torch.set_grad_enabled(phase == "train")` (the fine-tuning tutorial): outside a model's forward, whatever
        the mode, there is nothing to switch: MLX differentiates only what nn.value_and_grad calls (the train-step
        transform translates the backward() it guards, or flags it)."""
        return (isinstance(expr, cst.Call) and len(expr.args) == 1 and not expr.args[0].star
                and (expr.args[0].keyword is None or expr.args[0].keyword.value == "mode")
                and not find(expr.args[0].value, cst.Call)  # the mode goes: it must not call anything
                and rw.qualified_name(expr.func) in SET_GRAD_ENABLED and not self._in_forward())

    def visit_ClassDef(self, rw, node) -> None:
        is_module = any(self._is_module_base(rw, b.value) for b in node.bases)
        if is_module:
            self.module_classes.add(node.name.value)
        self.scopes.append("module-class" if is_module else "class")

    def _is_module_base(self, rw, base) -> bool:
        if rw.qualified_name(base) in _MODULE_BASES:
            return True
        if isinstance(base, cst.Name):
            return base.value in self.module_classes or base.value in rw.project_module_classes
        chain = attribute_chain(base)  # mlx.nn.Module, when converting converted code again
        return chain is not None and len(chain) == 2 and chain[1] == "Module" and any(chain[0] in s.mlx_nn for s in rw.scopes)

    def leave_ClassDef(self, rw, original, updated):
        self.scopes.pop()
        return updated

    def _in_forward(self) -> bool:
        return "forward" in self.scopes

    def visit_With(self, rw, node) -> None:
        if node.items and all(i.asname is None and self._is_set_grad_enabled(rw, i.item) for i in node.items):
            self.withs.add(id(node))
            self.dropped.update(id(i.item) for i in node.items)
        elif node.items and all(i.asname is None and self._is_grad_context(rw, i.item) for i in node.items):
            self.withs.add(id(node))
            self.dropped.update(id(i.item) for i in node.items)
            if self._in_forward() and not all(self._is_enable(rw, i.item) for i in node.items):
                self.guarded.add(id(node))

    def _is_enable(self, rw, expr) -> bool:
        return rw.qualified_name(expr.func if isinstance(expr, cst.Call) else expr) in _ENABLE

    def visit_FunctionDef(self, rw, node) -> None:
        name = node.name.value
        in_model = bool(self.scopes) and self.scopes[-1] == "module-class"
        self.scopes.append("forward" if in_model and (name in ("forward", "__call__") or name.startswith("forward_")) else "function")
        for d in node.decorators:
            if self._is_grad_context(rw, d.decorator):
                self.dropped.add(id(d.decorator))

    def _drop_finding(self, rw, original, updated):
        if id(original) in self.dropped:
            rw.drop_flags(original)
            rw.count_conversion()
        return updated

    leave_Call = _drop_finding
    leave_Attribute = _drop_finding

    def leave_FunctionDef(self, rw, original, updated):
        self.scopes.pop()
        kept = [new for old, new in zip(original.decorators, updated.decorators) if id(old.decorator) not in self.dropped]
        return updated.with_changes(decorators=kept) if len(kept) != len(updated.decorators) else updated

    def leave_With(self, rw, original, updated):
        if id(original) not in self.withs or not isinstance(updated.body, cst.IndentedBlock):
            return updated
        body = list(updated.body.body)
        if id(original) in self.guarded:
            why = self._stop_gradients(rw, original, body)
            if isinstance(why, str):
                return self._flag(rw, original, updated, why)
            body = why
        body[0] = body[0].with_changes(leading_lines=[*updated.leading_lines, *body[0].leading_lines])
        return cst.FlattenSentinel(body)

    def _stop_gradients(self, rw, original, body: list):
        """The block's assignments with their values cut from the graph, or None (flagged) when that is not exact."""
        old_body = list(original.body.body)
        why = None
        if len(old_body) != len(body):
            why = "the block changed shape while converting it"
        new_body = []
        for old, new in zip(old_body, body):
            if why is not None:
                break
            if not isinstance(old, cst.SimpleStatementLine) or not all(isinstance(s, cst.Assign) for s in old.body):
                why = "it holds more than assignments"
                break
            smalls = []
            for old_small, new_small in zip(old.body, new.body):
                if not all(isinstance(t.target, (cst.Name, cst.Attribute)) for t in old_small.targets):
                    why = f"`{code_of(old_small.targets[0].target)}` unpacks several values"
                    break
                if not rw.tensors.is_tensor(old_small.value):
                    why = f"`{code_of(old_small.value)}` is not known to be an array"
                    break
                wrapped = mlx_expr(rw, "mx.stop_gradient(VALUE)")
                wrapped = wrapped.with_changes(args=[wrapped.args[0].with_changes(value=new_small.value)])
                smalls.append(new_small.with_changes(value=wrapped))
            new_body.append(new.with_changes(body=smalls))
        if why is not None:
            return why
        rw.count_conversion()
        return new_body

    def _flag(self, rw, original, updated, why: str):
        """Flag the `with` itself (its own findings were collected before this hook ran)."""
        # `why` may quote a call written over several lines: a flag is one comment line
        message = (f"torch.no_grad() in a model's forward: MLX would differentiate through this block "
                   f"({' '.join(why.split())}); wrap each value it computes in mx.stop_gradient(...) and remove the `with`")
        rw.report(original.items[0].item, self.id, "semantics-differ", message, "warning", original)
        rw.count_conversion(-sum(1 for item in original.items if id(item.item) in self.dropped))
        line = cst.EmptyLine(comment=cst.Comment(f"# torch2mlx: {self.id}: {message}"))
        if any(l.comment is not None and l.comment.value.startswith(f"# torch2mlx: {self.id}:") for l in updated.leading_lines):
            return updated
        return updated.with_changes(leading_lines=[*updated.leading_lines, line])
