"""Finish a rewritten module: MLX imports in, unused torch imports out, aliases chosen.

Generated code names MLX modules by sentinels (`__t2m_mod_mx__`); here each gets its
usual alias (`mx`, `nn`, `optim`, `np`) unless the user's remaining code still uses that
name for something else, in which case it becomes `mlx_nn` and so on.
"""
from __future__ import annotations

import ast
import io
import tokenize
from typing import Iterable

import libcst as cst

from torch2mlx.names import TORCH_ROOT
from torch2mlx.template import sentinel

MODULES = {  # alias -> (module, fallback alias), in the order imports are written
    "mx": ("mlx.core", "mlx_core"),
    "nn": ("mlx.nn", "mlx_nn"),
    "optim": ("mlx.optimizers", "mlx_optim"),
    "np": ("numpy", "numpy_"),
}


class OutputDoesNotParse(Exception):
    pass


def _loaded_names(code: str) -> tuple[set, bool]:
    """Names used anywhere in `code`, and whether it has torch imports below the top level."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:  # a bug in a rule or transform, never the user's fault
        raise OutputDoesNotParse(f"generated code does not parse at line {exc.lineno}: {exc.msg}") from None
    names = set()
    top = set(map(id, tree.body))
    nested_torch_import = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Import) and id(node) not in top:
            nested_torch_import |= any(_is_torch_module(a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and id(node) not in top:
            nested_torch_import |= _is_torch_module(node.module or "") and not node.level
    # names listed in __all__ count as used
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            for elt in getattr(node.value, "elts", []):
                if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                    names.add(elt.value)
    return names, nested_torch_import


class _NestedImportPruner(cst.CSTTransformer):
    """Unused torch imports inside functions and other blocks (rare, so a pass of its own)."""

    def __init__(self, used: set):
        super().__init__()
        self.used = used

    def leave_IndentedBlock(self, original, updated: cst.IndentedBlock) -> cst.IndentedBlock:
        body = []
        for stmt in updated.body:
            if isinstance(stmt, cst.SimpleStatementLine):
                pruned = _prune_torch_import(stmt, self.used)
                if pruned is None:
                    continue
                stmt = pruned
            body.append(stmt)
        if not body:
            body = [cst.SimpleStatementLine([cst.Pass()])]
        return updated.with_changes(body=body)


def _dotted(node: cst.BaseExpression) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{_dotted(node.value)}.{node.attr.value}"
    return ""


def _is_torch_module(name: str) -> bool:
    return name == TORCH_ROOT or name.startswith(TORCH_ROOT + ".")


def _prune_torch_import(stmt: cst.SimpleStatementLine, used: set, project_torch: frozenset = frozenset()):
    """The statement without its unused torch aliases; None when nothing is left; same object if untouched.

    `project_torch`: names this file imports from other project files that are torch aliases
    there (`from .utils import F`): pruned like torch imports when no longer used.
    """
    if len(stmt.body) != 1:
        return stmt
    imp = stmt.body[0]
    if isinstance(imp, cst.Import):
        keep = []
        for alias in imp.names:
            full = _dotted(alias.name)
            bound = alias.asname.name.value if alias.asname else full.split(".")[0]  # type: ignore[union-attr]
            if _is_torch_module(full) and bound not in used:
                continue
            keep.append(alias)
    elif isinstance(imp, cst.ImportFrom) and not isinstance(imp.names, cst.ImportStar):
        def local(a) -> str:
            return a.asname.name.value if a.asname else _dotted(a.name)  # type: ignore[union-attr]

        if not imp.relative and imp.module is not None and _is_torch_module(_dotted(imp.module)):
            keep = [a for a in imp.names if local(a) in used]
        elif project_torch:
            keep = [a for a in imp.names if local(a) in used or local(a) not in project_torch]
        else:
            return stmt
    else:
        return stmt
    if len(keep) == len(imp.names):  # type: ignore[arg-type]
        return stmt
    if not keep:
        return None
    keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return stmt.with_changes(body=[imp.with_changes(names=keep)])


def _is_import(stmt) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and all(isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body)


def _imports_torch(stmt) -> bool:
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return False
    imp = stmt.body[0]
    if isinstance(imp, cst.Import):
        return any(_is_torch_module(_dotted(a.name)) for a in imp.names)
    if isinstance(imp, cst.ImportFrom) and imp.module is not None and not imp.relative:
        return _is_torch_module(_dotted(imp.module))
    return False


def _existing_imports(body: Iterable) -> set:
    """(module, alias) pairs already imported at top level, so a second run adds nothing."""
    found = set()
    for stmt in body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for imp in stmt.body:
                if isinstance(imp, cst.Import):
                    for a in imp.names:
                        full = _dotted(a.name)
                        found.add((full, a.asname.name.value if a.asname else full))  # type: ignore[union-attr]
    return found


def _insert_at(body: list) -> int:
    """After the docstring and `from __future__` imports."""
    i = 0
    if body and isinstance(body[0], cst.SimpleStatementLine) and isinstance(body[0].body[0], cst.Expr) \
            and isinstance(body[0].body[0].value, (cst.SimpleString, cst.ConcatenatedString)):
        i = 1
    while i < len(body) and isinstance(body[i], cst.SimpleStatementLine) and isinstance(body[i].body[0], cst.ImportFrom) \
            and _dotted(body[i].body[0].module or cst.Name("_")) == "__future__":
        i += 1
    return i


class _Renderer:
    """Renders a module statement by statement, remembering each statement's text so the
    final render after import edits only renders what changed (one render, not two)."""

    def __init__(self, module: cst.Module):
        self.module = module
        self.cache: dict = {}

    def stmt(self, node) -> str:
        text = self.cache.get(id(node))
        if text is None:
            text = self.cache[id(node)] = self.module.code_for_node(node)
        return text

    def render(self, body) -> str:
        m = self.module
        parts = [m.code_for_node(h) for h in m.header]
        parts.extend(self.stmt(s) for s in body)
        parts.extend(m.code_for_node(f) for f in m.footer)
        code = "".join(parts)
        if not m.has_trailing_newline and code.endswith(m.default_newline):
            code = code[: -len(m.default_newline)]
        elif m.has_trailing_newline and not code:
            code = m.default_newline
        return code


# Not "# torch2mlx:": a line starting with that is a flag and nothing else (README, "Markers").
GENERATED_PREFIX = "# mlx helper generated by torch2mlx"
GENERATED_MARK = f"{GENERATED_PREFIX} (already MLX; later conversions leave it alone)"
# what earlier versions wrote; still recognised so their output converts to itself
LEGACY_GENERATED_MARK = "# torch2mlx: generated helper"


def is_generated_mark(comment: str) -> bool:
    return comment.startswith(GENERATED_PREFIX) or comment.startswith(LEGACY_GENERATED_MARK)


def _mark_generated(stmt):
    if isinstance(stmt, (cst.ClassDef, cst.FunctionDef)):
        return stmt.with_changes(leading_lines=[*stmt.leading_lines, cst.EmptyLine(comment=cst.Comment(GENERATED_MARK))])
    return stmt


def finish(module: cst.Module, roots_used: set, prelude: Iterable = (), *, project_torch: frozenset = frozenset()) -> str:
    """The final text. A torch import that only other project files used is removed too: they
    drop their `from .x import F` of it when they no longer use it (`project_torch`)."""
    renderer = _Renderer(module)
    draft = renderer.render(module.body)
    used, nested_torch_import = _loaded_names(draft)
    if nested_torch_import:
        module = module.visit(_NestedImportPruner(used))
        renderer = _Renderer(module)
    body = list(module.body)
    new_body: list = []
    first_torch_import = None
    slot_lines: list = []  # the removed first torch import's own blank lines and comments
    carried: list = []     # those of later removed imports, kept on the next statement
    for stmt in body:
        if isinstance(stmt, cst.SimpleStatementLine):
            pruned = _prune_torch_import(stmt, used, project_torch)
            is_first = first_torch_import is None and _imports_torch(stmt)
            if is_first:
                first_torch_import = len(new_body) + (0 if pruned is None else 1)
            if pruned is None:
                if is_first:
                    slot_lines = list(stmt.leading_lines)
                else:
                    carried.extend(stmt.leading_lines)
                continue
            stmt = pruned
        if carried and hasattr(stmt, "leading_lines"):
            stmt = stmt.with_changes(leading_lines=[*carried, *stmt.leading_lines])
            carried = []
        new_body.append(stmt)

    existing = _existing_imports(new_body)
    aliases = {}
    imports = []
    for alias in MODULES:
        if alias not in roots_used and sentinel(alias) not in draft:
            continue
        module_name, fallback = MODULES[alias]
        chosen = alias
        if alias in used and (module_name, alias) not in existing:
            chosen = fallback
        aliases[alias] = chosen
        if (module_name, chosen) not in existing:
            imports.append(cst.parse_statement(f"import {module_name} as {chosen}\n"))
    prelude = list(prelude)
    if imports or prelude:
        at = first_torch_import if first_torch_import is not None else _insert_at(new_body)
        if imports:
            imports[0] = imports[0].with_changes(leading_lines=slot_lines)
        else:
            prelude[0] = prelude[0].with_changes(leading_lines=slot_lines)
        after_imports = at + len(imports)
        new_body[at:at] = imports
        while after_imports < len(new_body) and _is_import(new_body[after_imports]):
            after_imports += 1
        if prelude:  # definitions the transforms emit: set apart by blank lines, PEP 8 style
            prelude = [_mark_generated(p) for p in prelude]
            blank = [cst.EmptyLine(), cst.EmptyLine()]
            prelude[0] = prelude[0].with_changes(leading_lines=blank + [l for l in prelude[0].leading_lines if l.comment])
            if after_imports < len(new_body) and not new_body[after_imports].leading_lines:
                new_body[after_imports] = new_body[after_imports].with_changes(leading_lines=blank)
        new_body[after_imports:after_imports] = prelude
    elif slot_lines and first_torch_import is not None and first_torch_import < len(new_body):
        nxt = new_body[first_torch_import]
        new_body[first_torch_import] = nxt.with_changes(leading_lines=[*slot_lines, *nxt.leading_lines])
    code = renderer.render(new_body)
    for alias, chosen in aliases.items():
        code = code.replace(sentinel(alias), chosen)
    return drop_repeated_flags(code)


FLAG_PREFIX = "# torch2mlx: "


def drop_repeated_flags(code: str) -> str:
    """One flag line per root cause per statement: a flag repeated in the comment lines above one
    statement (a transform that marks a statement an earlier conversion already marked) is dropped."""
    if code.count(FLAG_PREFIX) < 2:
        return code
    lines = code.splitlines(keepends=True)
    repeated: list = []
    seen: set = set()  # the flags of the comment lines above the statement being read
    for i, line in enumerate(lines):
        text = line.strip()
        if text.startswith(FLAG_PREFIX):
            if text in seen:
                repeated.append(i)
            seen.add(text)
        elif not text.startswith("#"):  # code or a blank line ends the block of comments
            seen = set()
    if not repeated:
        return code
    try:  # only comment lines count: a string may hold such a line too
        comments = {tok.start[0] - 1 for tok in tokenize.generate_tokens(io.StringIO(code).readline)
                    if tok.type == tokenize.COMMENT and not tok.line[:tok.start[1]].strip()}
    except (tokenize.TokenError, SyntaxError):
        return code
    drop = set(repeated) & comments
    return "".join(line for i, line in enumerate(lines) if i not in drop)
