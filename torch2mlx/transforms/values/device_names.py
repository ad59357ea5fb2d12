"""`device = x.device` where the device only goes to torch's `device=` arguments: `device = mx.default_device()`.

MLX arrays have no device (unified memory), so `x.device` alone is flagged (`Tensor.device`). transformers' models
read it once per forward (`device = input_ids.device if input_ids is not None else inputs_embeds.device`) only to
pass it on: `torch.arange(n, device=device)`, `torch.ones(shape, device=device)`, whose translations drop the
argument. Where the code shows that, what the name holds is never seen, and it becomes `mx.default_device()` (what
`torch.device(...)` becomes): in a def, every binding of the name is `name = <expr>.device` or
`name = <expr>.device if <test> else <expr>.device` (a test of names, attributes and constants compared with `is`,
`==`, ...: nothing runs), and every read of it is the value of a `device=` keyword argument of a call of a torch
function (`torch.zeros(..., device=device)`). Any other read (a call of the file's own function, `.to(device)` of an
object the analysis does not know, `device.type`, a comparison) leaves the line flagged.
"""
from __future__ import annotations

import ast

import libcst as cst

from torch2mlx.transforms import Transform
from torch2mlx.transforms.codegen import mlx_expr

RULE_ID = "Tensor.device"


def _device_read(node) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr == "device"
    if isinstance(node, ast.IfExp):
        return _pure(node.test) and _device_read(node.body) and _device_read(node.orelse)
    return False


def _pure(node) -> bool:
    """A test that runs no code of the user's: names, attributes, constants, `is` / `==` / `not` / `and` of them."""
    if isinstance(node, (ast.Name, ast.Constant)):
        return True
    if isinstance(node, ast.Attribute):
        return _pure(node.value)
    if isinstance(node, ast.Compare):
        return all(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops) and _pure(node.left) and all(
            _pure(c) for c in node.comparators)
    if isinstance(node, ast.BoolOp):
        return all(_pure(v) for v in node.values)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return _pure(node.operand)
    return False


def device_names(fn, torch_roots: frozenset, sink=None) -> frozenset:
    """The names of def `fn` holding a device only passed to torch functions' `device=` (module docstring); with
    `sink(name_node, parents, torch_roots)`, only to the reads it accepts instead."""
    sink = sink or _torch_device_argument
    parents: dict = {}
    stores: dict = {}  # name -> [all its bindings are device reads]
    loads: dict = {}   # name -> [every read is a torch call's device=]
    for node in ast.walk(fn):
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
    bound = set()  # names bound other than by a plain assignment (parameters, loops, imports, ...)
    for a in ast.walk(fn.args):
        if isinstance(a, ast.arg):
            bound.add(a.arg)
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            parent = parents.get(id(node))
            plain = isinstance(parent, ast.Assign) and parent.targets == [node]
            stores.setdefault(node.id, []).append(plain and _device_read(parent.value))
        elif isinstance(node, ast.Name):
            loads.setdefault(node.id, []).append(sink(node, parents, torch_roots))
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)) and node is not fn:
            bound.update(a.arg for a in ast.walk(node) if isinstance(a, ast.arg))
            if not isinstance(node, ast.Lambda):
                bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return frozenset(name for name, kinds in stores.items()
                     if all(kinds) and name not in bound and loads.get(name) and all(loads[name]))


def defs_binding_device_reads(tree) -> list:
    """The defs (and the defs around them) with a `name = <expr>.device` somewhere: only they can have a device name,
    so the other defs are not analysed (one walk of the module instead of three of every def)."""
    found: dict = {}
    stack = [(tree, ())]
    while stack:
        node, defs = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            defs = (*defs, node)
        elif isinstance(node, ast.Assign) and defs and _device_read(node.value):
            found.update((id(d), d) for d in defs)
        stack.extend((child, defs) for child in ast.iter_child_nodes(node))
    return list(found.values())


def _torch_device_argument(node, parents: dict, torch_roots: frozenset) -> bool:
    keyword = parents.get(id(node))
    if not (isinstance(keyword, ast.keyword) and keyword.arg == "device"):
        return False
    call = parents.get(id(keyword))
    func = call.func if isinstance(call, ast.Call) else None
    while isinstance(func, ast.Attribute):
        func = func.value
    return isinstance(func, ast.Name) and func.id in torch_roots


class DeviceNamesTransform(Transform):
    id = "device-names"
    description = "`device = x.device` passed only to torch functions' device= arguments -> mx.default_device()"
    order = 160

    def __init__(self) -> None:
        self.names: dict = {}  # id(ast def) -> frozenset of its device names

    def applies_to(self, text: str) -> bool:
        return ".device" in text

    def prepare(self, tree, module_scope) -> None:
        roots = frozenset(name for name, qual in module_scope.imports.items() if qual == "torch" or qual.startswith("torch."))
        bound_twice = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        roots = roots - bound_twice  # a torch alias rebound anywhere: not followed
        self.names = {}
        for node in defs_binding_device_reads(tree):
            found = device_names(node, roots)
            if found:
                self.names[id(node)] = found

    def leave_Assign(self, rw, original, updated):
        scopes = rw.scopes
        if not self.names or not scopes or scopes[-1].kind != "function" or len(original.targets) != 1:
            return updated
        target = original.targets[0].target
        if not (isinstance(target, cst.Name) and target.value in self.names.get(id(scopes[-1].node), ())):
            return updated
        reads = [n for n in _attributes(original.value) if n.attr.value == "device"]
        for node in reads:
            rw.drop_flags(node, rule_id=RULE_ID)
        rw.count_conversion()
        return updated.with_changes(value=mlx_expr(rw, "mx.default_device()"))


def _attributes(node) -> list:
    found, todo = [], [node]
    while todo:
        n = todo.pop()
        if isinstance(n, cst.Attribute):
            found.append(n)
        todo.extend(n.children)
    return found
