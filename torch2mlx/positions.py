"""Line and column of flagged nodes, without libcst's whole-file PositionProvider.

PositionProvider renders the whole file with position tracking (about twice a parse;
docs/performance.md). Here the statement lists of the libcst tree and of the `ast` tree
(which knows line numbers) are walked side by side, and positions are computed only
for the innermost statement around each flagged node, rendered alone. If the two trees
ever disagree in shape, the whole-file provider is used instead.
"""
from __future__ import annotations

import ast
from typing import Iterable, Optional

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider


class _Mismatch(Exception):
    pass


def _pair_blocks(cst_body, ast_body, out: dict) -> None:
    i = 0
    for stmt in cst_body:
        if i >= len(ast_body):
            raise _Mismatch
        if isinstance(stmt, cst.SimpleStatementLine):
            out[id(stmt)] = ast_body[i]
            if len(stmt.body) > 1:
                out.setdefault("multi", {})[id(stmt)] = ast_body[i:i + len(stmt.body)]
            i += len(stmt.body)
            continue
        node = ast_body[i]
        out[id(stmt)] = node
        i += 1
        _pair_compound(stmt, node, out)
    if i != len(ast_body):
        raise _Mismatch


def _pair_suite(block, ast_body, out) -> None:
    if isinstance(block, cst.IndentedBlock):
        _pair_blocks(block.body, ast_body, out)


def _pair_compound(stmt, node, out) -> None:
    if isinstance(stmt, (cst.FunctionDef, cst.ClassDef, cst.With)):
        _pair_suite(stmt.body, node.body, out)
    elif isinstance(stmt, (cst.For, cst.While)):
        _pair_suite(stmt.body, node.body, out)
        if stmt.orelse is not None:
            _pair_suite(stmt.orelse.body, node.orelse, out)
    elif isinstance(stmt, cst.If):
        _pair_suite(stmt.body, node.body, out)
        orelse = stmt.orelse
        if isinstance(orelse, cst.If):
            if len(node.orelse) != 1:
                raise _Mismatch
            out[id(orelse)] = node.orelse[0]
            out.setdefault("elif", set()).add(id(orelse))
            _pair_compound(orelse, node.orelse[0], out)
        elif orelse is not None:
            _pair_suite(orelse.body, node.orelse, out)
    elif isinstance(stmt, (cst.Try, getattr(cst, "TryStar", cst.Try))):
        _pair_suite(stmt.body, node.body, out)
        if len(stmt.handlers) != len(node.handlers):
            raise _Mismatch
        for h, hn in zip(stmt.handlers, node.handlers):
            _pair_suite(h.body, hn.body, out)
        if stmt.orelse is not None:
            _pair_suite(stmt.orelse.body, node.orelse, out)
        if stmt.finalbody is not None:
            _pair_suite(stmt.finalbody.body, node.finalbody, out)


_PASS_BLOCK = cst.IndentedBlock([cst.SimpleStatementLine([cst.Pass()])])


def _header_only(stmt):
    """A compound statement without its body: findings there belong to inner statements."""
    if isinstance(stmt, cst.SimpleStatementLine) or not isinstance(getattr(stmt, "body", None), cst.IndentedBlock):
        return stmt
    changes = {"body": _PASS_BLOCK}
    if isinstance(stmt, (cst.If, cst.For, cst.While)):
        changes["orelse"] = None
    if isinstance(stmt, cst.Try):
        changes.update(orelse=None, finalbody=None,
                       handlers=[h.with_changes(body=_PASS_BLOCK) for h in stmt.handlers])
    return stmt.with_changes(**changes)


def resolve(module: cst.Module, tree: ast.Module, text: str, wanted: Iterable[tuple]) -> dict:
    """{id(node): (line, column)} (1-based) for (node, innermost statement) pairs."""
    wanted = list(wanted)
    try:
        pairs: dict = {}
        _pair_blocks(module.body, tree.body, pairs)
    except _Mismatch:
        return _whole_file(module, [n for n, _ in wanted])
    lines = text.splitlines()
    out: dict = {}
    by_statement: dict = {}
    for node, stmt in wanted:
        by_statement.setdefault(id(stmt) if stmt is not None else None, (stmt, []))[1].append(node)
    pairs.pop("multi", None)
    elifs = pairs.pop("elif", set())
    alone: list = []  # (key, rendered copy, nodes): all rendered in ONE module, positions in one go
    leftovers: list = []
    encoded = _EncodedLines(lines)
    for key, (stmt, nodes) in by_statement.items():
        if stmt is None or key not in pairs:
            for node in nodes:  # a finding on a statement itself (a class flagged as a whole): where its keyword is
                if id(node) in pairs and isinstance(node, (cst.ClassDef, cst.FunctionDef)):
                    own = pairs[id(node)]
                    out[id(node)] = (own.lineno, encoded.column(own) + 1)
                else:
                    leftovers.append(node)
            continue
        unresolved = [n for n in nodes if not _from_ast(n, pairs[key], encoded, out)]
        if unresolved:
            alone.append((key, _header_only(stmt), unresolved))
    if leftovers:
        out.update(_whole_file(module, leftovers))
    if not alone:
        return out
    batch = module.with_changes(body=[copy for _, copy, _ in alone], header=[], footer=[])
    positions = MetadataWrapper(batch, unsafe_skip_copy=True).resolve(PositionProvider)
    for key, copy, nodes in alone:
        ast_stmt = pairs[key]
        first_abs = ast_stmt.lineno  # where libcst positions the statement too (the `def`, after decorators)
        first_rel = positions[copy].start.line
        source_line = lines[first_abs - 1] if first_abs - 1 < len(lines) else ""
        indent = len(source_line) - len(source_line.lstrip(" \t"))
        for node in nodes:
            pos = positions.get(node)
            if pos is None:
                continue
            # a statement rendered alone loses its block indent (on continuation lines too,
            # which libcst writes relative to the block); an `elif` renders as `if`
            col = pos.start.column + indent
            if pos.start.line == first_rel and key in elifs:
                col += 2
            out[id(node)] = (first_abs + pos.start.line - first_rel, col + 1)
    return out


_AST_TYPE = {cst.Call: ast.Call, cst.Attribute: ast.Attribute, cst.Name: ast.Name, cst.Subscript: ast.Subscript}
_EMPTY = cst.Module(body=[])


class _EncodedLines:
    """Source lines as UTF-8 bytes: ast columns are byte offsets."""

    def __init__(self, lines: list):
        self.lines = lines
        self.cache: dict = {}

    def line(self, n: int) -> bytes:
        b = self.cache.get(n)
        if b is None:
            b = self.cache[n] = self.lines[n - 1].encode("utf-8") if 0 < n <= len(self.lines) else b""
        return b

    def segment(self, node: ast.AST) -> str:
        if node.lineno == node.end_lineno:
            return self.line(node.lineno)[node.col_offset:node.end_col_offset].decode("utf-8", "replace")
        parts = [self.line(node.lineno)[node.col_offset:]]
        parts += [self.line(n) for n in range(node.lineno + 1, node.end_lineno)]
        parts.append(self.line(node.end_lineno)[:node.end_col_offset])
        return "\n".join(p.decode("utf-8", "replace") for p in parts)

    def column(self, node: ast.AST) -> int:
        return len(self.line(node.lineno)[:node.col_offset].decode("utf-8", "replace"))


def _header_nodes(stmt: ast.AST):
    """ast nodes of a statement, not descending into nested statement bodies."""
    stack = [stmt]
    while stack:
        node = stack.pop()
        yield node
        for name, value in ast.iter_fields(node):
            if name in ("body", "orelse", "finalbody", "handlers", "cases") and node is not stmt or (
                    node is stmt and name in ("body", "orelse", "finalbody", "handlers", "cases")):
                continue
            if isinstance(value, list):
                stack.extend(v for v in value if isinstance(v, ast.AST))
            elif isinstance(value, ast.AST):
                stack.append(value)


def _from_ast(node: cst.CSTNode, stmt: ast.AST, encoded: _EncodedLines, out: dict) -> bool:
    """Position of `node` from the ast when exactly one same-type node has the same text."""
    kind = _AST_TYPE.get(type(node))
    if kind is None or getattr(node, "lpar", None):
        return False
    code = _EMPTY.code_for_node(node)
    if "\n" in code:
        return False
    matches = [n for n in _header_nodes(stmt) if isinstance(n, kind) and n.lineno == n.end_lineno
               and encoded.segment(n) == code]
    if len(matches) != 1:
        return False
    out[id(node)] = (matches[0].lineno, encoded.column(matches[0]) + 1)
    return True


def _whole_file(module: cst.Module, nodes: list) -> dict:
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    out = {}
    for node in nodes:
        pos: Optional[object] = positions.get(node)
        if pos is not None:
            out[id(node)] = (pos.start.line, pos.start.column + 1)  # type: ignore[attr-defined]
    return out


def cold_statement_map(module: cst.Module, tree: ast.Module, cold_ids: set) -> dict:
    """{id(libcst statement): ast statement} for statements the pass may skip; {} if unsure."""
    try:
        pairs: dict = {}
        _pair_blocks(module.body, tree.body, pairs)
    except _Mismatch:
        return {}
    out = {}
    multi = pairs.get("multi", {})
    for key, node in pairs.items():
        if key in ("elif", "multi") or id(node) not in cold_ids:
            continue
        if key in multi and not all(id(n) in cold_ids for n in multi[key]):
            continue
        out[key] = node
    return out
