"""Name resolution without libcst metadata: a quick stdlib-`ast` pre-pass.

libcst's QualifiedNameProvider costs several times a parse (docs/performance.md), so the
converter resolves names itself: one `ast` walk records, for the module and for every
def/class (in source order, which is also libcst's visiting order), the torch
imports bound there and every other binding of a name. A name that is bound both by
a torch import and by anything else in the same scope is ambiguous and never
rewritten: a local variable called `torch` or a user's own `F` stays untouched.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Iterable, Optional

from torch2mlx import scalar_facts
from torch2mlx.array_facts import MLX_NN_NON_ARRAY_LAYERS
from torch2mlx.imports import absolute_import
from torch2mlx.torch_facts import NON_TENSOR_MODULES

TORCH_ROOT = "torch"


@dataclass
class Scope:
    kind: str  # module | function | class
    parent: Optional["Scope"]
    imports: dict = field(default_factory=dict)  # local name -> torch qualified name
    other: set = field(default_factory=set)      # names bound any other way
    modules: set = field(default_factory=set)    # names bound by non-torch imports
    mlx_core: set = field(default_factory=set)   # names bound to mlx.core (`import mlx.core as mx`)
    mlx_nn: set = field(default_factory=set)     # names bound to mlx.nn (`import mlx.nn as nn`), for a second pass
    interesting: bool = True                     # mentions a torch alias or a rule's method name
    nested_count: int = 0                        # defs/classes inside it, for skipping
    submodules: frozenset = frozenset()          # class: attributes `self.<name>(...)` of which is a tensor (layers, methods)
    tensor_attributes: frozenset = frozenset()   # class: attributes every store of which is a tensor (value_facts)
    optional_attributes: frozenset = frozenset()  # class: attributes every store of which is a tensor or None, one a tensor
    tensor_params: frozenset = frozenset()       # function: parameters every in-file call passes a tensor (value_facts)
    tensor_tuples: dict = field(default_factory=dict)  # module: functions, class: methods -> (element i a tensor, ...)
    project_classes: set = field(default_factory=set)  # nn.Module subclasses imported from other project files
    hub_names: dict = field(default_factory=dict)  # module: local name -> the transformers name of its hub stand-in (hub/)
    config_ints: dict = field(default_factory=dict)  # module: config class -> fields always holding an int (hub/)
    config_params: dict = field(default_factory=dict)  # function: parameter -> the config class it holds (value_facts)
    int_attributes: frozenset = frozenset()      # class: attributes every store of which is an int (value_facts)
    class_ints: dict = field(default_factory=dict)  # module: class bound once -> its int_attributes (value_facts)
    node: Optional[ast.AST] = None               # the ast of the scope (module, def or class)
    _scalars: Optional[tuple] = None             # (int names, shadowed builtins): scalar_facts.int_names
    _ints: Optional[frozenset] = None            # int_names(), read once
    _strs: Optional[frozenset] = None            # str_names(), read once
    _str_dicts: Optional[frozenset] = None       # module: scalar_facts.str_key_dicts, read once

    def int_names(self) -> frozenset:
        """Names every binding of which in this scope is a Python int (`scalar_facts.int_names`), read once; with
        `config.<field>` for a parameter `config: <Config>` never rebound, the field of that config class always an
        int (`config_ints`: a strict transformers config)."""
        if self._ints is None:
            self._ints = self._scalar_facts()[0] | self._config_fields() | self._self_ints()
        return self._ints

    def own_int_names(self) -> frozenset:
        """`int_names` without the class's int attributes (what value_facts reads while finding those)."""
        return self._scalar_facts()[0] | self._config_fields()

    def _self_ints(self) -> frozenset:
        """`self.x` for the int attributes of the class this def is a method of (its first parameter, never rebound)."""
        node, parent = self.node, self.parent
        if (parent is None or parent.kind != "class" or not parent.int_attributes
                or not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node not in parent.node.body):
            return frozenset()
        first = (node.args.posonlyargs + node.args.args)[:1]
        if not first or first[0].arg != "self" or any(
                isinstance(d, ast.Name) and d.id in ("staticmethod", "classmethod") for d in node.decorator_list):
            return frozenset()
        if any(isinstance(n, ast.Name) and n.id == "self" and not isinstance(n.ctx, ast.Load) for n in ast.walk(node)):
            return frozenset()
        return frozenset(f"self.{a}" for a in parent.int_attributes)

    def _config_fields(self) -> frozenset:
        module = self
        while module.parent is not None:
            module = module.parent
        if not module.config_ints or not isinstance(self.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return frozenset()
        args = self.node.args
        found = set()
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            ann = a.annotation
            if a.arg in self.config_params:  # (value_facts: annotated, or passed one at every construction)
                found.update(f"{a.arg}.{name}" for name in module.config_ints[self.config_params[a.arg]])
                continue
            if not (isinstance(ann, ast.Name) and ann.id in module.config_ints) or self._rebinds(a.arg, ann.id):
                continue
            found.update(f"{a.arg}.{name}" for name in module.config_ints[ann.id])
        return frozenset(found)

    def _rebinds(self, param: str, annotation: str) -> bool:
        """Whether the def binds `param` other than as its parameter, or the config class' name is bound other
        than by the module's import."""
        module = self
        while module.parent is not None:
            module = module.parent
        bindings = 0  # of the class' name anywhere in the file: the import only
        for node in ast.walk(module.node):
            if isinstance(node, ast.Name) and node.id == annotation and not isinstance(node.ctx, ast.Load):
                bindings += 1
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                bindings += sum((a.asname or a.name).split(".")[0] == annotation for a in node.names)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == annotation:
                bindings += 1
            elif isinstance(node, ast.arg) and node.arg == annotation:
                bindings += 1
            elif isinstance(node, (ast.Global, ast.Nonlocal)) and annotation in node.names:
                bindings += 2
        if bindings != 1:
            return True
        for node in ast.walk(self.node):
            if isinstance(node, ast.Name) and node.id == param and not isinstance(node.ctx, ast.Load):
                return True
            if isinstance(node, (ast.Global, ast.Nonlocal)) and param in node.names:
                return True
        return False

    def _scalar_facts(self) -> tuple:
        if self._scalars is None:
            outer = self.parent._scalar_facts()[1] if self.parent is not None else frozenset()
            if self.node is None:
                self._scalars = (frozenset(), outer)
            else:
                ints, shadowed = scalar_facts.int_names(self.node, outer)
                self._scalars = (ints, outer | shadowed)
        return self._scalars

    def str_names(self) -> frozenset:
        """Names every binding of which in this scope is a Python str (`scalar_facts.str_names`), read once: a str
        receiver's `.split(...)` is str.split, never a tensor's."""
        if self._strs is None:
            module = self
            while module.parent is not None:
                module = module.parent
            if self.node is None or module.node is None:
                self._strs = frozenset()
            else:
                if module._str_dicts is None:
                    module._str_dicts = scalar_facts.str_key_dicts(module.node)
                self._strs = scalar_facts.str_names(self.node, self._scalar_facts()[1], module._str_dicts)
        return self._strs

    def tuple_names(self) -> frozenset:
        """Names every binding of which in this scope is a tuple (`scalar_facts.tuple_names`), with the
        builtins shadowed around the scope (a user's own `tuple`, `len`) as `int_names` reads them."""
        if self.node is None:
            return frozenset()
        return scalar_facts.tuple_names(self.node, self._scalar_facts()[1], self.int_names())

    def resolve(self, name: str) -> Optional[str]:
        """Qualified torch name that `name` refers to here, or None."""
        scope: Optional[Scope] = self
        first = True
        while scope is not None:
            if scope.kind == "class" and not first:
                scope = scope.parent
                continue
            if name in scope.other:
                return None
            if name in scope.imports:
                return scope.imports[name]
            scope = scope.parent
            first = False
        return None

    def is_bound_locally(self, name: str) -> bool:
        return name in self.other or name in self.imports


def star_names(facts, source: str) -> list:
    """(name, full name) of the public names of module `source` among `facts` (full names): what
    `from source import *` brings in (its `__all__` is not read: a fact it leaves out still counts)."""
    prefix = f"{source}."
    return [(full[len(prefix):], full) for full in facts
            if full.startswith(prefix) and "." not in full[len(prefix):] and not full[len(prefix)].startswith("_")]


def _import_bindings(node: ast.AST, project=None) -> Iterable[tuple[str, Optional[str]]]:
    """(local name, torch qualified name or None) for an import statement.

    With `project` (a ProjectIndex and this file's module name), a name imported from
    another project file that is a torch alias there (`from .utils import F`) counts too.
    """
    if isinstance(node, ast.Import):
        for alias in node.names:
            root = alias.name.split(".")[0]
            if alias.asname:
                qual = alias.name if root == TORCH_ROOT else None
                yield alias.asname, qual
            else:
                yield root, root if root == TORCH_ROOT else None
    elif isinstance(node, ast.ImportFrom):
        module = node.module or ""
        is_torch = node.level == 0 and (module == TORCH_ROOT or module.startswith(TORCH_ROOT + "."))
        source = None
        if not is_torch and project is not None:
            index, this_module, is_package = project
            source = absolute_import(this_module, node, is_package)
        for alias in node.names:
            if alias.name == "*":
                if source is not None:  # `from .parts import *` in a directory run: what parts binds to torch
                    yield from ((name, project[0].aliases[full]) for name, full in star_names(project[0].aliases, source))
                continue
            qual = f"{module}.{alias.name}" if is_torch else None
            if source is not None:
                qual = project[0].aliases.get(f"{source}.{alias.name}")
            yield alias.asname or alias.name, qual


class _Collector(ast.NodeVisitor):
    """Fills one Scope with bindings; nested scopes get their own collector."""

    def __init__(self, scope: Scope, all_scopes: list, hot_names: set, hot_attrs: frozenset, project=None):
        self.project = project  # (ProjectIndex, this file's module name) or None
        self.scope = scope
        self.all_scopes = all_scopes
        self.hot_names = hot_names
        self.hot_attrs = hot_attrs
        self.interesting = False

    def _mentions_hot(self, node: ast.AST) -> bool:
        return any((isinstance(n, ast.Name) and n.id in self.hot_names)
                   or (isinstance(n, ast.Attribute) and n.attr in self.hot_attrs) for n in ast.walk(node))

    def _bind(self, name: str) -> None:
        self.scope.other.add(name)

    def visit_Import(self, node: ast.AST) -> None:
        for name, qual in _import_bindings(node, self.project):
            if qual is None:
                self._bind(name)
                self.scope.modules.add(name)
                if isinstance(node, ast.Import) and any(a.name == "mlx.core" and (a.asname or "mlx") == name for a in node.names):
                    self.scope.mlx_core.add(name)
                if isinstance(node, ast.Import) and any(a.name == "mlx.nn" and a.asname == name for a in node.names):
                    self.scope.mlx_nn.add(name)
            else:
                self.scope.imports[name] = qual
                self.hot_names.add(name)
                self.interesting = True

    visit_ImportFrom = visit_Import

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self._bind(node.id)
        if node.id in self.hot_names:
            self.interesting = True

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in self.hot_attrs:
            self.interesting = True
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        self._bind(node.arg)
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node) -> None:  # pragma: no cover - rare
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    def _nested(self, node) -> None:
        self._bind(node.name)
        for deco in node.decorator_list:
            self.visit(deco)
        if isinstance(node, ast.ClassDef):
            for base in node.bases + [k.value for k in node.keywords]:
                self.visit(base)
        else:
            for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                self.visit(default)
            if node.returns is not None:
                self.visit(node.returns)
        kind = "class" if isinstance(node, ast.ClassDef) else "function"
        child = Scope(kind, self.scope, node=node)
        child._pos = (node.lineno, node.col_offset)  # type: ignore[attr-defined]
        before = len(self.all_scopes)
        self.all_scopes.append(child)
        collector = _Collector(child, self.all_scopes, self.hot_names, self.hot_attrs, self.project)
        if not isinstance(node, ast.ClassDef):
            collector.visit(node.args)
        for stmt in node.body:
            collector.visit(stmt)
        header = list(node.decorator_list)
        if isinstance(node, ast.ClassDef):
            header += node.bases + [k.value for k in node.keywords]
        else:
            header += node.args.defaults + [d for d in node.args.kw_defaults if d is not None]
            header += [node.returns] if node.returns is not None else []
        child.interesting = collector.interesting or any(self._mentions_hot(h) for h in header)
        if isinstance(node, ast.ClassDef):
            child.submodules = _tensor_submodules(node, child)
        child.nested_count = len(self.all_scopes) - before - 1
        self.interesting = self.interesting or collector.interesting

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _nested

    def visit_arguments(self, node: ast.arguments) -> None:
        for a in node.posonlyargs + node.args + node.kwonlyargs:
            self.visit_arg(a)
        if node.vararg:
            self.visit_arg(node.vararg)
        if node.kwarg:
            self.visit_arg(node.kwarg)


def analyze(tree: ast.Module, hot_attrs: frozenset = frozenset(), project=None) -> tuple[Scope, list]:
    """Module scope, and the def/class scopes in source order (libcst's visiting order).

    `project`: (ProjectIndex, module name, is package) for cross-file facts, or None.
    """
    module = Scope("module", None, node=tree)
    scopes: list = []
    # torch alias names anywhere make a subtree interesting, wherever the import is
    hot_names: set = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name, qual in _import_bindings(node, project):
                if qual is not None:
                    hot_names.add(name)
    if project is not None:
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                source = absolute_import(project[1], node, project[2])
                for a in node.names:
                    if a.name == "*":
                        module.project_classes.update(name for name, _ in star_names(project[0].module_classes, source))
                    elif f"{source}.{a.name}" in project[0].module_classes:
                        module.project_classes.add(a.asname or a.name)
    collector = _Collector(module, scopes, hot_names, hot_attrs, project)
    for stmt in tree.body:
        collector.visit(stmt)
    module.interesting = True
    module.hot_names = frozenset(hot_names)  # type: ignore[attr-defined]
    module.tensor_functions = _tensor_returning_functions(tree, module)  # type: ignore[attr-defined]
    # the collector appends parents before children: pre-order, matching libcst's traversal
    return module, scopes


def _chain(scope):
    while scope is not None:
        yield scope
        scope = scope.parent


def _tensor_submodules(cls: ast.ClassDef, scope: Scope) -> frozenset:
    """`self.<name> = nn.<Layer>(...)` anywhere in the class's methods (tuple-returning layers excluded)."""
    found = set()
    for node in ast.walk(cls):
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        func, parts = node.value.func, []
        while isinstance(func, ast.Attribute):
            parts.append(func.attr)
            func = func.value
        if not isinstance(func, ast.Name):
            continue
        root = scope.resolve(func.id)
        if root is None:
            mlx_nn = any(func.id in s.mlx_nn for s in _chain(scope))
            if mlx_nn and parts and parts[-1] not in MLX_NN_NON_ARRAY_LAYERS:
                found.update(t.attr for t in node.targets if isinstance(t, ast.Attribute)
                             and isinstance(t.value, ast.Name) and t.value.id == "self")
            continue
        qual = ".".join([root, *reversed(parts)])
        if not qual.startswith("torch.nn.") or qual in NON_TENSOR_MODULES or qual.startswith("torch.nn.functional"):
            continue
        for target in node.targets:
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
                found.add(target.attr)
    return frozenset(found)


def _tensor_returning_functions(tree: ast.Module, module: Scope) -> frozenset:
    """Module-level functions annotated `-> torch.Tensor`: calls to them are tensors."""
    found = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            ann = node.returns
            parts = []
            while isinstance(ann, ast.Attribute):
                parts.append(ann.attr)
                ann = ann.value
            if isinstance(ann, ast.Name):
                root = module.resolve(ann.id)
                if root is not None and ".".join([root, *reversed(parts)]) == "torch.Tensor":
                    found.add(node.name)
    return frozenset(found)


def cold_statements(tree: ast.Module, hot_names: frozenset, hot_attrs: frozenset) -> set:
    """ids of ast statements that mention no torch alias and no rule method name."""
    cold: set = set()

    def hot(node: ast.AST) -> bool:
        found = False
        if isinstance(node, ast.Name) and node.id in hot_names:
            found = True
        elif isinstance(node, ast.Attribute) and node.attr in hot_attrs:
            found = True
        elif isinstance(node, ast.Subscript):  # boolean-mask indexing is checked on any tensor
            found = True
        for child in ast.iter_child_nodes(node):
            if hot(child):
                found = True
        if not found and isinstance(node, ast.stmt):
            cold.add(id(node))
        return found

    hot(tree)
    return cold
