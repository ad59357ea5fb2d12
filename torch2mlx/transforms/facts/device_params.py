"""A device handed to the file's own function that only passes it to torch's `device=` (id `device-params`).

transformers' T5 computes its position bias with `self.compute_bias(q_len, k_len, device=query_states.device)`, and
compute_bias uses `device` only as `torch.arange(..., device=device)` (after `if device is None: device =
...weight.device`). MLX arrays have no device, so `query_states.device` alone is flagged (`Tensor.device`); but
there the value is never seen: the translations of those torch calls drop `device=`. Where the code shows that, the
argument becomes `mx.default_device()` (what `torch.device(...)` becomes, as transforms/values/device_names.py
writes for a local name) and the flag goes.

A parameter counts when the def is undecorated, every read of the parameter in it is the value of a `device=`
keyword argument of a torch function call, or the left side of `is None` / `is not None`, and every other binding
of it is `name = <x>.device` (or `a.device if <test> else b.device`). The callee is a module-level function bound
once in the file, or `self.m(...)` where `m` is defined once in the file, as a method, and never assigned. The
argument is an attribute read `<x>.device` (or such an `a if c else b`), given by keyword or by position before
any `*args`.

In the callee, the bindings `device = <x>.device` of such a parameter (T5's `if device is None: device =
self.relative_attention_bias.weight.device`) become `device = mx.default_device()` as well: the value only reaches
dropped `device=` arguments, and `<mx.array>.device` would raise under MLX.
"""
from __future__ import annotations

import ast

import libcst as cst

from torch2mlx.transforms import Transform
from torch2mlx.transforms.codegen import mlx_expr
from torch2mlx.transforms.values.device_names import _torch_device_argument

RULE_ID = "Tensor.device"


def _device_read(node) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr == "device"
    if isinstance(node, ast.IfExp):
        return _device_read(node.body) and _device_read(node.orelse)
    return False


def device_params(fn, roots: frozenset, forwards=lambda call, node: False) -> dict:
    """{parameter: positional index (None: keyword-only)} of def `fn` whose value only reaches torch's device=
    (or, by `forwards(call, node)`, such a parameter of another def of the file)."""
    args = fn.args
    positional = [a.arg for a in args.posonlyargs + args.args]
    candidates = {name: i for i, name in enumerate(positional)}
    candidates.update({a.arg: None for a in args.kwonlyargs})
    if args.vararg is not None or fn.decorator_list:
        return {}
    parents: dict = {}
    for node in ast.walk(fn):
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
    ok = {name: False for name in candidates}  # read at least once as a device= argument
    for node in ast.walk(fn):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                candidates.pop(name, None)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)) and node is not fn:
            for a in ast.walk(node):  # a nested scope's own name of that spelling, or a closure reading it
                if isinstance(a, ast.arg):
                    candidates.pop(a.arg, None)
                elif isinstance(a, ast.Name):
                    candidates.pop(a.id, None)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                candidates.pop((a.asname or a.name).split(".")[0], None)
        elif isinstance(node, ast.Name) and node.id in candidates:
            parent = parents.get(id(node))
            if not isinstance(node.ctx, ast.Load):
                if not (isinstance(parent, ast.Assign) and parent.targets == [node] and _device_read(parent.value)):
                    candidates.pop(node.id)
            elif (isinstance(parent, ast.Compare) and parent.left is node and len(parent.ops) == 1
                  and isinstance(parent.ops[0], (ast.Is, ast.IsNot)) and isinstance(parent.comparators[0], ast.Constant)
                  and parent.comparators[0].value is None):
                continue
            elif _torch_device_argument(node, parents, roots) or _forwarded(node, parents, forwards):
                ok[node.id] = True
            else:
                candidates.pop(node.id)
        elif isinstance(node, (ast.comprehension, ast.ExceptHandler)):
            for n in ast.walk(node.target) if isinstance(node, ast.comprehension) else ():
                if isinstance(n, ast.Name):
                    candidates.pop(n.id, None)
            if isinstance(node, ast.ExceptHandler) and node.name:
                candidates.pop(node.name, None)
    return {name: i for name, i in candidates.items() if ok.get(name)}


def _forwarded(node, parents: dict, forwards) -> bool:
    parent = parents.get(id(node))
    call = parents.get(id(parent)) if isinstance(parent, ast.keyword) else parent
    return isinstance(call, ast.Call) and forwards(call, node)


def _bindings(tree) -> tuple:
    """(name -> how many places bind it, attribute names assigned anywhere or at class level, method name -> defs)."""
    stores: dict = {}
    attrs: set = set()
    methods: dict = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            stores[node.id] = stores.get(node.id, 0) + 1
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stores[node.name] = stores.get(node.name, 0) + 1
        elif isinstance(node, ast.arg):
            stores[node.arg] = stores.get(node.arg, 0) + 1
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                name = (a.asname or a.name).split(".")[0]
                stores[name] = stores.get(name, 0) + 1
        elif isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Load):
            attrs.add(node.attr)
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    methods.setdefault(item.name, []).append(item)
                elif isinstance(item, (ast.Assign, ast.AnnAssign)):
                    for t in (item.targets if isinstance(item, ast.Assign) else [item.target]):
                        if isinstance(t, ast.Name):
                            attrs.add(t.id)
    return stores, attrs, methods


def _cst_device_read(node) -> bool:
    if isinstance(node, cst.Attribute):
        return node.attr.value == "device"
    if isinstance(node, cst.IfExp):
        return _cst_device_read(node.body) and _cst_device_read(node.orelse)
    return False


def _device_attributes(node) -> list:
    if isinstance(node, cst.Attribute):
        return [node]
    if isinstance(node, cst.IfExp):
        return _device_attributes(node.body) + _device_attributes(node.orelse)
    return []


class DeviceParams(Transform):
    id = "device-params"
    description = "`f(x, device=t.device)` where f only passes its device to torch's device= -> mx.default_device()"
    order = 160

    def __init__(self) -> None:
        self.functions: dict = {}  # module-level function name -> {param: index}
        self.methods: dict = {}    # method name -> {param: index} (self not counted)
        self.owner: dict = {}      # method name -> the name of the class defining it
        self.first_base: dict = {}
        self.defs: dict = {}       # id(ast def) -> its device parameters (rebound only to `<x>.device` there)

    def applies_to(self, text: str) -> bool:
        return ".device" in text

    def prepare(self, tree, module_scope) -> None:
        self.functions, self.methods = {}, {}
        roots = frozenset(name for name, qual in module_scope.imports.items() if qual == "torch" or qual.startswith("torch."))
        stores, attrs, methods = _bindings(tree)
        roots = frozenset(r for r in roots if stores.get(r, 0) <= 1)
        functions = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                     and stores.get(node.name) == 1]
        own_methods = []
        self.owner, self.first_base = {}, {}  # method -> its class's name; class -> its first base's name
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.bases and isinstance(node.bases[0], ast.Name):
                self.first_base[node.name] = node.bases[0].id
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        self.owner[item.name] = node.name
        for name, defs in methods.items():
            first = (defs[0].args.posonlyargs + defs[0].args.args)[:1]
            if (len(defs) == 1 and name not in attrs and stores.get(name) == 1 and not name.startswith("__")
                    and first and first[0].arg == "self"):
                own_methods.append(defs[0])

        def forwards(call, node) -> bool:
            """`f(..., node, ...)` / `self.m(..., device=node)` passing to a device parameter found so far."""
            params = self._callee(call.func, ast, caller_class.get(id(call)))
            if not params:
                return False
            by_index = {i: p for p, i in params.items() if i is not None}
            for i, a in enumerate(call.args):
                if isinstance(a, ast.Starred):
                    return False
                if a is node:
                    return i in by_index
            return any(k.value is node and k.arg in params for k in call.keywords)

        caller_class: dict = {}  # id(call in a method of a module-level class) -> the class's name
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                for n in ast.walk(node):
                    if isinstance(n, ast.Call):
                        caller_class[id(n)] = node.name
        for _ in range(4):  # a device passed on through the file's own functions (a least fixed point)
            before = (dict(self.functions), dict(self.methods))
            for node in functions:
                found = device_params(node, roots, forwards)
                if found:
                    self.functions[node.name] = found
            for fn in own_methods:
                found = device_params(fn, roots, forwards)
                found = {p: (None if i is None else i - 1) for p, i in found.items() if p != "self"}
                if found:
                    self.methods[fn.name] = found
            if (self.functions, self.methods) == before:
                break
        self.defs = {id(node): frozenset(self.functions[node.name]) for node in functions if node.name in self.functions}
        self.defs.update({id(fn): frozenset(self.methods[fn.name]) for fn in own_methods if fn.name in self.methods})

    def leave_Assign(self, rw, original, updated):
        scopes = rw.scopes
        if not self.defs or not scopes or scopes[-1].kind != "function" or len(original.targets) != 1:
            return updated
        target = original.targets[0].target
        if not (isinstance(target, cst.Name) and target.value in self.defs.get(id(scopes[-1].node), ())
                and _cst_device_read(original.value)):
            return updated
        for node in _device_attributes(original.value):
            rw.drop_flags(node, rule_id=RULE_ID)
        rw.count_conversion()
        return updated.with_changes(value=mlx_expr(rw, "mx.default_device()"))

    def _callee(self, func, kind, caller_class=None) -> dict:
        """The device parameters of the callee `func` (an `ast` or libcst expression), or {}. `self.m(...)` counts in
        a method of m's class, or of a class of the file deriving from it through first bases (no other base's m
        comes first in the method resolution order)."""
        if kind is ast:
            if isinstance(func, ast.Name):
                return self.functions.get(func.id, {})
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self":
                name = func.attr
            else:
                return {}
        elif isinstance(func, cst.Name):
            return self.functions.get(func.value, {})
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
            name = func.attr.value
        else:
            return {}
        if name not in self.methods:
            return {}
        cls, seen = caller_class, set()
        while cls is not None and cls not in seen:
            if cls == self.owner.get(name):
                return self.methods[name]
            seen.add(cls)
            cls = self.first_base.get(cls)
        return {}

    def leave_Call(self, rw, original: cst.Call, updated):
        func = original.func
        classes = [s for s in rw.scopes if s.kind == "class"]
        caller = classes[-1].node.name if classes and isinstance(classes[-1].node, ast.ClassDef) else None
        params = self._callee(func, cst, caller)
        if not params or (isinstance(func, cst.Name) and any(s.is_bound_locally(func.value) for s in rw.scopes[1:])):
            return updated
        by_index = {i: p for p, i in params.items() if i is not None}
        args = list(updated.args)
        changed = False
        for i, (before, after) in enumerate(zip(original.args, updated.args)):
            if before.star:
                break
            name = before.keyword.value if before.keyword is not None else by_index.get(i)
            if name not in params or not _cst_device_read(before.value):
                continue
            for node in _device_attributes(before.value):
                rw.drop_flags(node, rule_id=RULE_ID)
            args[i] = after.with_changes(value=mlx_expr(rw, "mx.default_device()"))
            changed = True
        if not changed:
            return updated
        rw.count_conversion()
        return updated.with_changes(args=args)
