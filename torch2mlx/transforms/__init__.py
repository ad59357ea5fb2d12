"""Structural transforms: what a rule table cannot express (nn.Module classes, training steps, ...).

A transform is a class deriving from `Transform` in any module of this package: `discover()` walks
the sub-packages, so adding one is adding a file. The modules are grouped by concern: `layout/`
(channels-last), `init/` (weight initialisation), `inplace/` (in-place updates), `module/`
(nn.Module classes and the layer classes written for them), `training/` (training scripts),
`data/` (data loading, checkpoints); `codegen.py` builds generated MLX code for all of them
(docs/architecture.md, "File map"). A transform does not walk the tree itself: the
single table pass calls its `visit_<Node>(rw, node)` and `leave_<Node>(rw, original,
updated)` hooks for the node types it names, right after the table's own handling of
that node. `rw` is the file's `context.PluginContext` (never the rewriter itself):
`rw.qualified_name(expr)`, `rw.flag(node, rule_id, kind, message)`, `rw.drop_flags(...)`,
`rw.tensors`, `rw.index`, `rw.need_import(root)`, `rw.count_conversion()`,
`name = rw.helper(name, statements)` (a generated helper, once per file, under the name it got there)
(docs/architecture.md, "Plugin context").
"""
from __future__ import annotations

import ast
import importlib
import pkgutil
from typing import ClassVar, Collection

import libcst as cst


class Transform:
    """Base class. `id` is kebab-case; `applies_to(text)` is a cheap check on the source."""

    id: ClassVar[str] = ""
    description: ClassVar[str] = ""
    order: ClassVar[int] = 100  # lower runs first when two transforms hook the same node
    # True when the transform must see every statement, even those that mention no torch
    # name (the pass otherwise skips them): e.g. layout tracking through plain arithmetic.
    needs_every_statement: bool = False  # a class default; `prepare` may decide per file
    # True when `applies_to(text)` alone decides: the transform needs no facts from other project
    # files, so importing a module class from one does not switch it on (its analysis costs time)
    text_decides: ClassVar[bool] = False
    # attribute names whose statements the transform must see although they name no torch API (`loss.backward()`,
    # `p.requires_grad = False`): the pass skips statements mentioning neither a torch name nor one of these
    # (api._hot_attributes gathers them from every transform of the run)
    hot_attributes: ClassVar[Collection[str]] = frozenset()

    def applies_to(self, text: str) -> bool:
        return True

    def prepare(self, tree: ast.Module, module_scope) -> None:
        """Called once per conversion, before the pass, with the stdlib `ast` of the source (parsed anyway) and
        the module's `names.Scope`: facts a transform needs about the whole file are much cheaper to read here
        than by walking libcst. May set `needs_every_statement` for this file only."""


def discover() -> list[type]:
    """Every `Transform` subclass with an id in this package's modules, sub-packages walked, by (order, id)."""
    found = []
    for info in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Transform) and value is not Transform and value.id:
                found.append(value)
    return sorted(set(found), key=lambda cls: (cls.order, cls.id))


def hooks_for(transforms: list) -> tuple[dict, dict]:
    """node type name -> list of bound visit hooks / leave hooks."""
    visit: dict = {}
    leave: dict = {}
    for t in transforms:
        for attr in dir(t):
            if attr.startswith("visit_"):
                visit.setdefault(attr[6:], []).append(getattr(t, attr))
            elif attr.startswith("leave_"):
                leave.setdefault(attr[6:], []).append(getattr(t, attr))
    return visit, leave


__all__ = ["Transform", "discover", "hooks_for", "cst"]
