"""Importable output: a torch import that only flagged code inside functions needs moves into those functions.

A flag leaves the torch code it marks as written, and with it the torch import that code needs.
At module level that import makes the whole converted module need torch: a model file whose only
flag sits in a weight-init helper or a checkpoint loader could not even be imported where torch is
not installed. When every use of the names a module-level torch import binds is inside the body of
a function, the import moves into each outermost function holding such a use, right above the statement
that first uses them, inside the branch, loop, `with` or nested def that alone holds the uses (see
`_import_place`): the module
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


def localize_torch_imports(code: str, project_torch: frozenset = frozenset()) -> str:
    """`code` with each module-level torch import whose names only function bodies use moved into them.
    `project_torch`: names this file imports from other project files that are torch aliases there
    (`from .utils import tqdm`, where utils.py has `from torch.utils.model_zoo import tqdm`): such an import
    moves too, since the name needs torch as much as a torch import does."""
    if not _TORCH_IMPORT_AT_TOP.search(code) and not project_torch:
        return code  # the common case, decided by one regex
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    lines = code.splitlines(keepends=True)
    movable = [stmt for stmt in tree.body if (_is_torch_import(stmt) or _is_project_torch_import(stmt, project_torch))
               and _stands_alone(stmt, lines)]
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
    try:
        ast.parse(moved)
    except SyntaxError:  # a placement this module got wrong must not cost the file: keep the imports where they were
        return code
    return moved.lstrip("\r\n") if code[:1] not in ("\n", "\r") else moved  # the import was the first line


def _is_torch_import(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Import):
        return all(a.name == "torch" or a.name.startswith("torch.") for a in stmt.names)
    return (isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module is not None
            and (stmt.module == "torch" or stmt.module.startswith("torch."))
            and all(a.name != "*" for a in stmt.names))


def _is_project_torch_import(stmt: ast.stmt, project_torch: frozenset) -> bool:
    """`from .utils import tqdm` (or an absolute import of the project) binding only torch aliases of other files."""
    return (bool(project_torch) and isinstance(stmt, ast.ImportFrom) and all(a.name != "*" for a in stmt.names)
            and all((a.asname or a.name) in project_torch for a in stmt.names))


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
        elif isinstance(node, ast.Import) and node not in tree.body:
            # `import torch.utils.data` in a function binds `torch` to the torch module again: no other binding
            found.update(a.asname or a.name.split(".")[0] for a in node.names
                         if a.asname is not None or a.name.split(".")[0] != "torch")
        elif isinstance(node, ast.ImportFrom) and node not in tree.body:
            found.update(_bound_names(node) if not any(a.name == "*" for a in node.names) else ())
    return found


_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _uses(stmt: ast.stmt, names: set) -> bool:
    return any(type(n) is ast.Name and n.id in names for n in ast.walk(stmt))


def _import_place(function: ast.stmt, names: set, lines: list) -> tuple:
    """(line index, indent) where the moved import goes in `function`: right above the statement that first uses
    `names` (above its comments; after a docstring), so that code before it (`if not _has_ops(): return -1`) runs
    without torch. When that statement is the only user and holds every use in one block it runs after its
    header (an `if` branch whose test does not use them, a loop body, a `with` body, a nested def's body: the
    decorators of torchvision's _meta_registrations run `register_meta`, whose `wrapper` imports nothing unless
    `_has_ops()`), the import goes into that block, recursively. With torch installed the import cannot fail, so
    its place changes nothing. A `try` whose handler catches ImportError and whose body holds every use gets
    the import at the top of that body: without torch the function's own handler for a missing dependency runs."""
    return _place_in_block(function.body, names, lines, function) or (
        _body_insertion_line(function, lines), _indent(lines[function.body[0].lineno - 1]))


def _place_in_block(body: list, names: set, lines: list, owner=None):
    users = [i for i, stmt in enumerate(body) if _uses(stmt, names)]
    if not users:
        return None
    first = body[users[0]]
    if len(users) == 1:
        if _guards_imports(first, names, lines):
            return _place_in_block(first.body, names, lines) or _before(first.body[0], lines)
        for block in _inner_blocks(first, names):
            place = _place_in_block(block, names, lines, first if block is getattr(first, "body", None) else None)
            if place is not None:
                return place
    if users[0] == 0 and isinstance(owner, _FUNCTIONS):
        at = _body_insertion_line(owner, lines)
        return None if at is None else (at, _indent(lines[body[0].lineno - 1]))
    return _before(first, lines)


def _inner_blocks(stmt: ast.stmt, names: set) -> list:
    """The one block of `stmt` holding every use of `names` when its header does not use them, else []."""
    if isinstance(stmt, _FUNCTIONS):
        header = [*stmt.decorator_list, stmt.args, *([stmt.returns] if stmt.returns else [])]
        blocks = [stmt.body]
    elif isinstance(stmt, ast.If):
        header, blocks = [stmt.test], [stmt.body, stmt.orelse]
    elif isinstance(stmt, (ast.For, ast.AsyncFor)):
        header, blocks = [stmt.target, stmt.iter], [stmt.body, stmt.orelse]
    elif isinstance(stmt, ast.While):
        header, blocks = [stmt.test], [stmt.body, stmt.orelse]
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        header, blocks = list(stmt.items), [stmt.body]
    else:
        return []
    if any(type(n) is ast.Name and n.id in names for h in header for n in ast.walk(h)):
        return []
    holding = [b for b in blocks if b and any(_uses(s, names) for s in b)]
    return holding if len(holding) == 1 else []


def _before(stmt: ast.stmt, lines: list):
    """(line index, indent) right above `stmt` and the comment lines above it; None when it does not start its line
    (`a = 1; torch.f()`, `if x: torch.f()`)."""
    start = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])
    if lines[start - 1][:stmt.col_offset].strip() or lines[start - 1].lstrip().startswith(("elif ", "elif(")):
        return None  # an `elif` is the `if` in its `else` block: nothing can go above it
    at = start - 1
    while at - 1 >= 0 and _blank_or_comment(lines[at - 1]):
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
