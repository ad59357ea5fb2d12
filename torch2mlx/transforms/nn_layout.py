"""Channels-last activations in module classes that use convolutions, pooling or batch norm.

**What it does**: MLX's Conv/Pool/BatchNorm layers take (N, H, W, C) (or (N, L, C)), torch's
(N, C, H, W). In a module class whose `__init__` builds such a layer, the converted `__call__`
takes its tensor arguments channels-last and keeps feature maps channels-last. The transform
follows, statement by statement, which local names hold channels-last values and remaps what
depends on the axis order:
- `x.view(x.size(0), -1)`, `x.reshape(x.shape[0], -1)`, `x.flatten(1)`, `torch.flatten(x, 1)` of
  a feature map: `x` is first transposed back to channels-first, so torch's Linear weights stay
  valid (not after `AdaptiveAvgPool2d(1)`: a 1x1 map flattens the same either way);
- `torch.cat([a, b], dim=1)` -> the last axis; `x.mean((2, 3))` -> axes (1, 2);
  `x.shape[i]` / `x.size(i)` -> the matching channels-last axis.
The class gets a comment saying which layout it takes and returns.

**Left in place (flagged) when** a channels-last value is used in any other way (indexing,
other methods or functions, submodules not known to be per-position, control flow over it, ...):
the analysis only follows straight-line `forward` code with simple assignments.
"""
from __future__ import annotations

from typing import Optional

import libcst as cst

from torch2mlx.template import sentinel
from torch2mlx.transforms import Transform

RULE = "nn-layout"
_SPATIAL = {"Conv2d": "cl2", "ConvTranspose2d": "cl2", "MaxPool2d": "cl2", "AvgPool2d": "cl2",
            "BatchNorm2d": "cl2", "Conv1d": "cl1", "AdaptiveAvgPool2d": "g"}
_PER_POSITION = frozenset({"ReLU", "ReLU6", "GELU", "SiLU", "Tanh", "Sigmoid", "Dropout", "Identity",
                           "LeakyReLU", "ELU", "Hardswish", "Mish", "BatchNorm1d"})
_FUNCTIONS = frozenset({"torch.nn.functional.relu", "torch.relu", "torch.nn.functional.gelu", "torch.sigmoid",
                        "torch.tanh", "torch.nn.functional.silu", "torch.nn.functional.relu6", "torch.nn.functional.dropout"})
_TRANSPOSE = {"cl2": "(0, 3, 1, 2)", "cl1": "(0, 2, 1)"}
_AXES = {"cl2": {0: 0, 1: 3, 2: 1, 3: 2, -1: 2, -2: 1, -3: 3, -4: 0}, "cl1": {0: 0, 1: 2, 2: 1, -1: 1, -2: 2, -3: 0}}
_AXES["g"] = _AXES["cl2"]


def _layer_kind(rw, call: cst.BaseExpression) -> Optional[str]:
    if isinstance(call, cst.Call):
        qual = rw.qualified_name(call.func) or ""
        if qual.startswith("torch.nn.") and not qual.startswith("torch.nn.functional"):
            return qual.rsplit(".", 1)[-1]
    return None


def _axis(layout, index) -> Optional[int]:
    """The channels-last axis for torch axis `index`, or None when the layout or axis is unknown."""
    return _AXES.get(layout, {}).get(index) if index is not None else None


def _int(node) -> Optional[int]:
    if isinstance(node, cst.Integer):
        return int(node.value)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus) and isinstance(node.expression, cst.Integer):
        return -int(node.expression.value)
    return None


def _names(node: cst.CSTNode) -> list:
    found = []

    class _Collect(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            found.append(n)

        def visit_Attribute(self, n: cst.Attribute) -> bool:
            n.value.visit(self)
            return False

    node.visit(_Collect())
    return found


class NnLayoutTransform(Transform):
    id = "nn-layout"
    description = "channels-last activations around convolution, pooling and batch-norm layers"
    order = 110
    needs_every_statement = True  # a forward with no torch call still moves feature maps around
    hot_attributes = ("view", "flatten", "reshape", "cat", "mean", "size", "shape")

    def __init__(self) -> None:
        self.classes: list = []       # per class: {attr: layout kind of the submodule} or None
        self.state: Optional[dict] = None  # name -> layout inside the forward being visited
        self.replace: dict = {}       # id(original node) -> replacement
        self.notes: list = []         # per class: [inputs, output layouts]

    def applies_to(self, text: str) -> bool:
        return any(k in text for k in _SPATIAL)

    # ----- classes ---------------------------------------------------------------------------
    def visit_ClassDef(self, rw, node: cst.ClassDef) -> None:
        layers: dict = {}
        for stmt in node.body.body:
            if isinstance(stmt, cst.FunctionDef) and stmt.name.value == "__init__":
                for line in stmt.body.body:
                    if isinstance(line, cst.SimpleStatementLine):
                        for small in line.body:
                            if isinstance(small, cst.Assign) and len(small.targets) == 1:
                                target = small.targets[0].target
                                if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.value.value == "self":
                                    layers[target.attr.value] = self._module_layout(rw, small.value)
        spatial = any(v not in (None, "pp", "plain") for v in layers.values())
        self.classes.append(layers if spatial else None)
        self.notes.append([[], set(), 0])  # inputs, output layouts, statements of forward analysed

    def _module_layout(self, rw, value) -> Optional[str]:
        """What a submodule does to a channels-last input: a layout, 'pp' (per position), 'flag' or None."""
        kind = _layer_kind(rw, value)
        if kind in _SPATIAL:
            return _SPATIAL[kind]
        if kind in _PER_POSITION:
            return "pp"
        if kind == "Sequential" and all(not a.keyword and not a.star for a in value.args):
            layout = "pp"
            for arg in value.args:
                inner = self._module_layout(rw, arg.value)
                if inner in _SPATIAL.values():
                    layout = inner
                elif inner != "pp":
                    return "flag" if layout != "pp" else None
            return layout
        return None

    def leave_ClassDef(self, rw, original: cst.ClassDef, updated):
        layers = self.classes.pop()
        inputs, outputs, _ = self.notes.pop()
        if layers is None or not isinstance(updated, cst.ClassDef):
            return updated
        words = {"cl2": "channels-last (N, H, W, C)", "g": "channels-last (N, 1, 1, C)", "cl1": "channels-last (N, L, C)"}
        out = ", ".join(sorted(words.get(o, "unchanged") for o in outputs)) or "unchanged"
        comment = f"# MLX layout: inputs {', '.join(inputs) or '-'} are channels-last (NHWC / NLC); outputs: {out}"
        line = cst.EmptyLine(comment=cst.Comment(comment))
        if inputs:  # the data fed to this model must change layout too: say so in the report
            rw.flag(original, "nn-layout", "needs-review",
                    f"{original.name.value} takes channels-last input ({', '.join(inputs)}): feed it NHWC/NLC data, "
                    "e.g. mx.transpose(x, (0, 2, 3, 1)) for an NCHW batch", "info")
        return updated.with_changes(leading_lines=[*updated.leading_lines, line])

    # ----- forward ---------------------------------------------------------------------------
    def visit_FunctionDef(self, rw, node: cst.FunctionDef) -> None:
        layers = self.classes[-1] if self.classes else None
        if layers is None or node.name.value != "forward":
            return
        names = [p.name.value for p in node.params.params[1:] if p.default is None]
        first = next((v for v in layers.values() if v in _SPATIAL.values() and v != "g"), "cl2")
        self.state = {n: first for n in names}
        self.notes[-1][0] = names
        self.layers = layers

    def leave_FunctionDef(self, rw, original, updated):
        if original.name.value == "forward":
            self.state = None
        return updated

    def visit_SimpleStatementLine(self, rw, node: cst.SimpleStatementLine) -> None:
        if self.state is None:
            return
        for small in node.body:
            if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
                self.state[small.targets[0].target.value] = self._layout(rw, small.value)
            elif isinstance(small, cst.Return) and small.value is not None:
                values = [el.value for el in small.value.elements] if isinstance(small.value, cst.Tuple) else [small.value]
                self.notes[-1][1].update(self._layout(rw, v) for v in values)
            elif self._uses_cl(small):
                rw.flag(small, RULE, "needs-review", "a channels-last value is used in a statement the layout analysis does not follow")

    def visit_If(self, rw, node) -> None:
        self._flag_compound(rw, node)

    def visit_For(self, rw, node) -> None:
        self._flag_compound(rw, node)

    def visit_While(self, rw, node) -> None:
        self._flag_compound(rw, node)

    def _flag_compound(self, rw, node) -> None:
        if self.state is not None and self._uses_cl(node):
            rw.flag(node, RULE, "needs-review", "control flow over channels-last values: the layout analysis follows straight-line code only")
            self.state = {k: "?" for k in self.state}

    def _uses_cl(self, node) -> bool:
        return any(self.state.get(n.value, "plain") != "plain" for n in _names(node))

    def _cl(self, node) -> Optional[str]:
        if isinstance(node, cst.Name):
            layout = self.state.get(node.value, "plain")
            return None if layout == "plain" else layout
        return None

    def _layout(self, rw, e) -> str:
        """The layout of an expression; schedules rewrites and flags what it cannot follow."""
        if not self._uses_cl(e):
            return "plain"
        if isinstance(e, cst.Name):
            return self.state[e.value]
        if isinstance(e, cst.BinaryOperation):
            left, right = self._layout(rw, e.left), self._layout(rw, e.right)
            layouts = {x for x in (left, right) if x != "plain"}
            plain_side = e.right if left != "plain" else e.left
            if len(layouts) == 1 and (left == right or isinstance(plain_side, (cst.Integer, cst.Float))):
                return layouts.pop()
            return self._doubt(rw, e)
        if isinstance(e, cst.Tuple):
            for el in e.elements:
                self._layout(rw, el.value)
            return "plain"
        if isinstance(e, cst.Subscript):
            return self._subscript(rw, e)
        if isinstance(e, cst.Call):
            return self._call(rw, e)
        return self._doubt(rw, e)

    def _doubt(self, rw, e) -> str:
        rw.flag(e, RULE, "needs-review", "cannot tell how this depends on the axis order of a channels-last value "
                "(MLX convolutions/pools/norms are NHWC, torch's NCHW)")
        return "plain"

    def _call(self, rw, e: cst.Call) -> str:
        func = e.func
        args = [a for a in e.args]
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
            kind = self.layers.get(func.attr.value)
            if len(args) == 1 and not args[0].keyword:
                inner = self._layout(rw, args[0].value)
                if kind == "pp" or inner == "plain":
                    return inner
                if kind in _SPATIAL.values() and inner != "plain":
                    return kind
            return self._doubt(rw, e)
        qual = rw.qualified_name(func)
        if qual in _FUNCTIONS and args and not args[0].keyword:
            return self._layout(rw, args[0].value)
        if qual in ("torch.flatten",) and args:
            return self._flatten(rw, e, args[0].value, args[1:])
        if qual == "torch.cat" and args and isinstance(args[0].value, (cst.List, cst.Tuple)):
            layouts = {self._layout(rw, el.value) for el in args[0].value.elements}
            dim = args[1] if len(args) > 1 else None
            if len(layouts) == 1 and dim is not None and _axis(next(iter(layouts)), _int(dim.value)) is not None:
                layout = layouts.pop()
                self.replace[id(dim.value)] = cst.Integer(str(_AXES[layout][_int(dim.value)]))
                return layout
            return self._doubt(rw, e)
        if isinstance(func, cst.Attribute):
            layout = self._cl(func.value)
            if layout is None:
                return self._doubt(rw, e)
            method = func.attr.value
            if method in ("view", "reshape") and len(args) == 2 and _int(args[1].value) == -1 and self._is_batch(args[0].value, func.value):
                return self._flatten(rw, e, func.value, [])
            if method == "flatten" and len(args) == 1 and _int(args[0].value) == 1:
                return self._flatten(rw, e, func.value, [])
            if method == "size" and len(args) == 1 and _axis(layout, _int(args[0].value)) is not None:
                self.replace[id(args[0].value)] = cst.Integer(str(_AXES[layout][_int(args[0].value)]))
                return "plain"
            if method == "mean" and len(args) == 1 and isinstance(args[0].value, cst.Tuple) and layout in ("cl2", "g"):
                dims = [_int(el.value) for el in args[0].value.elements]
                if sorted(dims) == [2, 3]:
                    self.replace[id(args[0].value)] = cst.parse_expression("(1, 2)")
                    return "plain"
        return self._doubt(rw, e)

    def _is_batch(self, node, tensor) -> bool:
        """`x.size(0)` / `x.shape[0]` of the same name: the batch axis is first in both layouts."""
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "size":
            return len(node.args) == 1 and _int(node.args[0].value) == 0
        if isinstance(node, cst.Subscript) and isinstance(node.value, cst.Attribute) and node.value.attr.value == "shape":
            return len(node.slice) == 1 and _int(getattr(node.slice[0].slice, "value", None)) == 0
        return False

    def _flatten(self, rw, e, tensor, rest) -> str:
        layout = self._cl(tensor)
        if layout is None or (rest and _int(rest[0].value) != 1) or len(rest) > 1:
            return self._doubt(rw, e)
        if layout != "g":
            mx = sentinel("mx")
            self.replace[id(tensor)] = cst.parse_expression(f"{mx}.transpose({tensor.value}, {_TRANSPOSE[layout]})")
            rw.roots_used.add("mx")
        return "plain"

    def _subscript(self, rw, e: cst.Subscript) -> str:
        if isinstance(e.value, cst.Attribute) and e.value.attr.value == "shape" and len(e.slice) == 1:
            layout = self._cl(e.value.value)
            index = _int(getattr(e.slice[0].slice, "value", None))
            if _axis(layout, index) is not None:
                self.replace[id(e.slice[0].slice.value)] = cst.Integer(str(_AXES[layout][index]))
                return "plain"
        return self._doubt(rw, e)

    # ----- rewrites scheduled above --------------------------------------------------------------
    def leave_Name(self, rw, original, updated):
        return self.replace.pop(id(original), updated)

    def leave_Integer(self, rw, original, updated):
        return self.replace.pop(id(original), updated)

    def leave_UnaryOperation(self, rw, original, updated):
        return self.replace.pop(id(original), updated)

    def leave_Tuple(self, rw, original, updated):
        return self.replace.pop(id(original), updated)
