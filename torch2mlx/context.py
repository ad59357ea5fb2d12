"""The plugin context: what a transform hook or a handler may ask of, and do to, the running pass.

The rewriter (`rewriter.TableRewriter`) creates one `PluginContext` per converted file and
passes it, instead of itself, to every transform hook (`visit_X(ctx, node)`,
`leave_X(ctx, original, updated)`) and every handler (`fn(rule, original, call, receiver, ctx)`).
Plugins change the pass's state only through these methods: flags of the current statement,
the conversion count, the MLX roots the output imports, helper definitions written once per
file, and per-file plugin state. The rewriter's fields stay its own
(`tests/test_plugin_context.py` checks the plugin modules).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Sequence, Union

import libcst as cst

from torch2mlx.diagnostics import Finding


class PluginContext:
    """One per file; `rewriter` is the `TableRewriter` that made it (not imported here: it imports this)."""

    def __init__(self, rewriter, project_layout_builders: Optional[frozenset] = None) -> None:
        self._rw = rewriter
        self._state: dict = {}
        self._helpers: set = set()
        # project facts (directory runs): names imported from other files that build channels-last layers
        self.project_layout_builders: Optional[frozenset] = project_layout_builders

    # ----- queries ---------------------------------------------------------------------------
    def qualified_name(self, node: "cst.BaseExpression") -> Optional[str]:
        """`torch.nn.functional.relu` for `F.relu` where `F` is bound to torch there; else None."""
        return self._rw.qualified_name(node)

    @property
    def tensors(self):
        """The tensor facts (`tensors.TensorFacts`) of the scopes being converted."""
        return self._rw.tensors

    @property
    def scopes(self) -> list:
        """The `names.Scope`s entered, module first, innermost last."""
        return self._rw.scopes

    @property
    def index(self):
        """The rule index (`table.index.RuleIndex`)."""
        return self._rw.index

    @property
    def project_module_classes(self) -> frozenset:
        """nn.Module classes this file imports from other project files (directory runs)."""
        return self._rw.project_module_classes

    @property
    def statement(self):
        """The innermost original statement being converted (None at module level)."""
        stack = self._rw.statement_stack
        return stack[-1] if stack else None

    def is_cold(self, node: "cst.CSTNode") -> bool:
        """A statement the pass skips: it mentions no torch name and no rule's method name."""
        return id(node) in self._rw.cold

    def name_taken(self, name: str, *, module_only: bool = False) -> bool:
        """`name` is bound in this file other than by a torch import (at module level only, or in any scope entered)."""
        scopes = self.scopes[:1] if module_only else self.scopes
        return any(name in scope.other or name in scope.imports for scope in scopes)

    def apply_rule(self, rule, original: "cst.Call", updated: "cst.Call", receiver=None):
        """Translate one call with one rule; flags and returns `updated` if it can't."""
        return self._rw.apply_rule(rule, original, updated, receiver)

    def transform(self, transform_id: str):
        """The transform of this run with that id, or None."""
        return next((t for t in self._rw.transforms if t.id == transform_id), None)

    # ----- flags -----------------------------------------------------------------------------
    def flag(self, node: "cst.CSTNode", rule_id: str, kind: str, message: str, severity: str = "warning") -> None:
        """A finding on `node`, in the current statement (a `# torch2mlx:` line above it unless info)."""
        self._rw.flag(node, rule_id, kind, message, severity)

    def flags(self, since: int = 0) -> tuple:
        """The findings of the current statement so far (from position `since`)."""
        return tuple(self._rw.statement_findings[-1][since:])

    def drop_flags(self, node: Optional["cst.CSTNode"] = None, *, rule_id: Optional[str] = None,
                   kind: Optional[str] = None, predicate: Optional[Callable[[Finding], bool]] = None) -> int:
        """Drop the current statement's findings matching every criterion given (`node` by identity);
        with none given, all of them. Returns how many were dropped."""
        found = self._rw.statement_findings[-1]
        kept = [f for f in found if not ((node is None or f.node is node) and (rule_id is None or f.rule_id == rule_id)
                                          and (kind is None or f.kind == kind) and (predicate is None or predicate(f)))]
        self._rw.statement_findings[-1] = kept
        return len(found) - len(kept)

    def edit_flags(self, edit: Callable[[Finding], Finding]) -> None:
        """Replace each finding of the current statement by `edit(finding)` (e.g. a message reworded)."""
        self._rw.statement_findings[-1] = [edit(f) for f in self._rw.statement_findings[-1]]

    def report(self, node: "cst.CSTNode", rule_id: str, kind: str, message: str, severity: str = "warning",
               statement=None) -> None:
        """A finding recorded directly for the file: no comment line, no suppression check."""
        self._rw.findings.append(Finding(node, rule_id, kind, message, severity, (), statement))

    def drop_reports(self, predicate: Callable[[Finding], bool]) -> int:
        """Drop the file's recorded findings (of statements already left) for which `predicate` holds."""
        before = len(self._rw.findings)
        self._rw.findings = [f for f in self._rw.findings if not predicate(f)]
        return before - len(self._rw.findings)

    # ----- what the output gets --------------------------------------------------------------
    def count_conversion(self, n: int = 1) -> None:
        """`n` more translated constructs (negative to take back)."""
        self._rw.converted += n

    def need_import(self, *roots: str) -> None:
        """The output uses these MLX roots (`mx`, `nn`, `optim`, ...): the emitter imports them."""
        self._rw.roots_used.update(roots)

    def mark_identity(self, node: "cst.CSTNode") -> None:
        """`node` is what a call became and equals its receiver: `x = x` / `x` statements left are dropped."""
        self._rw.identity_calls.add(id(node))

    def add_prelude(self, statements: Iterable) -> None:
        """Statements to add after the imports, in order."""
        self._rw.module_prelude.extend(statements)

    def add_helper(self, name: str, statements: Union[Sequence, Callable[[], Sequence]]) -> bool:
        """Add the definition of `name` after the imports, once per file (`statements` may be a function
        building them, called only the first time). False when it was added already. Whether the name
        is free in the file is the caller's check (`name_taken`), made before: it raises `Flag` if not."""
        if name in self._helpers:
            return False
        self._helpers.add(name)
        self.add_prelude(statements() if callable(statements) else statements)
        return True

    def has_helper(self, name: str) -> bool:
        return name in self._helpers

    def state(self, key: str, factory: Callable[[], Any]) -> Any:
        """Per-file plugin state: the value under `key`, made by `factory()` the first time."""
        if key not in self._state:
            self._state[key] = factory()
        return self._state[key]
