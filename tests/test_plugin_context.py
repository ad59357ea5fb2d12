"""Plugins (transforms, handlers) talk to the pass only through `context.PluginContext`."""
from __future__ import annotations

import ast
from pathlib import Path

import libcst as cst

import torch2mlx
from torch2mlx.context import PluginContext
from torch2mlx.rewriter import TableRewriter
from torch2mlx.api import build_index
from torch2mlx.names import analyze

PKG = Path(torch2mlx.__file__).parent
PLUGIN_NAMES = {"rw", "rewriter", "ctx", "context"}  # how plugins name the context they receive
FIELDS = {"statement_findings", "converted", "findings", "module_prelude", "roots_used", "statement_stack",
          "identity_calls", "cold", "transforms", "scope_list", "context", "__dict__", "_rw"}
ALLOWED: set = set()  # plugin modules not migrated yet (none left)


def _plugin_modules():
    for sub in ("transforms", "handlers"):
        for path in sorted((PKG / sub).rglob("*.py")):  # feature packages (transforms/layout/, ...) included
            yield path.relative_to(PKG).as_posix(), path


def _receiver_name(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr  # self.rw
    return None


def _violations(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _receiver_name(node.value) in PLUGIN_NAMES:
            if node.attr in FIELDS or node.attr.startswith("_"):
                found.append(f"line {node.lineno}: .{node.attr}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                "getattr", "setattr", "hasattr", "delattr", "vars") and node.args and _receiver_name(node.args[0]) in PLUGIN_NAMES:
            found.append(f"line {node.lineno}: {node.func.id}({_receiver_name(node.args[0])}, ...)")
    return found


def test_plugins_touch_no_rewriter_field():
    bad = {}
    for name, path in _plugin_modules():
        if name in ALLOWED:
            continue
        found = _violations(ast.parse(path.read_text()))
        if found:
            bad[name] = found
    assert not bad, f"plugins must use the PluginContext's methods, not the rewriter's fields: {bad}"


def test_the_allowed_modules_exist():
    """An allow-list entry names a plugin module by path (feature packages: transforms/layout/...)."""
    assert ALLOWED <= {name for name, _ in _plugin_modules()}


def test_the_context_has_no_fallback_to_the_rewriter():
    """A field the context does not offer is an error, not the rewriter's (no transitional __getattr__)."""
    ctx = _context()
    for field in ("statement_findings", "transforms", "scope_list", "converted"):
        try:
            getattr(ctx, field)
        except AttributeError:
            continue
        raise AssertionError(f"the context passes `{field}` through to the rewriter")


def test_the_check_catches_field_edits():
    code = ("def hook(rw, node):\n    rw.statement_findings[-1] = []\n    rw.converted += 1\n"
            "    getattr(rw, 'transforms')\n    rw.__dict__.setdefault('x', set())\n")
    assert len(_violations(ast.parse(code))) == 4


def _context() -> PluginContext:
    tree = ast.parse("import torch\n")
    module_scope, scopes = analyze(tree)
    rewriter = TableRewriter(build_index(), module_scope, scopes)
    return rewriter.context


def test_add_helper_once_per_file():
    ctx = _context()
    built = []

    def build():
        built.append(1)
        return [cst.parse_statement("def helper():\n    pass\n")]

    assert ctx.add_helper("helper", build) is True
    assert ctx.add_helper("helper", build) is False
    assert ctx.has_helper("helper") and len(built) == 1
    assert len(ctx._rw.module_prelude) == 1
    other = _context()  # a new file: a new context
    assert other.add_helper("helper", build) is True


def test_drop_flags_of_the_current_statement():
    ctx = _context()
    a, b = cst.Name("a"), cst.Name("b")
    ctx.flag(a, "r1", "no-equivalent", "one")
    ctx.flag(a, "r2", "unknown-api", "two")
    ctx.flag(b, "r1", "no-equivalent", "three", "info")
    assert ctx.drop_flags(a, rule_id="r1") == 1
    assert [f.message for f in ctx.flags()] == ["two", "three"]
    assert ctx.drop_flags(predicate=lambda f: f.severity == "info") == 1
    assert ctx.drop_flags(kind="unknown-api") == 1
    assert ctx.flags() == ()
    ctx.count_conversion(2)
    ctx.need_import("mx")
    assert ctx._rw.converted == 2 and ctx._rw.roots_used == {"mx"}
    assert ctx.state("k", set) is ctx.state("k", list)
