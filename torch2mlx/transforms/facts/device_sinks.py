"""`device = <x>.device` read only where a translation drops a device: `device = mx.default_device()` (id `device-sinks`).

timm's EdgeNeXt and XCiT positional encodings read `device = self.token_projection.weight.device` and pass it to
`torch.zeros(shape).to(device=device, dtype=torch.bool)` and `torch.arange(..., device=device)`. Both translations
drop the device (MLX arrays have none), so the value is never seen; but the assignment itself still ran
`<mx.array>.device`, an AttributeError under MLX. transforms/values/device_names.py rewrites such names when every
read is a torch function's `device=`; this transform adds the reads that `Tensor.to`'s translation
(handlers/device_dtype.py) drops on any receiver: `.to(device=name)`, and `.to(name)` with `device` in the name
(what that handler takes for a device). Where the `.to` call itself cannot be translated it is flagged there, so the
name's value is never used unflagged. Bindings and every other condition are device_names'.
"""
from __future__ import annotations

import ast

import libcst as cst

from torch2mlx.transforms import Transform
from torch2mlx.transforms.codegen import mlx_expr
from torch2mlx.transforms.values.device_names import (
    _attributes, _torch_device_argument, defs_binding_device_reads, device_names)

RULE_ID = "Tensor.device"


def _to_argument(node, parents: dict) -> bool:
    """`<any>.to(device=node)` or `<any>.to(node)` (node a name with `device` in it): Tensor.to drops it."""
    parent = parents.get(id(node))
    if isinstance(parent, ast.keyword):
        call = parents.get(id(parent))
        return parent.arg == "device" and _to_call(call)
    return _to_call(parent) and node in parent.args and "device" in node.id.lower()


def _to_call(call) -> bool:
    return isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "to"


def _sink(node, parents: dict, roots: frozenset) -> bool:
    return _torch_device_argument(node, parents, roots) or _to_argument(node, parents)


def sink_names(fn, roots: frozenset) -> frozenset:
    """Names of def `fn` every binding of which is `name = <x>.device` (or a pure if/else of two: device_names) and
    every read of which is a torch function's `device=` or a `.to` device argument (`_to_argument`)."""
    return device_names(fn, roots, sink=_sink)


class DeviceSinks(Transform):
    id = "device-sinks"
    description = "`device = x.device` read only by torch's device= and `.to(device=...)` -> mx.default_device()"
    order = 161  # after device-names (which takes the names it finds itself)

    def __init__(self) -> None:
        self.names: dict = {}  # id(ast def) -> frozenset of its device names

    def applies_to(self, text: str) -> bool:
        return ".device" in text and ".to(" in text

    def prepare(self, tree, module_scope) -> None:
        roots = frozenset(name for name, qual in module_scope.imports.items() if qual == "torch" or qual.startswith("torch."))
        bound_twice = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        roots = roots - bound_twice
        self.names = {}
        for node in defs_binding_device_reads(tree):  # the only defs that can have such a name
            found = sink_names(node, roots)
            if found:
                found -= device_names(node, roots)
            if found:
                self.names[id(node)] = found

    def leave_Assign(self, rw, original, updated):
        scopes = rw.scopes
        if not self.names or not scopes or scopes[-1].kind != "function" or len(original.targets) != 1:
            return updated
        target = original.targets[0].target
        if not (isinstance(target, cst.Name) and target.value in self.names.get(id(scopes[-1].node), ())):
            return updated
        for node in _attributes(original.value):
            if node.attr.value == "device":
                rw.drop_flags(node, rule_id=RULE_ID)
        rw.count_conversion()
        return updated.with_changes(value=mlx_expr(rw, "mx.default_device()"))
