"""TorchScript / compiler marker decorators -> removed (id `jit-markers`).

What it does
    Drops `@torch.jit.ignore`, `@torch.jit.unused`, `@torch.jit.export`, `@torch.jit.script`
    (on a function), `@torch.jit.script_if_tracing`, `@torch.compiler.disable`,
    `@torch._dynamo.disable` and their call forms (`@torch.jit.ignore(drop=False)`).
Why
    In eager PyTorch these decorators return the function itself (or one that computes the same
    values): they only steer the TorchScript compiler or the dynamo tracer, which converted MLX
    code never meets. `torch.jit.is_scripting()` and friends are rules (they become `False`).
Left in place when
    `@torch.jit.script` decorates a class (a ScriptModule/class type has other semantics), or the
    decorator's call has arguments other than `drop=` (ignore) or `recursive=` (disable).
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.transforms import Transform

MARKERS = {  # decorator -> keyword arguments its call form may carry
    "torch.jit.ignore": {"drop"}, "torch.jit.unused": set(), "torch.jit.export": set(),
    "torch.jit.script": set(), "torch.jit.script_if_tracing": set(),
    "torch.compiler.disable": {"recursive", "reason"}, "torch._dynamo.disable": {"recursive", "reason"},
}


class JitMarkers(Transform):
    id = "jit-markers"
    description = "@torch.jit.ignore / unused / export / script and compiler-disable decorators -> removed"
    text_decides = True

    def applies_to(self, text: str) -> bool:
        return "jit" in text or "disable" in text

    def _is_marker(self, rw, decorator: cst.BaseExpression, on_class: bool) -> bool:
        expr = decorator
        if isinstance(decorator, cst.Call):
            expr = decorator.func
        name = rw.qualified_name(expr)
        if name not in MARKERS or (on_class and name == "torch.jit.script"):
            return False
        if isinstance(decorator, cst.Call):
            return all(a.keyword is not None and a.keyword.value in MARKERS[name] and not a.star for a in decorator.args)
        return True

    def _drop_markers(self, rw, original, updated):
        on_class = isinstance(original, cst.ClassDef)
        dropped = {id(d.decorator) for d in original.decorators if self._is_marker(rw, d.decorator, on_class)}
        if not dropped:
            return updated
        inside = set()
        for d in original.decorators:
            if id(d.decorator) in dropped:
                inside.update(id(n) for n in (d.decorator, getattr(d.decorator, "func", None)) if n is not None)
        # the table flagged the marker ("no MLX rule") before this hook ran: the mark is moot now
        rw.drop_reports(lambda f: id(f.node) in inside)
        rw.count_conversion(len(dropped))
        kept = [new for old, new in zip(original.decorators, updated.decorators) if id(old.decorator) not in dropped]
        leading = [line for line in updated.leading_lines if line.comment is None
                   or not any(line.comment.value.startswith(f"# torch2mlx: {rule}:") for rule in MARKERS)]
        return updated.with_changes(decorators=kept, leading_lines=leading)

    leave_FunctionDef = _drop_markers
    leave_ClassDef = _drop_markers
