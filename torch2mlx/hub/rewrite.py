"""The hub option's edit of a converted file: hub imports from the MLX stand-ins, the rest flagged or kept."""
from __future__ import annotations

import libcst as cst

from torch2mlx.diagnostics import Diagnostic, Kind, Severity

_PREFIX = "# torch2mlx: "


def _names(pairs) -> str:
    return ", ".join(f"{n} as {a}" if a and a != n else n for n, a in pairs)


def _message(entry) -> str:
    return (f"{_names(entry.flagged)} from {entry.target}: needs torch (or is not known to run without it) and the "
            "transformers hub option has no MLX stand-in for it; port it or avoid it")


def rewrite_imports(code: str, path: str, imports: list, rule_id: str, stand_ins: str) -> tuple:
    module = cst.parse_module(code)
    pending: dict = {}
    for e in imports:
        pending.setdefault((e.level, e.module), []).append(e)
    body, diagnostics = [], []
    for stmt in module.body:
        node = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
        key = None
        if isinstance(node, cst.ImportFrom) and not isinstance(node.names, cst.ImportStar):
            name = cst.Module([]).code_for_node(node.module) if node.module is not None else ""
            key = (len(node.relative), name)
        entry = pending[key].pop(0) if key and pending.get(key) else None
        if entry is None:
            body.append(stmt)
            continue
        dots = "." * entry.level
        kept = [(cst.Module([]).code_for_node(a.name), a.asname.name.value if a.asname else None) for a in node.names
                if cst.Module([]).code_for_node(a.name) not in entry.handled]
        new = []
        if entry.mapped:
            new.append(cst.parse_statement(f"from {stand_ins} import {_names(entry.mapped)}\n"))
        if kept:
            new.append(cst.parse_statement(f"from {dots}{entry.module} import {_names(kept)}\n"))
        if entry.flagged:
            why = _message(entry)
            flagged_stmt = cst.parse_statement(f"from {dots}{entry.module} import {_names(entry.flagged)}\n")
            marked = any(line.comment is not None and line.comment.value.startswith(f"{_PREFIX}{rule_id}:")
                         for line in stmt.leading_lines)  # converting converted code flags nothing twice
            if not marked:
                flagged_stmt = flagged_stmt.with_changes(
                    leading_lines=[cst.EmptyLine(comment=cst.Comment(f"{_PREFIX}{rule_id}: {why}"))])
            new.append(flagged_stmt)
            diagnostics.append(Diagnostic(rule_id, Kind.NO_EQUIVALENT, Severity.WARNING, why, path, entry.line, entry.column))
        new[0] = new[0].with_changes(leading_lines=[*stmt.leading_lines, *new[0].leading_lines])
        body.extend(new)
    return module.with_changes(body=body).code, tuple(diagnostics)
