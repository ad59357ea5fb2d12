"""Reads of a torch device's `.type` / `.index`, and comparisons of devices, are flagged (id `device-reads`).

`torch.device(...)` becomes `mx.default_device()` (rules/tensor_misc.yaml) so that `x.to(device)` and `device=`
arguments disappear. The value is no longer torch's: an mx.Device's `.type` is the enum mx.DeviceType.cpu /
gpu, never torch's strings, so a converted `device.type == "cuda"` (or `"cpu"`) is silently False (or changed),
and it has no `.index` (an AttributeError). There is no exact form (which torch device the code would have had
is a property of the machine torch ran on), so each read stays as written under a flag saying what to write.
A device compared (`device == torch.device("cuda")`, `d != other.device`) is flagged too: every torch device
became the same default device, so the comparison no longer tells them apart.

Which values are devices
    - a `torch.device(...)` call itself;
    - a name, or an attribute of `self`, that the file assigns a `torch.device(...)` call to (anywhere in it;
      or `mx.default_device()`, as a first conversion wrote it);
    - `<anything>.device` (a tensor's or module's device; `x.device` is flagged by Tensor.device as well) and
      a name or `self` attribute called `device` (a parameter a caller hands a device): a guess by name, but it
      only adds a flag, never a translation.

`.device` of a value the facts do not type
    `x.device` of a name not known to be a tensor is flagged by the pass (the table's attribute rule `Tensor.device`);
    `self.proj.weight.device`, `f(x).device`, `xs[0].device` are read here: an mx.array (and an MLX module) has no
    `.device`, so left as written they raise AttributeError under MLX (timm's EdgeNeXt and XCiT read
    `self.token_projection.weight.device`). They are flagged `Tensor.device` as well; where the value only reaches
    device arguments that the translation drops, device-names, device-sinks and device-params replace the read with
    `mx.default_device()` and drop this flag. `self.device` (an attribute of the user's own object) and a module path
    (`torch.cuda.device`) are left alone.
"""
from __future__ import annotations

import ast

import libcst as cst

from torch2mlx.transforms import Transform

RULE = "device-reads"

_READS = {
    "type": "an mx.Device's .type is mx.DeviceType.cpu / gpu, not torch's 'cpu' / 'cuda' strings (a compare with "
            "a string is always False); write `mx.default_device() == mx.gpu` (or `mx.cpu`), or drop the device "
            "branch (MLX arrays live in unified memory)",
    "index": "an mx.Device has no .index (MLX does not number devices as torch does): drop the device handling",
}


def _torch_device_callees(tree: ast.Module) -> tuple:
    """(aliases of the torch module, names bound to torch.device) from the file's imports."""
    modules, functions = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.asname or a.name for a in node.names if a.name == "torch")
        elif isinstance(node, ast.ImportFrom) and node.module == "torch" and not node.level:
            functions.update(a.asname or a.name for a in node.names if a.name == "device")
    return modules, functions


def _is_device_call(node: ast.AST, modules: set, functions: set) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Name):
        return func.id in functions
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
        return False
    # `mx.default_device()`: what a first conversion wrote, so converting again flags the same reads
    return (func.attr == "device" and func.value.id in modules) or (func.attr, func.value.id) == ("default_device", "mx")


class DeviceReads(Transform):
    id = RULE
    description = "flag `.type` / `.index` reads on torch devices (the default MLX device stands in for them)"
    hot_attributes = frozenset(_READS)

    def __init__(self) -> None:
        self.names: set = set()        # names the file assigns torch.device(...) to
        self.attributes: set = set()   # self.<attribute> the file assigns torch.device(...) to
        self.stored: set = set()       # id() of attribute nodes assigned to or deleted (never reads)

    def visit_AssignTarget(self, rw, node) -> None:
        self.stored.add(id(node.target))

    def visit_AnnAssign(self, rw, node) -> None:
        self.stored.add(id(node.target))

    def visit_AugAssign(self, rw, node) -> None:
        self.stored.add(id(node.target))

    def visit_Del(self, rw, node) -> None:
        self.stored.add(id(node.target))

    def _unknown_device_read(self, rw, node: cst.Attribute) -> None:
        """`<x>.device` with x no name (the pass reads those) and not known to be a tensor: flagged (module docstring)."""
        value = node.value
        if id(node) in self.stored or isinstance(value, cst.Name) or rw.tensors.is_tensor(value):
            return
        if not isinstance(value, (cst.Attribute, cst.Call, cst.Subscript)) or rw.qualified_name(value) is not None:
            return
        rw.flag(node, "Tensor.device", "unknown-receiver",
                "`.device` of a value not known to be a tensor: an mx.array (and an MLX module) has no device (unified "
                "memory), so it would raise AttributeError; drop the device handling, or pass `mx.default_device()` "
                "where a device is needed")

    def applies_to(self, text: str) -> bool:
        return "device" in text

    def prepare(self, tree: ast.Module, module_scope) -> None:
        self.names, self.attributes = set(), set()
        modules, functions = _torch_device_callees(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            else:
                continue
            if not _is_device_call(value, modules, functions):
                continue
            for target in targets:
                if isinstance(target, ast.Name):
                    self.names.add(target.id)
                elif (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                      and target.value.id == "self"):
                    self.attributes.add(target.attr)

    def _is_device(self, rw, node: cst.BaseExpression) -> bool:
        if isinstance(node, cst.Call):
            func = node.func
            return rw.qualified_name(func) == "torch.device" or (
                isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
                and (func.value.value, func.attr.value) == ("mx", "default_device"))
        if isinstance(node, cst.Name):
            return node.value in self.names or node.value == "device"
        if isinstance(node, cst.Attribute):
            if node.attr.value == "device":
                return True
            return (isinstance(node.value, cst.Name) and node.value.value == "self"
                    and node.attr.value in self.attributes)
        return False

    def leave_Comparison(self, rw, original, updated):
        # `device == torch.device("cuda")`: every torch device became the one default device (always equal)
        operands = [original.left, *(t.comparator for t in original.comparisons)]
        equality = any(isinstance(t.operator, (cst.Equal, cst.NotEqual, cst.In, cst.NotIn)) for t in original.comparisons)
        if equality and any(self._is_device(rw, o) for o in operands):
            rw.flag(original, RULE, "semantics-differ",
                    "a torch device compared: torch.device(...) becomes mx.default_device(), the same device for "
                    "every torch device, so the comparison no longer tells them apart: compare "
                    "`mx.default_device() == mx.gpu` (or `mx.cpu`), or drop the device branch")
        return updated

    def leave_Attribute(self, rw, original, updated):
        if original.attr.value == "device":
            self._unknown_device_read(rw, original)
            self.stored.discard(id(original))
            return updated
        why = _READS.get(original.attr.value)
        if why is None or not self._is_device(rw, original.value):
            return updated
        rw.flag(original, RULE, "semantics-differ",
                f"`.{original.attr.value}` of a torch device: torch.device(...) becomes mx.default_device(); {why}")
        return updated
