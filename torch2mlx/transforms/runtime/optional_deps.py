"""An optional torch-only dependency guarded by `except ImportError` takes the code's own fallback (id
`optional-torch-deps`).

What it does
    `try: from apex.normalization.fused_layer_norm import fused_layer_norm_affine; has_apex = True`
    `except ImportError: has_apex = False` (timm layers/fast_norm.py, utils/cuda.py) -> `has_apex = False`: the
    branch its author wrote for a machine without apex. apex (and the other packages of `KERNEL_PACKAGES`: fused
    CUDA kernels and accelerators for torch tensors) cannot take MLX arrays, so the converted code must run as
    where it is not installed; an info note says so. Where the import is not the first statement of the `try`,
    or the handler names the exception (`as e`), re-raises, or a `finally` follows, the import becomes
    `raise ModuleNotFoundError(...)`: what Python raises there without the package, so the same handler runs
    (the statements after it in the `try`, which then never run, are dropped).
Why
    Each such import was flagged `torch-dependency` at import: the whole converted package needed torch (and
    apex) to import, although the code already handled its absence.
Left in place (flagged by the audit) when
    no handler catches ModuleNotFoundError (ImportError, ModuleNotFoundError, Exception, BaseException or a bare
    `except`), a handler before it names an exception whose class this module cannot read (a user's own, or a
    builtin name the file rebinds), or the package is not one of `KERNEL_PACKAGES`: a model library such as
    torchvision may be part of the tree being converted (then its import is the converted project), which a
    transform cannot tell from one file.
"""
from __future__ import annotations

import ast
import builtins

import libcst as cst

from torch2mlx.transforms import Transform

RULE_ID = "optional-torch-deps"
# Packages of fused kernels / accelerators that only take torch tensors: never a model library a directory run
# converts alongside the code importing them, so without torch they are simply missing.
KERNEL_PACKAGES = frozenset({"apex", "xformers", "flash_attn", "triton", "deepspeed", "bitsandbytes"})


def _imported_package(stmt) -> "str | None":
    """The kernel package a one-import statement line imports (`from apex.x import y`, `import apex`), else None."""
    if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1):
        return None
    node = stmt.body[0]
    if isinstance(node, cst.Import):
        roots = {cst.Module([]).code_for_node(a.name).split(".")[0] for a in node.names}
        return roots.pop() if len(roots) == 1 and roots <= KERNEL_PACKAGES else None
    if isinstance(node, cst.ImportFrom) and not node.relative and node.module is not None:
        root = cst.Module([]).code_for_node(node.module).split(".")[0]
        return root if root in KERNEL_PACKAGES else None
    return None


def _catches_missing_module(rw, handler: cst.ExceptHandler) -> "bool | None":
    """Whether `handler` catches the ModuleNotFoundError of a missing package: True, False, or None where its
    exception classes cannot be read (a name that is no builtin exception, or one the file rebinds)."""
    if handler.type is None:
        return True
    kinds = [e.value for e in handler.type.elements] if isinstance(handler.type, cst.Tuple) else [handler.type]
    answer = False
    for kind in kinds:
        if not isinstance(kind, cst.Name) or rw.name_taken(kind.value):
            return None
        cls = getattr(builtins, kind.value, None)
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            return None
        answer = answer or issubclass(ModuleNotFoundError, cls)
    return answer


def _reraises(body: cst.BaseSuite) -> bool:
    """A bare `raise` anywhere in the handler's body (outside it, it would raise RuntimeError instead)."""
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Raise) and node.exc is None:
            return True
        stack.extend(node.children)
    return False


class OptionalTorchDeps(Transform):
    id = RULE_ID
    description = "try: import apex ... except ImportError: fallback -> the fallback (apex needs torch tensors)"
    text_decides = True

    def applies_to(self, text: str) -> bool:
        return "except" in text and any(p in text for p in KERNEL_PACKAGES)

    def prepare(self, tree: ast.Module, module_scope) -> None:
        # a guarded import below the module level sits in a def the pass may skip (it names no torch API)
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and node not in tree.body and any(
                    isinstance(s, (ast.Import, ast.ImportFrom)) for s in node.body):
                self.needs_every_statement = True
                return

    def leave_Try(self, rw, original: cst.Try, updated):
        if not isinstance(updated, cst.Try) or not isinstance(updated.body, cst.IndentedBlock):
            return updated
        at = next((i for i, stmt in enumerate(updated.body.body) if _imported_package(stmt)), None)
        if at is None:
            return updated
        package = _imported_package(updated.body.body[at])
        chosen = None
        for handler in updated.handlers:
            catches = _catches_missing_module(rw, handler)
            if catches is None:
                return updated  # cannot tell which handler Python would run: the audit's flag stays
            if catches:
                chosen = handler
                break
        if chosen is None:
            return updated
        note = (f"`{package}` runs on torch tensors only: the converted code takes this file's own branch for a "
                f"machine without it (its `except` of the import)")
        rw.report(original, RULE_ID, "needs-review", note, "info")
        rw.count_conversion()
        comment = cst.EmptyLine(comment=cst.Comment(
            f"# {package} is built on torch: MLX code runs as where it is not installed (the except branch)"))
        clean = (at == 0 and chosen.name is None and updated.finalbody is None and not _reraises(chosen.body)
                 and isinstance(chosen.body, cst.IndentedBlock))
        if clean:
            body = list(chosen.body.body)
            body[0] = body[0].with_changes(leading_lines=[*updated.leading_lines, comment, *body[0].leading_lines])
            return cst.FlattenSentinel(body)
        raised = cst.parse_statement(f'raise ModuleNotFoundError("No module named {package!r} (it is built on torch)")\n')
        old = updated.body.body[at]
        raised = raised.with_changes(leading_lines=[*old.leading_lines, comment])
        statements = [*updated.body.body[:at], raised]  # what followed the import never runs: dropped
        return updated.with_changes(body=updated.body.with_changes(body=statements))
