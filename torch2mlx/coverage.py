"""Rule coverage of a code base: which torch APIs it uses have rules, which are flagged, which are unknown.

The question a team asks before a migration. A fast stdlib-`ast` scan (no rewriting):
every `torch...` reference reachable from a module-level torch import (`import torch`,
`import torch.nn.functional as F`, `from torch import nn`) is resolved to its qualified
name and looked up in the rule table. Method calls on tensors (`x.view(...)`) are not
counted: their receiver's type is unknown without converting (run `convert` for those).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from torch2mlx.diagnostics import InputError
from torch2mlx.fileio import read_source
from torch2mlx.names import _import_bindings
from torch2mlx.table import RuleIndex

CATEGORIES = ("rule", "conditional", "flagged", "unknown")


@dataclass
class ApiUse:
    name: str
    category: str  # rule (exact) | conditional | flagged (manual: never rewritten) | unknown
    count: int = 0
    where: list = field(default_factory=list)


def _dotted(node: ast.AST) -> Optional[list[str]]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


def _category(name: str, index: RuleIndex) -> Optional[str]:
    rule = index.function(name) or index.value(name) or index.by_id.get(name)
    if rule is None:
        return "unknown"
    return {"exact": "rule", "conditional": "conditional", "manual": "flagged"}[rule.status]


def _is_module_prefix(name: str, index: RuleIndex) -> bool:
    """`torch.nn` in `torch.nn.functional.relu` is a namespace, not an API use."""
    prefix = name + "."
    return any(k.startswith(prefix) for k in (*index.functions, *index.values))


def scan_text(text: str, path: str, index: RuleIndex, uses: dict) -> None:
    tree = ast.parse(text)
    aliases = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for local, qual in _import_bindings(node):
                if qual is not None:
                    aliases[local] = qual
    if not aliases:
        return
    inner: set = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            inner.add(id(node.value))  # only the outermost attribute of a chain is a use
        if not isinstance(node, (ast.Attribute, ast.Name)) or id(node) in inner:
            continue
        parts = _dotted(node)
        if not parts or parts[0] not in aliases or isinstance(getattr(node, "ctx", None), ast.Store):
            continue
        name = ".".join([aliases[parts[0]], *parts[1:]])
        if name == "torch" or _is_module_prefix(name, index) and _category(name, index) == "unknown":
            continue
        use = uses.setdefault(name, ApiUse(name, _category(name, index)))
        use.count += 1
        if len(use.where) < 3:
            use.where.append(f"{path}:{node.lineno}:{node.col_offset + 1}")


def scan(paths: Iterable[Path], index: RuleIndex) -> tuple[dict, list]:
    """(qualified name -> ApiUse, [files that could not be read or parsed, with why])."""
    uses: dict = {}
    problems = []
    for path in paths:
        try:
            scan_text(read_source(path), str(path), index, uses)
        except InputError as exc:
            problems.append(str(exc))
        except (SyntaxError, ValueError, RecursionError) as exc:
            problems.append(f"{path}: cannot parse: {exc}")
    return uses, problems
