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

import builtins
import keyword
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import libcst as cst

from torch2mlx.diagnostics import Finding
from torch2mlx.patterns import names_in


class PluginContext:
    """One per file; `rewriter` is the `TableRewriter` that made it (not imported here: it imports this)."""

    def __init__(self, rewriter, project_layout_builders: Optional[frozenset] = None) -> None:
        self._rw = rewriter
        self._state: dict = {}
        self._helpers: dict = {}  # helper's own name -> the name it has in this file (a fresh one where that was taken)
        self._written: set = set()  # the names of the helpers written into the file
        self._file_names: Optional[set] = None  # every name the file reads or binds, read when a helper needs a fresh one
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
        self._rw.identity_calls[id(node)] = node

    def add_prelude(self, statements: Iterable) -> None:
        """Statements to add after the imports, in order."""
        self._rw.module_prelude.extend(statements)

    def helper(self, name: str, statements: Union[Sequence, Callable[[], Sequence]], *, uses: Iterable[str] = (),
               module_only: bool = False) -> str:
        """Add the definition of the helper `name` after the imports, once per file, and return the name it has
        there: `name` where the file leaves it free (`name_taken(name, module_only=...)`), else a fresh one
        (`name_1`, `name_2`, ...: a name the file uses nowhere), its definition renamed to it. `statements` may be
        a function building them, called only the first time; `uses` are the helpers (added before) that the
        definition calls by their own names: it calls them by the names they have in the file. Callers write the
        returned name wherever they reference the helper. Asked again where a name bound in the scopes being
        converted hides the helper's name, the helper is added again under a fresh name."""
        actual = self._helpers.get(name)
        if actual is not None and not self.name_taken(actual, module_only=module_only):
            return actual
        free = actual is None and not self.name_taken(name, module_only=module_only) and name not in self._written
        actual = name if free else self._fresh(name)
        self._helpers[name] = actual
        self._written.add(actual)
        built = list(statements() if callable(statements) else statements)
        renames = {n: self._helpers[n] for n in (name, *uses) if n in self._helpers and self._helpers[n] != n}
        if renames:
            built = [s.visit(_Rename(renames)) for s in built]
        self.add_prelude(built)
        return actual

    def add_helper(self, name: str, statements: Union[Sequence, Callable[[], Sequence]]) -> bool:
        """`helper` for a caller that checked the name itself (`name_taken`, made before: it raises `Flag` if
        taken) and writes `name`: never renamed. False when a helper of that name is in the file already."""
        if name in self._written:
            return False
        self._helpers.setdefault(name, name)
        self._written.add(name)
        self.add_prelude(statements() if callable(statements) else statements)
        return True

    def has_helper(self, name: str) -> bool:
        """A helper added to this file has the name `name` there."""
        return name in self._written

    def helper_name(self, name: str) -> Optional[str]:
        """The name the helper `name` has in this file (None before it is added)."""
        return self._helpers.get(name)

    def _fresh(self, name: str) -> str:
        """`name_1`, `name_2`, ...: the first that the file uses nowhere, no builtin or keyword, no helper's name and
        no name the rewriter chose for a value evaluated once."""
        if self._file_names is None:
            module = self._rw._module  # the rewriter's own fields, read here only (the rewriter owns this context)
            self._file_names = set(names_in(module)) if module is not None else set()
        n = 1
        while True:
            fresh = f"{name}_{n}"
            if not (fresh in self._file_names or fresh in _RESERVED or fresh in self._written
                    or fresh in (self._rw._file_names or ()) or self.name_taken(fresh)):
                return fresh
            n += 1

    def state(self, key: str, factory: Callable[[], Any]) -> Any:
        """Per-file plugin state: the value under `key`, made by `factory()` the first time."""
        if key not in self._state:
            self._state[key] = factory()
        return self._state[key]


_RESERVED = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | frozenset({"self", "cls"})




class _Rename(cst.CSTTransformer):
    """Names read or bound renamed (`LayerNorm` -> `LayerNorm_1`); attribute names (`nn.LayerNorm`) and keywords
    (`f(LayerNorm=...)`) kept."""

    def __init__(self, renames: Mapping[str, str]) -> None:
        super().__init__()
        self.renames = renames

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
        return updated.with_changes(value=self.renames[updated.value]) if updated.value in self.renames else updated

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.Attribute:
        return updated.with_changes(attr=original.attr)

    def leave_Arg(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg:
        return updated.with_changes(keyword=original.keyword)
