"""What may import what: no import cycles in torch2mlx, and the core never imports a plugin.

The graph is read with `ast` from every module of the package, and *every* import counts:
module level, inside functions, inside `try` or `if`. A function-level import hides a cycle
from the interpreter but not from a reader, so it is a cycle here too.

Edges: `import torch2mlx.a.b` and `from torch2mlx.a import b` (b a submodule) point at
`torch2mlx.a.b`; `from torch2mlx.a import name` points at `torch2mlx.a`. A package's
`__init__` is a module: importing `torch2mlx.table.model` from outside `torch2mlx.table`
also runs (so depends on) `torch2mlx.table/__init__.py`. A module inside a package does
not depend on that package's `__init__` by importing a sibling: the package is always
being initialised before any of its modules runs.

Layers (docs/architecture.md, "What may import what"):
- the rule table (`torch2mlx.table.*`) is the bottom: it imports no other torch2mlx module;
- plugins are the modules of `torch2mlx.transforms` and `torch2mlx.handlers`, sub-packages
  included (the transforms' feature packages `layout/`, `init/`, `inplace/`, `module/`, `training/`,
  `data/`); they may import anything below them (core, table, other plugins). Among them,
  `transforms/codegen.py` (generated MLX code, used by several feature packages and handlers)
  imports no other plugin;
- the core (everything else) never imports a plugin module. It calls the two plugin
  registries, the packages' `__init__` modules, and only their discovery points:
  `transforms.discover` / `transforms.hooks_for` and `handlers.run`. A registry loads its
  plugins by name (importlib) when called, never at import time and never by an `import`
  statement, so importing the core loads no plugin (checked in a fresh interpreter below).
  Both walk their sub-packages; the handler registry walks the transforms package too, since a
  feature package may define handlers (transforms/module/), so every handler a rule names exists
  without `transforms.discover()` (checked below).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "torch2mlx"
ROOT = "torch2mlx"
TABLE = "torch2mlx.table"
REGISTRIES = {  # plugin package -> the only names the core may use from it (discovery points)
    "torch2mlx.transforms": {"discover", "hooks_for"},
    "torch2mlx.handlers": {"run"},
}
SHARED_PLUGINS = {"torch2mlx.transforms.codegen"}  # used across feature packages: import no other plugin
# Edges of a cycle that can only be broken in a module this test's change did not own.
# Each entry says how to break it; remove it when done (the test fails while an entry is stale).
KNOWN_EDGES: set = set()


def _modules() -> dict[str, tuple[Path, bool]]:
    """module name -> (file, is a package)"""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


MODULES = _modules()


def _existing(name: str) -> str:
    """The innermost module of this package that `name` lies in."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _imports(module: str) -> list[tuple[str, ast.stmt, tuple[str, ...], str]]:
    """(imported torch2mlx module, the statement, names taken from it, the name the module is bound to):
    `from torch2mlx.a import f` gives ("torch2mlx.a", node, ("f",), ""), `from torch2mlx import a`
    gives ("torch2mlx.a", node, (), "a")."""
    path, is_package = MODULES[module]
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _inside(alias.name, ROOT):
                    found.append((_existing(alias.name), node, (), alias.asname or alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            if not _inside(source, ROOT):
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in MODULES:
                    found.append((sub, node, (), alias.asname or alias.name))
                else:
                    found.append((_existing(source), node, (alias.name,), ""))
    return found


def _graph() -> dict[str, dict[str, int]]:
    """module -> {module it depends on: line of the first import}"""
    graph: dict[str, dict[str, int]] = {}
    for module in MODULES:
        edges = graph.setdefault(module, {})
        for target, node, _, _ in _imports(module):
            # the target and the packages above it whose __init__ importing it runs
            chain = target.split(".")
            for n in range(len(chain), 0, -1):
                dep = ".".join(chain[:n])
                if dep != target and _inside(module, dep):
                    break
                if dep != module:
                    edges.setdefault(dep, node.lineno)
    return graph


GRAPH = _graph()


def _find_cycle(graph: dict[str, dict[str, int]]) -> list[str]:
    """One cycle as a list of modules (first == last), or []."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state:
                cycle = visit(dep)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def _describe(cycle: list[str], graph: dict) -> str:
    return "\n  ".join(f"{a} -> {b}  ({MODULES[a][0].relative_to(PACKAGE.parent)}:{graph[a][b]})"
                       for a, b in zip(cycle, cycle[1:]))


def test_the_graph_sees_function_level_and_package_imports():
    assert "torch2mlx.table" in MODULES and "torch2mlx.table.loader" in MODULES
    assert "torch2mlx.transforms" in GRAPH["torch2mlx.api"]  # `from torch2mlx.transforms import discover` in a function
    assert "torch2mlx.table" in GRAPH["torch2mlx.binding"]  # torch2mlx.table.model runs table/__init__.py
    assert "torch2mlx.table" not in GRAPH["torch2mlx.table.loader"]  # a sibling: the package is already loading
    assert _find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]


def test_no_import_cycles():
    graph = {m: {d: line for d, line in deps.items() if (m, d) not in KNOWN_EDGES} for m, deps in GRAPH.items()}
    cycle = _find_cycle(graph)
    assert not cycle, "import cycle (function-level imports count):\n  " + _describe(cycle, graph)


def test_known_edges_still_exist():
    stale = sorted(edge for edge in KNOWN_EDGES if edge[1] not in GRAPH[edge[0]])
    assert not stale, f"remove from KNOWN_EDGES, the import is gone: {stale}"


def _is_plugin(module: str) -> bool:
    return any(module.startswith(package + ".") for package in REGISTRIES)


def test_the_rule_table_is_the_bottom_layer():
    wrong = [f"{m} imports {d}" for m, deps in GRAPH.items() if _inside(m, TABLE)
             for d in deps if not _inside(d, TABLE) and d != ROOT]
    assert not wrong, wrong


def _attribute_uses(module: str, bound: str) -> set[str]:
    """Attributes read from a module bound to `bound` ("handlers" or "torch2mlx.handlers"): {"run"}."""
    used = set()
    for node in ast.walk(ast.parse(MODULES[module][0].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute):
            chain, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                dotted = ".".join([value.id, *reversed(chain)])
                if dotted.startswith(bound + ".") and "." not in dotted[len(bound) + 1:]:
                    used.add(dotted[len(bound) + 1:])
    return used


def test_the_core_never_imports_a_plugin():
    wrong = []
    for module in MODULES:
        if _is_plugin(module):
            continue
        for target, node, names, bound in _imports(module):
            where = f"{MODULES[module][0].relative_to(PACKAGE.parent)}:{node.lineno}"
            if _is_plugin(target):
                wrong.append(f"{where}: {module} imports the plugin {target}")
            elif target in REGISTRIES and module not in REGISTRIES:
                # a discovery point: the registry imports its plugins by name when called
                if not names:  # the registry module itself: check what is read from it
                    names = tuple(_attribute_uses(module, bound))
                extra = sorted(set(names) - REGISTRIES[target])
                if extra:
                    wrong.append(f"{where}: {module} uses {extra} of {target}; the core may only call "
                                 f"its discovery points {sorted(REGISTRIES[target])}")
    assert not wrong, "\n".join(dict.fromkeys(wrong))


def test_a_registry_imports_no_plugin_by_an_import_statement():
    wrong = [f"{r} imports {t}" for r in REGISTRIES for t, _, _, _ in _imports(r) if _is_plugin(t)]
    assert not wrong, wrong


def test_a_shared_plugin_imports_no_other_plugin():
    wrong = [f"{m} imports {t}" for m in SHARED_PLUGINS for t, _, _, _ in _imports(m) if _is_plugin(t) and t != m]
    assert not wrong, wrong


def test_discovery_walks_the_feature_packages():
    """`transforms.discover()` finds every Transform subclass with an id in any module under transforms/
    (a feature package without `__init__.py`, which pkgutil does not walk, fails here)."""
    code = ("import importlib, pathlib, torch2mlx.transforms as t\n"
            "root = pathlib.Path(t.__file__).parent\n"
            "found = set()\n"
            "for path in sorted(root.rglob('*.py')):\n"
            "    parts = path.relative_to(root).with_suffix('').parts\n"
            "    name = '.'.join(('torch2mlx.transforms', *parts[:-1], *([] if parts[-1] == '__init__' else parts[-1:])))\n"
            "    for v in vars(importlib.import_module(name)).values():\n"
            "        if isinstance(v, type) and issubclass(v, t.Transform) and v is not t.Transform and v.id:\n"
            "            found.add(v.id)\n"
            "ids = [c.id for c in t.discover()]\n"
            "assert len(ids) == len(set(ids)), ids\n"
            "assert set(ids) == found, sorted(found ^ set(ids))\n"
            "print(len(ids))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 15


def test_every_handler_a_rule_names_registers_without_transforms_discover():
    """The handler registry loads the handlers defined in feature packages itself (they used to exist only
    as a side effect of `transforms.discover()`)."""
    code = ("from torch2mlx import handlers\n"
            "from torch2mlx.table import load_default_table\n"
            "handlers._discover()\n"
            "print(sorted({r.handler for r in load_default_table() if r.handler} - set(handlers.HANDLERS)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout
    assert out.strip() == "[]", f"rules name handlers no registry walk registers: {out}"


def test_importing_the_core_loads_no_plugin():
    # the transformers stand-ins are imported by converted code (`--hub transformers`), not by the converter, and
    # need transformers installed (CI's environment does not have it)
    core = sorted(m for m in MODULES if not _is_plugin(m) and m not in ("torch2mlx.__main__",)
                  and not m.startswith("torch2mlx.hub.transformers"))
    code = (f"import importlib, sys\nfor m in {core!r}:\n    importlib.import_module(m)\n"
            f"print(sorted(m for m in sys.modules if m.startswith(('torch2mlx.transforms.', 'torch2mlx.handlers.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout
    assert out.strip() == "[]", f"importing the core loaded plugins: {out}"


def test_the_core_layout_facts_agree_with_the_nn_layout_tables():
    """project.py reads the channels-last layers from the core (layout_facts.py), not from the plugin;
    transforms/layout/tables.py should import them from there (until it does, they must agree)."""
    from torch2mlx import layout_facts
    from torch2mlx.transforms.layout import tables

    for name in ("SPATIAL", "ADAPTIVE", "KEEP"):
        assert getattr(layout_facts, name) == getattr(tables, name), name
