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

from torch2mlx.torch_facts import JIT_MARKERS
from torch2mlx.transforms import Transform

MARKERS = JIT_MARKERS  # decorator -> keyword arguments its call form may carry (torch_facts)


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

    def leave_Decorator(self, rw, original, updated):
        """A marker is removed, and the table's flags on it ("no MLX rule") with it: they are still the findings of
        the function or class being left (the statement whose flag lines are written after its decorators)."""
        if not self._is_marker(rw, original.decorator, isinstance(rw.statement, cst.ClassDef)):
            return updated
        marker = {id(n) for n in (original.decorator, getattr(original.decorator, "func", None)) if n is not None}
        rw.drop_flags(predicate=lambda f: id(f.node) in marker)
        rw.count_conversion()
        return cst.RemovalSentinel.REMOVE
