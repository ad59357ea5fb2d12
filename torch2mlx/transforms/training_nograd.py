"""`with torch.no_grad():` and `@torch.no_grad()` -> the body alone (id `no-grad`).

What it does
    Unwraps `with torch.no_grad():` / `torch.inference_mode()` / `torch.enable_grad()` blocks
    (the body is kept, one level up) and drops those decorators.
Why
    MLX computes gradients only inside `mx.grad` / `nn.value_and_grad` transforms, so code
    outside them never records anything: the context has nothing to switch off.
Left in place when
    the `with` binds a name (`as ...`) or mixes other context managers.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.transforms import Transform

GRAD_CONTEXTS = frozenset({"torch.no_grad", "torch.inference_mode", "torch.enable_grad", "torch.autograd.no_grad",
                           "torch.autograd.grad_mode.no_grad", "torch.autograd.grad_mode.inference_mode"})


class NoGrad(Transform):
    id = "no-grad"
    description = "with torch.no_grad(): / @torch.no_grad() -> the body alone"
    order = 60

    def __init__(self) -> None:
        self.dropped: set = set()  # ids of original context / decorator expressions
        self.withs: set = set()

    def applies_to(self, text: str) -> bool:
        return "no_grad" in text or "inference_mode" in text or "enable_grad" in text

    def _is_grad_context(self, rw, expr) -> bool:
        func = expr.func if isinstance(expr, cst.Call) and not expr.args else expr
        return rw.qualified_name(func) in GRAD_CONTEXTS

    def visit_With(self, rw, node) -> None:
        if node.items and all(i.asname is None and self._is_grad_context(rw, i.item) for i in node.items):
            self.withs.add(id(node))
            self.dropped.update(id(i.item) for i in node.items)

    def visit_FunctionDef(self, rw, node) -> None:
        for d in node.decorators:
            if self._is_grad_context(rw, d.decorator):
                self.dropped.add(id(d.decorator))

    def _drop_finding(self, rw, original, updated):
        if id(original) in self.dropped:
            rw.statement_findings[-1] = [f for f in rw.statement_findings[-1] if f.node is not original]
            rw.converted += 1
        return updated

    leave_Call = _drop_finding
    leave_Attribute = _drop_finding

    def leave_FunctionDef(self, rw, original, updated):
        kept = [new for old, new in zip(original.decorators, updated.decorators) if id(old.decorator) not in self.dropped]
        return updated.with_changes(decorators=kept) if len(kept) != len(updated.decorators) else updated

    def leave_With(self, rw, original, updated):
        if id(original) not in self.withs or not isinstance(updated.body, cst.IndentedBlock):
            return updated
        body = list(updated.body.body)
        body[0] = body[0].with_changes(leading_lines=[*updated.leading_lines, *body[0].leading_lines])
        return cst.FlattenSentinel(body)
