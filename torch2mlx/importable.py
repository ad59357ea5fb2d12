"""Importable output: a torch import that only flagged code inside functions needs moves into those functions.

A flag leaves the torch code it marks as written, and with it the torch import that code needs.
At module level that import makes the whole converted module need torch: a model file whose only
flag sits in a weight-init helper or a checkpoint loader could not even be imported where torch is
not installed. When every use of the names a module-level torch import binds is inside the body of
a function, the import moves into each outermost function holding such a use, above the first statement
of its body that uses them (or into a `try` that catches ImportError, see `_import_place`): the module
imports without torch, and so does every function but those. The exit code still says 1 (the flags
stay where they are).

Nothing moves when a name is used where the module's own execution reads it (module level, a class
body, a decorator, a default value, an annotation of a signature, a lambda outside a function), when
the import shares its line with another statement or carries a flag or comment of its own, or when
a function's body starts on its `def` line. The moved import is written exactly as it was.
"""
from __future__ import annotations

import ast
import re

_TORCH_IMPORT_AT_TOP = re.compile(r"^(?:import[ \t]+torch\b|from[ \t]+torch\b)", re.MULTILINE)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def localize_torch_imports(code: str) -> str:
    """`code` with each module-level torch import whose names only function bodies use moved into them."""
    if not _TORCH_IMPORT_AT_TOP.search(code):
        return code  # the common case, decided by one regex
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    lines = code.splitlines(keepends=True)
    movable = [stmt for stmt in tree.body if _is_torch_import(stmt) and _stands_alone(stmt, lines)]
    if not movable:
        return code
    users = _users(tree)  # name -> outermost functions using it, or None where module code reads it
    stored = _stored_names(tree)
    edits: list = []  # (line index, lines to delete, text to insert)
    targets: dict = {}  # id(function) -> (function, [import texts])
    for stmt in movable:
        names = _bound_names(stmt)
        functions: dict = {}
        if any(name in stored or users.get(name, ()) is None for name in names):
            continue
        for name in names:
            for function in users.get(name, ()):
                functions[id(function)] = function
        if not functions or not all(_body_insertion_line(f, lines) is not None for f in functions.values()):
            continue  # unused (the audit flags it), or a body that starts on its `def` line
        text = "".join(lines[stmt.lineno - 1:stmt.end_lineno])
        edits.append((stmt.lineno - 1, stmt.end_lineno - stmt.lineno + 1, ""))
        for key, function in functions.items():
            target = targets.setdefault(key, (function, [], set()))
            target[1].append(text)
            target[2].update(names)
    for function, texts, names in targets.values():
        at, indent = _import_place(function, names, lines)
        edits.append((at, 0, "".join(indent + t.lstrip(" \t") for t in texts)))
    for at, delete, insert in sorted(edits, key=lambda e: e[0], reverse=True):
        lines[at:at + delete] = [insert] if insert else []
    moved = "".join(lines)
    return moved.lstrip("\r\n") if code[:1] not in ("\n", "\r") else moved  # the import was the first line


def _is_torch_import(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Import):
        return all(a.name == "torch" or a.name.startswith("torch.") for a in stmt.names)
    return (isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module is not None
            and (stmt.module == "torch" or stmt.module.startswith("torch."))
            and all(a.name != "*" for a in stmt.names))


def _bound_names(stmt: ast.stmt) -> set:
    if isinstance(stmt, ast.Import):
        return {a.asname or a.name.split(".")[0] for a in stmt.names}
    return {a.asname or a.name for a in stmt.names}


def _stands_alone(stmt: ast.stmt, lines: list) -> bool:
    """The statement has its lines to itself (no `;`, no trailing comment) and no comment right above it."""
    first, last = lines[stmt.lineno - 1], lines[stmt.end_lineno - 1]
    if first[:stmt.col_offset].strip() or last.encode("utf-8")[stmt.end_col_offset:].decode("utf-8", "replace").strip():
        return False
    return stmt.lineno == 1 or not lines[stmt.lineno - 2].lstrip().startswith("#")


def _users(tree: ast.Module) -> dict:
    """Name -> the outermost functions whose bodies load it; None when code outside any function body does."""
    users: dict = {}
    stack: list = [(tree, None)]  # (node, outermost function whose body holds it)
    while stack:
        node, function = stack.pop()
        if isinstance(node, _FUNCTIONS):
            outside = [*node.decorator_list, node.args, *([node.returns] if node.returns else [])]
            stack.extend((child, function) for child in outside)
            stack.extend((child, function or node) for child in node.body)
            continue
        if isinstance(node, ast.Lambda) and function is None:
            stack.append((node.body, None))
            stack.append((node.args, None))
            continue
        if type(node) is ast.Name and type(node.ctx) is ast.Load:
            if function is None:
                users[node.id] = None
            elif users.get(node.id, ()) is not None:
                users.setdefault(node.id, []).append(function)
            continue
        stack.extend((child, function) for child in ast.iter_child_nodes(node))
    return {name: None if found is None else list({id(f): f for f in found}.values()) for name, found in users.items()}


def _stored_names(tree: ast.Module) -> set:
    """Names bound other than by a module-level import (assigned, deleted, a def, an import elsewhere...)."""
    found: set = set()
    for node in ast.walk(tree):
        if type(node) is ast.Name and type(node.ctx) is not ast.Load:
            found.add(node.id)
        elif isinstance(node, (*_FUNCTIONS, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            found.update(node.names)
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and node not in tree.body:
            found.update(_bound_names(node) if not any(a.name == "*" for a in node.names) else ())
    return found


_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _uses(stmt: ast.stmt, names: set) -> bool:
    return any(type(n) is ast.Name and n.id in names for n in ast.walk(stmt))


def _import_place(function: ast.stmt, names: set, lines: list) -> tuple:
    """(line index, indent) where the moved import goes in `function`: above the first statement of its body that
    uses `names` (after a docstring, above that statement's comments), so that code before it (`if not
    _has_ops(): return -1`) runs without torch; with torch installed the import cannot fail, so its place
    changes nothing. When that statement is the only user and a `try` whose handler catches ImportError holds
    every use in its body (`try: torch.ops.load_library(p) except (ImportError, OSError): return False`), the
    import goes to the top of that body: without torch the function's own handler for a missing dependency runs."""
    users = [i for i, stmt in enumerate(function.body) if _uses(stmt, names)]
    first = function.body[users[0]] if users else None
    if first is not None and len(users) == 1 and _guards_imports(first, names, lines):
        return _body_insertion_line(first, lines), _indent(lines[first.body[0].lineno - 1])
    top = _body_insertion_line(function, lines), _indent(lines[function.body[0].lineno - 1])
    if first is None or users[0] == 0:
        return top
    start = min([first.lineno, *(d.lineno for d in getattr(first, "decorator_list", []))])
    if lines[start - 1][:first.col_offset].strip() or start - 1 < top[0]:
        return top  # `a = 1; torch.f()`: the statement does not start its line
    at = start - 1
    while at - 1 >= top[0] and _blank_or_comment(lines[at - 1]):
        at -= 1
    return at, _indent(lines[start - 1])


def _guards_imports(stmt: ast.stmt, names: set, lines: list) -> bool:
    """A `try` whose body holds every use of `names` and one of whose handlers catches ImportError."""
    if not isinstance(stmt, ast.Try) or _body_insertion_line(stmt, lines) is None:
        return False
    if not any(_uses(s, names) for s in stmt.body):
        return False
    if any(_uses(s, names) for part in (stmt.handlers, stmt.orelse, stmt.finalbody) for s in part):
        return False
    for handler in stmt.handlers:
        kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if handler.type is None or any(isinstance(k, ast.Name) and k.id in _IMPORT_ERRORS for k in kinds):
            return True
    return False


def _body_insertion_line(function: ast.stmt, lines: list):
    """The line index before which an import goes at the top of `function`'s body (after a docstring, above the
    comments of the first statement); None when the body starts on the `def` line."""
    first = function.body[0]
    if lines[first.lineno - 1][:first.col_offset].strip():
        return None  # `def f(): return torch.x`
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)):
        return first.end_lineno  # right after the docstring
    at = first.lineno - 1
    while at - 1 >= function.lineno and _blank_or_comment(lines[at - 1]):
        at -= 1
    return at


def _blank_or_comment(line: str) -> bool:
    text = line.strip()
    return not text or text.startswith("#")


def _indent(line: str) -> str:
    return line[:len(line) - len(line.lstrip(" \t"))]
