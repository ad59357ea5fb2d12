"""Channels-last layers built and called outside a channels-last module (part of the layout work of nn-layout).

**What it does**: MLX's convolutions, pools, norms, pads, upsampling, pixel shuffles and the local helper
classes written for them take channels-last data; in a script (module level), a plain function or a method
of a class that is not channels-last, every tensor is in torch's (N, C, ...) layout. A call of such a layer
there gets its input's channels moved last and the result's moved back:

    y = pool(img)  ->  y = mx.moveaxis(pool(mx.moveaxis(img, 1, -1)), -1, 1)

The layer is found through a name bound in that scope or an enclosing one (`pool = nn.AvgPool2d(2)`, also
through `.eval()` / `.to(device)`, an alias `p = pool`, `a = b = ...`, a walrus), the construction called
inline (`nn.AvgPool2d(2)(x)`), an `nn.Sequential` of such layers and per-position layers, a loop over or
an index into a list / ModuleList / dict of layers of one kind, or `model.features` of a model of this file
(its __init__ sets `self.features` once). A plain value fed to a layer built inside a channels-last
class's `forward` is handled the same way (a feature map fed to it is nn-layout's: flagged there).

The channel axis is 1 where the input's rank is known to be batched, else counted from the end
(-2 / -3 / -4 for 1-d / 2-d / 3-d layers: torch's unbatched (C, H, W) input then works too; MLX's own pools
and convolutions raise on it). Layers whose torch form needs a batch axis (Upsample, GroupNorm,
LocalResponseNorm) use axis 1. Where the rank decides the meaning it must be known: from creation calls
(`torch.randn(2, 3, 8)`), `view` / `reshape` / `unsqueeze`, layers (which keep it) and the last straight-line
assignment of a name (a name assigned in a branch or loop is unknown after it). BatchNorm1d on (N, C) is
left as it is (MLX normalises the last axis: torch's channels) and on (N, C, L) transposed; InstanceNorm2d
and Dropout2d (which torch reads as (N, C, L) for a 3-d input) need a 4-d input.

**Left in place (flagged `nn-layout`) when** the rank is needed and not known; a name may hold layers of
different kinds or other things (bound more than once, a loop over a mixed list, `global` in a function);
the input may come out of a converted channels-last model without having been transposed back (a call the
call-site analysis of nn-layout could not prove, an instance built inline, a class imported from another
project file), also through a list or an attribute it was stored in; the call has keyword or several
arguments; the layer is called in a class body or in a method of a channels-last class other than
`forward` (its input's layout is unknown there); an `nn.Sequential` holds channels-last layers next to
anything whose MLX form depends on the axis order (Flatten, Linear, ...) or elements that cannot be seen
(`*layers`); a loop goes over `.children()` / `.modules()` of channels-last modules; a layer factory of this
file (`conv3x3(...)`) is called from script code; a channels-last submodule of a model that is not a
torch layer (`model.block(x)`). A layer that is called directly and also passed on (to a function, into a
list, stored on an object, returned) is flagged where it is passed on: whoever calls it there must feed it
channels-last data; so is a layer passed to a function of this file that calls that parameter.
"""
from __future__ import annotations

import ast
from typing import Optional, Union

import libcst as cst

from torch2mlx.template import sentinel
from torch2mlx.binding import code_of
from torch2mlx.transforms import Transform
from torch2mlx.transforms.layout.nn_layout import _Bindings, _bindings, _project_builders, _returned, _walk_nodes
from torch2mlx.layout_facts import Layout
from torch2mlx.transforms.layout.tables import PER_POSITION

RULE = "nn-layout"


class Layer:
    """How a layer's channel axis moves: `fixed` (a d-dimensional layer, channels at -(d+1) or 1 when batched),
    `batch` (torch needs (N, C, ...): channels at 1) or `ranked` ({input rank: axis, None for no transpose})."""

    __slots__ = ("dim", "kind", "more", "name", "ranks")

    def __init__(self, name: str, kind: str, dim: int = 0, ranks: Optional[dict] = None, more: bool = False) -> None:
        self.name, self.kind, self.dim, self.ranks, self.more = name, kind, dim, ranks, more

    def key(self) -> tuple:
        return (self.kind, self.dim, tuple(sorted((self.ranks or {}).items(), key=str)), self.more)

    def axis(self, rank: Optional[int]) -> Union[int, None, str]:
        """The torch channel axis to move last; None: no transpose needed; a string: why it cannot be decided."""
        if self.kind == "fixed":
            return 1 if rank == self.dim + 2 else -(self.dim + 1)
        if self.kind == "batch":
            return 1
        if rank is None:
            return "the rank of its input is not known here"
        if rank not in self.ranks:
            return f"a {rank}-d input is not translated"
        return self.ranks[rank]


def _table() -> dict:
    layers: dict = {}
    for d in (1, 2, 3):
        for base in ("Conv", "ConvTranspose", "MaxPool", "AvgPool", "ZeroPad", "ConstantPad", "ReflectionPad",
                     "ReplicationPad"):
            layers[f"{base}{d}d"] = Layer(f"{base}{d}d", "fixed", d)
    for name, d in (("AdaptiveAvgPool1d", 1), ("InstanceNorm1d", 1), ("Dropout1d", 1), ("AdaptiveAvgPool2d", 2),
                    ("AdaptiveMaxPool2d", 2), ("BatchNorm2d", 2), ("PixelShuffle", 2), ("PixelUnshuffle", 2),
                    ("BatchNorm3d", 3), ("Dropout3d", 3)):
        layers[name] = Layer(name, "fixed", d)
    for name in ("Upsample", "GroupNorm", "LocalResponseNorm"):
        layers[name] = Layer(name, "batch")
    # MLX's BatchNorm normalises the last axis: torch's channels of (N, C) already
    layers["BatchNorm1d"] = Layer("BatchNorm1d", "ranked", 1, {2: None, 3: 1})
    # unbatched (C, H, W) would be read as (N, W, C) by MLX; torch reads a 3-d Dropout2d input as (N, C, L)
    layers["InstanceNorm2d"] = Layer("InstanceNorm2d", "ranked", 2, {4: 1})
    layers["Dropout2d"] = Layer("Dropout2d", "ranked", 2, {4: 1})
    return layers


LAYERS = _table()
# layers that act on each element (or each position) alone: neutral inside an nn.Sequential
NEUTRAL = (PER_POSITION - {"BatchNorm1d"}) | {"Softplus", "Hardtanh", "Hardsigmoid", "SELU", "CELU", "Softsign",
                                              "Tanhshrink", "LogSigmoid", "Hardshrink", "Softshrink", "Threshold",
                                              "AlphaDropout"}
# methods that return the layer itself
_CHAINED = frozenset({"eval", "train", "to", "cuda", "cpu", "float", "double", "half", "bfloat16", "requires_grad_"})
_CREATION = frozenset({"randn", "rand", "zeros", "ones", "empty"})
_SAME_RANK_METHODS = frozenset({"float", "to", "clone", "detach", "contiguous", "cpu", "cuda", "abs", "exp", "relu",
                                "sigmoid", "tanh", "neg", "requires_grad_"})
_WRAPPERS = frozenset({"enumerate", "zip", "reversed", "list", "tuple", "iter", "sorted"})  # hold what they get
_CONTAINER_METHODS = frozenset({"children", "modules", "values", "named_children", "named_modules", "items"})
_HARMLESS = frozenset({"print", "repr", "str", "isinstance", "type", "id", "hasattr", "getattr"})
_FLAG = "flag"


def _short(qual: Optional[str]) -> Optional[str]:
    """`Conv2d` for torch.nn.Conv2d / torch.nn.modules.conv.Conv2d."""
    if not qual or not qual.startswith("torch.nn."):
        return None
    parts = qual.split(".")
    if len(parts) == 3 or (len(parts) == 5 and parts[2] == "modules"):
        return parts[-1]
    return None


def _strip(value):
    """`nn.Conv2d(...).to(device).eval()` -> `nn.Conv2d(...)`."""
    while (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
           and value.func.attr.value in _CHAINED and isinstance(value.func.value, cst.Call)):
        value = value.func.value
    return value


def _ints(node) -> Optional[int]:
    """The number of sizes in a shape argument `(2, 3, 4)` / `[n, c]`; None for anything else."""
    if isinstance(node, (cst.Tuple, cst.List)) and not any(isinstance(el, cst.StarredElement) for el in node.elements):
        return len(node.elements)
    return None


def _shape_rank(args) -> Optional[int]:
    """The rank given by size arguments: `(2, 3, 8)`, `2, 3, 8`, `size=(2, 3)`."""
    keyword = next((a.value for a in args if a.keyword is not None and a.keyword.value in ("size", "shape")), None)
    if keyword is not None:
        return _ints(keyword)
    positional = [a for a in args if a.keyword is None]
    if not positional or any(a.star for a in positional):
        return None
    if len(positional) == 1:
        value = positional[0].value
        return 1 if isinstance(value, cst.Integer) else _ints(value)
    if any(isinstance(a.value, (cst.Tuple, cst.List)) for a in positional):
        return None
    return len(positional)


def _depth(node) -> Optional[int]:
    """The nesting depth of a list literal (`torch.tensor([[1, 2], [3, 4]])` is 2-d)."""
    if isinstance(node, (cst.List, cst.Tuple)):
        inner = {_depth(el.value) for el in node.elements if not isinstance(el, cst.StarredElement)}
        if len(inner) != 1 or len(node.elements) == 0:
            return None
        found = inner.pop()
        return None if found is None else found + 1
    return 0 if isinstance(node, (cst.Integer, cst.Float)) or (
        isinstance(node, cst.UnaryOperation) and isinstance(node.expression, (cst.Integer, cst.Float))) else None


def _members(cls: cst.ClassDef) -> list:
    """(attribute, value) of every `self.<attribute> = value` among the statements of a class's __init__."""
    found = []
    for stmt in cls.body.body:
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value == "__init__":
            for n in _walk_nodes(stmt.body):
                if isinstance(n, cst.Assign):
                    for t in n.targets:
                        target = t.target
                        if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) \
                                and target.value.value == "self":
                            found.append((target.attr.value, n.value))
    return found


def _flagged(rw, call: cst.Call) -> bool:
    """Whether a warning of the current statement is about `call` or something in it (left as written)."""
    findings = [f for f in rw.flags() if f.severity != "info"]
    if not findings:
        return False
    inside = {id(n) for n in _walk_nodes(call)}
    return any(id(f.node) in inside for f in findings)


def _moveaxis(value: cst.BaseExpression, source: int, destination: int) -> cst.Call:
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    return cst.Call(func=cst.parse_expression(f"{sentinel('mx')}.moveaxis"),
                    args=[cst.Arg(value, comma=comma), cst.Arg(cst.parse_expression(str(source)), comma=comma),
                          cst.Arg(cst.parse_expression(str(destination)))])


# ----- where the transform can act, read off the stdlib `ast` (cheap; a libcst walk costs several times more) -----
_SOURCES = frozenset(LAYERS) | {"Sequential"}  # what a layer is built from (or flagged for: `nn.Sequential(*xs)`)
_CONTAINERS = frozenset({"ModuleList", "ModuleDict"})


def _target_names(target, found: set) -> set:
    """The names an assignment / loop / `with` target binds (not `a[i]` / `a.b`: stores into an object)."""
    if isinstance(target, ast.Name):
        found.add(target.id)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for el in target.elts:
            _target_names(el, found)
    elif isinstance(target, ast.Starred):
        _target_names(target.value, found)
    return found


def _last_name(func) -> Optional[str]:
    """`Conv2d` of `nn.Conv2d` / `Conv2d` (ast or libcst); None for other callees."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, cst.Name):
        return func.value
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, cst.Attribute):
        return func.attr.value
    return None


def _stripped(call):
    """`nn.Conv2d(...).to(device).eval()` -> `nn.Conv2d(...)` (`_strip`, for ast or libcst calls)."""
    kind = type(call)
    while isinstance(call.func, (ast.Attribute, cst.Attribute)) and _last_name(call.func) in _CHAINED \
            and type(call.func.value) is kind:
        call = call.func.value
    return call


_BINDING_KINDS = frozenset({ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr, ast.For, ast.AsyncFor,
                            ast.comprehension, ast.withitem, ast.Return})


def _binding(node, function: Optional[str]) -> Optional[tuple]:
    """(names bound, value, whether a factory's return) for an ast node of `_BINDING_KINDS` (the forms `_Flows`
    follows; a `return` in module-level `function` binds its name), or None."""
    kind = type(node)
    if kind is ast.Assign:
        names: set = set()
        for t in node.targets:
            _target_names(t, names)
        return names, node.value, False
    if kind is ast.For or kind is ast.AsyncFor or kind is ast.comprehension:
        return _target_names(node.target, set()), node.iter, False
    if kind is ast.withitem:
        return None if node.optional_vars is None else (_target_names(node.optional_vars, set()), node.context_expr, False)
    if kind is ast.Return:
        return None if function is None or node.value is None else ({function}, node.value, True)
    return None if node.value is None else (_target_names(node.target, set()), node.value, False)  # x: T = v, +=, :=


def _scan(tree: ast.Module) -> tuple:
    """One walk of the file: its bindings (`_binding`), the callee of every call, the names called, the names
    declared `global`, the names imported in a def or class."""
    top = {id(s): s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}
    bindings: list = []
    calls: list = []
    called: set = set()
    rebound: set = set()
    imported: set = set()
    stack: list = [(tree, None, False)]
    while stack:
        node, function, nested = stack.pop()
        kind = type(node)
        if kind is ast.Name:
            continue
        if kind is ast.Call:
            calls.append(node.func)
            if type(node.func) is ast.Name:
                called.add(node.func.id)
        elif kind in _BINDING_KINDS:
            found = _binding(node, function)
            if found is not None:
                bindings.append(found)
        elif kind is ast.Global:
            rebound.update(node.names)
        elif kind is ast.FunctionDef or kind is ast.AsyncFunctionDef or kind is ast.ClassDef:
            function = top.get(id(node), function)  # a module-level function: its returns make it a factory
            nested = True
        elif (kind is ast.Import or kind is ast.ImportFrom) and nested:
            imported.update((a.asname or a.name).split(".")[0] for a in node.names)
        for child in ast.iter_child_nodes(node):
            stack.append((child, function, nested))
    return bindings, calls, called, rebound, imported


class _Facts:
    """What the `ast` of the file says about where this transform can act: an over-approximation of what
    `_value_layer` / `_held` / `_name_layer` / `_member_layer` can find, so that the pass may skip everything
    outside it without changing a byte of the output.

    `bound`: names bound (assignment, loop, `with`, walrus, comprehension) to a value that may hold a layer or a
    flagged object: a layer class (`nn.Conv2d`, an alias of it) or `Sequential` called, a factory called (a
    module-level function returning such a value: `factories`), another such name, a list / dict / ModuleList /
    subscript / `.children()` of such things (no other name can hold one). `instances`: names bound to
    `Cls(...)`, a class of this file (`model.pool(x)`, `model.children()` are looked into). `calls_layers`:
    whether any call's callee may be a layer or flagged (else nothing reads the ranks of names: they are not
    followed). `passed`: bound names that are also called (`pool(x)`), the only ones flagged where they are
    passed on; `mentioned`: whether each module-level statement mentions one of them (where `_Uses` looks).
    `rebound_globals`: names declared `global` anywhere."""

    __slots__ = ("bound", "calls_layers", "containers", "factories", "instances", "mentioned", "passed",
                 "rebound_globals", "sources")

    def __init__(self, tree: ast.Module, imports: dict, torch_names: frozenset) -> None:
        """`imports`: the module scope's torch imports (local name -> qualified name); `torch_names`: the names
        bound to torch anywhere (`names.analyze`'s hot names)."""
        bindings, calls, called, self.rebound_globals, imported = _scan(tree)
        # layer classes (and ModuleList / ModuleDict) imported under another name (`from torch.nn import Conv2d as C`);
        # a torch name imported in a def or class may be anything: both
        unknown = (torch_names & imported) | (torch_names - imports.keys())
        self.sources = _SOURCES | unknown | {name for name, qual in imports.items() if _short(qual) in _SOURCES}
        self.containers = _CONTAINERS | unknown | {name for name, qual in imports.items() if _short(qual) in _CONTAINERS}
        classes = {s.name for s in tree.body if isinstance(s, ast.ClassDef)}
        self.instances = {name for names, value, returned in bindings if not returned and isinstance(value, ast.Call)
                          and isinstance(value.func, ast.Name) and value.func.id in classes for name in names}
        self.bound: set = set()
        self.factories: set = set()
        self._propagate(bindings, {s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))})
        self.passed = self.bound & called
        self.mentioned = [bool(self.passed) and any(isinstance(n, ast.Name) and n.id in self.passed for n in ast.walk(s))
                          for s in tree.body]
        self.calls_layers = any(self.candidate(func) for func in calls)

    def _propagate(self, bindings: list, functions: set) -> None:
        """`bound` and `factories`: the names bound to a value that may hold a layer, to a fixed point."""
        readers: dict = {}  # name -> the bindings whose value may hold a layer if that name does
        queue = []
        for b, (_, value, _) in enumerate(bindings):
            needs: set = set()
            if self._holds(value, needs, functions):
                queue.append(b)
            for name in needs:
                readers.setdefault(name, []).append(b)
        hot: set = set()
        done = [False] * len(bindings)
        while queue:
            b = queue.pop()
            if done[b]:
                continue
            done[b] = True
            names, _, returned = bindings[b]
            (self.factories if returned else self.bound).update(names)
            for name in names - hot:
                hot.add(name)
                queue.extend(readers.get(name, ()))

    def _holds(self, value, needs: set, functions) -> bool:
        """Whether `value` may hold a layer whatever the names are; `needs` gets the names (bound ones, factories)
        through which it may too. Mirrors `_value_layer` and `_held` (both modes), generously."""
        kind = type(value)
        if kind is ast.Name:
            needs.add(value.id)
            return False
        if kind is ast.Subscript or kind is ast.Starred:
            return self._holds(value.value, needs, functions)
        if kind is ast.List or kind is ast.Tuple or kind is ast.Set:
            return any([self._holds(el, needs, functions) for el in value.elts])
        if kind is ast.Dict:
            return any([self._holds(v, needs, functions) for v in value.values])
        if kind is ast.ListComp or kind is ast.GeneratorExp or kind is ast.SetComp:
            return self._holds(value.elt, needs, functions)
        if kind is ast.DictComp:
            return self._holds(value.value, needs, functions)
        if kind is not ast.Call:
            return False
        inner = _stripped(value)
        if _last_name(inner.func) in self.sources:
            return True
        if isinstance(inner.func, ast.Name) and inner.func.id in functions:
            needs.add(inner.func.id)  # a factory of this file
        found = False
        for call in (value, inner):
            func = call.func
            if _last_name(func) in self.containers or (isinstance(func, ast.Name) and func.id in _WRAPPERS):
                args = [a.value if isinstance(a, ast.keyword) else a for a in [*call.args, *call.keywords]]
                found = any([self._holds(a, needs, functions) for a in args]) or found
            elif isinstance(func, ast.Attribute) and func.attr in _CONTAINER_METHODS:
                receiver = func.value  # `.children()` of layers, or of a channels-last instance
                if isinstance(receiver, ast.Name) and receiver.id in self.instances:
                    found = True
                found = self._holds(receiver, needs, functions) or found
        return found

    def builds(self, call) -> bool:
        """Whether a call (ast or libcst) may build a layer: a layer class or `Sequential`, or a factory."""
        call = _stripped(call)
        last = _last_name(call.func)
        return last in self.sources or (isinstance(call.func, (ast.Name, cst.Name)) and last in self.factories)

    def holds(self, value) -> bool:
        """Whether an argument (libcst) may be a layer (`_name_layer` / `_value_layer` may find one)."""
        if isinstance(value, cst.Name):
            return value.value in self.bound
        return isinstance(value, cst.Call) and self.builds(value)

    def candidate(self, func) -> bool:
        """Whether a callee (ast or libcst) may be a layer or something flagged (`_callee` may find one)."""
        if isinstance(func, (ast.Name, cst.Name)):
            return _last_name(func) in self.bound
        if isinstance(func, (ast.Attribute, cst.Attribute)):  # `model.pool(x)` for `model = Net(...)`
            base = func.value
            return isinstance(base, (ast.Name, cst.Name)) and _last_name(base) in self.instances
        if isinstance(func, (ast.Subscript, cst.Subscript)):  # `layers[0](x)`
            base = func.value
            while isinstance(base, (ast.Subscript, cst.Subscript)):
                base = base.value
            if isinstance(base, (ast.Name, cst.Name)):
                return _last_name(base) in self.bound
            return not isinstance(base, (ast.Attribute, cst.Attribute))
        if isinstance(func, (ast.Call, cst.Call)):  # `nn.MaxPool2d(2)(x)`, `make_pool()(x)`
            return self.builds(func)
        return False


class _Flows(cst.CSTVisitor):
    """name -> the expressions whose values may end up in it, in one scope (`values`): assignments (tuple
    targets get the whole value), loop and comprehension targets (the iterable), `with ... as`, and stores
    into it (`outs.append(v)`, `outs[i] = v`, `self.feat = v`); `bound` has the binding forms only."""

    def __init__(self, root) -> None:
        self.root = root
        self.values: dict = {}
        self.bound: dict = {}

    def _add(self, target, value, store: bool = False, iterate: bool = False) -> None:
        if value is None:
            return
        if isinstance(target, cst.Name):
            self.values.setdefault(target.value, []).append(value)
            if not store:
                self.bound.setdefault(target.value, []).append((value, iterate))
        elif isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                self._add(el.value, value, store, True)
        elif isinstance(target, cst.StarredElement):
            self._add(target.value, value, store, iterate)
        elif isinstance(target, (cst.Subscript, cst.Attribute)):
            self._add(target.value, value, True)  # stores into `outs[i]` / `self.feat`

    def visit_Assign(self, node) -> None:
        for t in node.targets:
            self._add(t.target, node.value)

    def visit_AnnAssign(self, node) -> None:
        self._add(node.target, node.value)

    def visit_AugAssign(self, node) -> None:
        self._add(node.target, node.value)

    def visit_NamedExpr(self, node) -> None:
        self._add(node.target, node.value)

    def visit_For(self, node) -> None:
        self._add(node.target, node.iter, iterate=True)

    def visit_CompFor(self, node) -> None:
        self._add(node.target, node.iter, iterate=True)

    def visit_WithItem(self, node) -> None:
        if node.asname is not None:
            self._add(node.asname.name, node.item)

    def visit_Call(self, node) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and isinstance(func.value, (cst.Name, cst.Attribute, cst.Subscript)):
            for arg in node.args:  # `outs.append(v)`, `d.update(k=v)`: v may be read back from `outs`
                self._add(func.value, arg.value, True)

    def visit_FunctionDef(self, node) -> bool:
        return node is self.root

    def visit_ClassDef(self, node) -> bool:
        return False

    def visit_Lambda(self, node) -> bool:
        return False


class _Uses(cst.CSTVisitor):
    """One walk of the module: the names called as functions (per binding scope) and the names in positions
    where the object they hold is passed on (an argument, a list element, an alias, a returned value)."""

    def __init__(self, owner: "NnScriptLayersTransform") -> None:
        self.owner = owner
        self.stack: list = []
        self.called: set = set()   # (id of the binding scope, name)
        self.passed: dict = {}     # id(Name node) -> the function stack where it is used
        self.targets: set = set()  # id(Name node) of assignment and loop targets (not passed on)
        self.rebound_globals: set = set()  # names some function declares `global`

    def visit_FunctionDef(self, node) -> None:
        self.stack.append(node)

    def leave_FunctionDef(self, node) -> None:
        self.stack.pop()

    def _mark(self, value) -> None:
        if isinstance(value, cst.Name) and id(value) not in self.targets:
            self.passed[id(value)] = list(self.stack)

    def _target(self, target) -> None:
        self.targets.update(id(n) for n in _walk_nodes(target) if isinstance(n, cst.Name))

    def visit_AssignTarget(self, node) -> None:
        self._target(node.target)

    def visit_For(self, node) -> None:
        self._target(node.target)

    def visit_CompFor(self, node) -> None:
        self._target(node.target)

    def visit_AsName(self, node) -> None:
        self._target(node.name)

    def visit_Global(self, node) -> None:
        self.rebound_globals.update(item.name.value for item in node.names)

    def visit_Call(self, node) -> None:
        if isinstance(node.func, cst.Name):
            facts = self.owner.facts
            if facts is None or node.func.value in facts.passed:  # only those are looked up (visit_Name)
                key = self.owner.binding(node.func.value, self.stack)[0]
                self.called.add((key, node.func.value))
            if node.func.value in _HARMLESS:
                return
        for arg in node.args:
            self._mark(arg.value)

    def visit_Element(self, node) -> None:
        self._mark(node.value)

    def visit_DictElement(self, node) -> None:
        self._mark(node.key)
        self._mark(node.value)

    def visit_Assign(self, node) -> None:
        if not all(isinstance(t.target, cst.Name) for t in node.targets):  # `b = a` is followed: an alias
            self._mark(node.value)

    def visit_Return(self, node) -> None:
        self._mark(node.value)

    def visit_Yield(self, node) -> None:
        self._mark(node.value)


class NnScriptLayersTransform(Transform):
    id = "nn-script-layers"
    description = "channels-last layers called from script code and plain functions: channels moved last and back"
    order = 105  # before nn-layout: its visit hooks see a forward's layouts before nn-layout updates them
    needs_every_statement = True  # `y = pool(x)` names no torch API

    def __init__(self) -> None:
        self.stack: list = []          # per scope: {"fn": FunctionDef or None, "kind": plain/class/cl_forward/...}
        self.layout = None             # the nn-layout transform of this conversion (channels-last classes, call sites)
        self.module: Optional[cst.Module] = None
        self._module_bindings: Optional[dict] = None
        self.facts: Optional[_Facts] = None     # where the transform can act (prepare); None: anywhere
        self.follow = True             # whether ranks (and nn-layout's state) are followed: a layer may be called
        self.functions: dict = {}      # module-level function name -> FunctionDef
        self.classes: dict = {}        # module-level class name -> ClassDef
        self.rebound_globals: set = set()  # names some function declares `global`
        self.uses: Optional[_Uses] = None
        self.forward_state: Optional[dict] = None  # nn-layout's layouts at the start of the current statement
        self.reported: set = set()     # id(Name node) of layers already flagged as passed to a function
        self.left_torch: set = set()   # id(original) of layer constructions the table left as torch (flagged there)
        self._bound: dict = {}         # id(FunctionDef) -> _bindings
        self._flow_memo: dict = {}     # id(scope node) -> _Flows values
        self._doubt_memo: dict = {}
        self._rank_memo: dict = {}
        self.rank_state: dict = {}     # scope key -> {name: rank of its last straight-line assignment, None: unknown}
        self.open: list = []           # the compound statements being visited
        self._bound_in: dict = {}      # id(compound statement) -> names bound in it
        self._checking: set = set()
        self._called_params: dict = {}  # function name -> {parameter: index} of parameters it calls

    def applies_to(self, text: str) -> bool:
        return any(name in text for name in LAYERS)

    def prepare(self, tree: ast.Module, module_scope) -> None:
        """Read `_Facts` off the stdlib ast. Without a call whose callee may be a layer, nothing this transform
        does depends on a statement naming no torch API (no rank is read, no layer is passed on): the file's
        cold statements may then be skipped as for any other transform."""
        torch_names = getattr(module_scope, "hot_names", None)  # names.analyze: the torch aliases of every scope
        if torch_names is None:
            return
        self.facts = _Facts(tree, module_scope.imports, torch_names)
        self.needs_every_statement = self.facts.calls_layers

    @property
    def module_bindings(self) -> dict:
        if self._module_bindings is None:
            self._module_bindings = _bindings(self.module)
        return self._module_bindings

    # ----- scopes ---------------------------------------------------------------------------------
    def visit_Module(self, rw, node: cst.Module) -> None:
        self.layout = rw.transform("nn-layout")
        self.module = node
        self.functions = {s.name.value: s for s in node.body if isinstance(s, cst.FunctionDef)}
        self.classes = {s.name.value: s for s in node.body if isinstance(s, cst.ClassDef)}
        if self.facts is not None:
            self.rebound_globals = self.facts.rebound_globals
        else:
            self.uses = _Uses(self)
            node.visit(self.uses)
            self.rebound_globals = self.uses.rebound_globals
        # with no call of a layer in the file, nothing reads the ranks of names (nor nn-layout's state): not followed
        self.follow = self.facts is None or self.facts.calls_layers
        self.stack = [{"fn": None, "kind": "plain"}]

    def visit_ClassDef(self, rw, node) -> None:
        self.stack.append({"fn": None, "kind": "class", "node": node})

    def leave_ClassDef(self, rw, original, updated):
        self.stack.pop()
        return updated

    def visit_FunctionDef(self, rw, node: cst.FunctionDef) -> None:
        parent = self.stack[-1]
        kind = "plain"
        if parent["kind"] == "class":
            layers = self.layout.classes[-1] if self.layout is not None and self.layout.classes else None
            if layers is not None:
                kind = "cl_forward" if node.name.value == "forward" else "cl_method"
        elif parent["kind"] in ("cl_forward", "cl_method"):
            kind = "cl_method"  # a function inside a channels-last class: what it gets is not followed
        self.stack.append({"fn": node, "kind": kind})

    def leave_FunctionDef(self, rw, original, updated):
        self.stack.pop()
        return updated

    def _mentioning(self) -> list:
        """The module-level statements that mention a name of `facts.passed` (all of them if unsure)."""
        mentioned, found, i = self.facts.mentioned, [], 0
        for stmt in self.module.body:  # `a = 1; b = 2` is one libcst statement, two ast ones
            n = len(stmt.body) if isinstance(stmt, cst.SimpleStatementLine) else 1
            if any(mentioned[i:i + n]):
                found.append(stmt)
            i += n
        return found if i == len(mentioned) else list(self.module.body)

    def _functions(self) -> list:
        return [s["fn"] for s in self.stack if s["fn"] is not None]

    def _bindings_of(self, fn) -> dict:
        if id(fn) not in self._bound:
            self._bound[id(fn)] = _bindings(fn)
        return self._bound[id(fn)]

    def binding(self, name: str, functions: list) -> tuple:
        """(key of the scope binding `name`, its values, the functions enclosing that scope)."""
        for i in range(len(functions) - 1, -1, -1):
            bound = self._bindings_of(functions[i])
            if name in bound:
                if "global" in bound[name]:
                    break
                return id(functions[i]), bound[name], functions[:i + 1]
        return "module", self.module_bindings.get(name, []), []

    # ----- what a callee is ------------------------------------------------------------------------
    def _value_layer(self, rw, value, functions: Optional[list] = None):
        """A Layer, (_FLAG, why), "neutral" (an element-wise layer) or None (something else)."""
        value = _strip(value)
        if isinstance(value, cst.Name):  # `layer = pool`: an alias
            return self._name_layer(rw, value.value, functions)
        if not isinstance(value, cst.Call):
            return None
        func = value.func
        short = _short(rw.qualified_name(func))
        if short in LAYERS:
            return "torch-left" if id(value) in self.left_torch else LAYERS[short]
        if short in NEUTRAL:
            return "neutral"
        if short == "Sequential":
            return self._sequential(rw, value)
        if (isinstance(func, cst.Name) and func.value in self.functions
                and len(self.module_bindings.get(func.value, [])) == 1):
            if func.value in self._checking:
                return None
            self._checking.add(func.value)
            try:
                factory = self.functions[func.value]
                returned = [self._value_layer(rw, r, [factory]) for r in _returned(factory) if r is not None]
            finally:
                self._checking.discard(func.value)
            if any(isinstance(r, (Layer, tuple)) for r in returned):
                return (_FLAG, f"`{func.value}(...)` returns a channels-last layer: its calls here are not followed "
                        "(feed it NHWC/NLC data, e.g. mx.moveaxis(x, 1, -1))")
        return None

    def _sequential(self, rw, call: cst.Call):
        elements: list = []
        for arg in call.args:
            if arg.keyword is not None or arg.star:
                inside = [self._value_layer(rw, n) for n in _walk_nodes(arg.value) if isinstance(n, cst.Call)]
                if arg.star or any(isinstance(i, (Layer, tuple)) for i in inside):
                    return (_FLAG, "an nn.Sequential whose elements cannot all be seen: if it holds channels-last "
                            "layers (MLX: NHWC/NLC), its input must be channels-last")
                return None
            value = arg.value
            if isinstance(value, cst.Name):
                found = self._name_layer(rw, value.value)
                elements.append(found if found is not None else "other")
            else:
                found = self._value_layer(rw, value)
                elements.append("other" if found is None else found)
        flags = [e for e in elements if isinstance(e, tuple)]
        if flags:
            return flags[0]
        layers = [e for e in elements if isinstance(e, Layer)]
        if "torch-left" in elements:
            return "torch-left"
        if not layers:
            return None
        if "other" in elements:
            return (_FLAG, "an nn.Sequential of channels-last layers (MLX: NHWC/NLC) and layers whose MLX form "
                    "depends on the axis order (Flatten, Linear, ...): write its steps out, moving the channels "
                    "last before the first layer and back before the others")
        first = layers[0]
        return Layer("Sequential", first.kind, first.dim, first.ranks, more=len(layers) > 1)

    def _name_layer(self, rw, name: str, functions: Optional[list] = None):
        """What a name holds: a Layer, (_FLAG, why), "neutral", "torch-left" or None."""
        functions = self._functions() if functions is None else functions
        key, values, outer = self.binding(name, functions)
        if (key, name) in self._checking:
            return None  # `a = nn.Sequential(a)`
        self._checking.add((key, name))
        try:
            if all(isinstance(v, cst.BaseExpression) for v in values):
                found = [self._value_layer(rw, v, outer) for v in values]
            else:  # `for pool in [...]`, `a = b = nn.X()`, `(p := nn.X())`, `a, b = ...`: what may end up in it
                flows = self._flows(key, outer).bound.get(name, [])
                found = [h for f, iterate in flows for h in self._held(rw, f, outer, iterate)]
                if len(flows) < len(values):
                    found.append(None)  # bound by an import, `except ... as`, a parameter, ...
        finally:
            self._checking.discard((key, name))
        if not any(isinstance(f, (Layer, tuple)) or f == "torch-left" for f in found):
            return "neutral" if found and all(f == "neutral" for f in found) else None
        if "torch-left" in found:
            return "torch-left"
        if key == "module" and name in self.rebound_globals:
            return (_FLAG, f"`{name}` holds a channels-last layer and is rebound in a function (`global`): "
                    "which object is called here cannot be told")
        flags = [f for f in found if isinstance(f, tuple)]
        if flags:
            return flags[0]
        found = [f for f in found if f != "neutral"]  # moving the channels around an activation changes nothing
        if any(not isinstance(f, Layer) for f in found) or len({f.key() for f in found}) != 1:
            return (_FLAG, f"`{name}` is bound more than once here (or by a loop or unpacking), not always to the same "
                    "kind of channels-last layer: which layout its input needs cannot be told")
        return found[0]

    def _held(self, rw, expr, functions: list, iterate: bool = False) -> list:
        """What `expr` may be (or, with `iterate`, yield when looped over, unpacked or indexed): Layers, flags,
        "neutral", "torch-left" or None (something else)."""
        if not iterate:
            if isinstance(expr, cst.Subscript):
                return self._held(rw, expr.value, functions, True)
            if isinstance(expr, (cst.Name, cst.Call)) and not self._container_call(rw, expr, functions):
                return [self._value_layer(rw, expr, functions)]
            return [None]
        if isinstance(expr, (cst.List, cst.Tuple, cst.Set)):
            return [h for el in expr.elements for h in self._held(rw, el.value, functions)] or [None]
        if isinstance(expr, (cst.ListComp, cst.GeneratorExp, cst.SetComp)):
            return self._held(rw, expr.elt, functions)
        if isinstance(expr, cst.Dict):
            return [h for el in expr.elements if isinstance(el, cst.DictElement)
                    for h in self._held(rw, el.value, functions)] or [None]
        if isinstance(expr, cst.Subscript):  # a slice of a list of layers
            return self._held(rw, expr.value, functions, True)
        if isinstance(expr, cst.Call):
            func, short = expr.func, _short(rw.qualified_name(expr.func))
            args = [a.value for a in expr.args]
            if short in ("ModuleList", "ModuleDict") and args:
                return self._held(rw, args[0], functions, True)
            if short == "Sequential":
                return [h for a in args for h in self._held(rw, a, functions, True)] if any(
                    a.star for a in expr.args) else [h for a in args for h in self._held(rw, a, functions)] or [None]
            if isinstance(func, cst.Name) and func.value in _WRAPPERS and not self.binding(func.value, functions)[1]:
                return [h for a in args for h in self._held(rw, a, functions, True)] or [None]
            if isinstance(func, cst.Attribute) and func.attr.value in _CONTAINER_METHODS:
                inner = self._held(rw, func.value, functions, True)
                if (any(isinstance(h, (Layer, tuple)) for h in inner)
                        or self._channels_last_instance(rw, func.value, functions)):
                    return [(_FLAG, f"the modules of `{code_of(func.value)}` may be channels-last layers in MLX "
                             "(NHWC/NLC input): a loop over them is not followed")]
            return [None]
        if isinstance(expr, cst.Name):
            key, values, outer = self.binding(expr.value, functions)
            if (key, expr.value, "held") in self._checking:
                return [None]
            self._checking.add((key, expr.value, "held"))
            try:  # what the name is bound to, looped over
                return [h for v in values for h in (self._held(rw, v, outer, True) if isinstance(v, cst.BaseExpression)
                                                    else [None])] or [None]
            finally:
                self._checking.discard((key, expr.value, "held"))
        return [None]

    def _container_call(self, rw, expr, functions: list) -> bool:
        """`nn.ModuleList(...)` and the like: a container, not a layer."""
        return isinstance(expr, cst.Call) and _short(rw.qualified_name(expr.func)) in ("ModuleList", "ModuleDict")

    def _callee(self, rw, func, functions: Optional[list] = None):
        if isinstance(func, cst.Name):
            return self._name_layer(rw, func.value, functions)
        if isinstance(func, cst.Call):
            return self._value_layer(rw, func)
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value != "self":
            return self._member_layer(rw, func.value.value, func.attr.value, functions)
        if isinstance(func, cst.Subscript):  # `layers[0](x)`, `blocks["conv"](x)`
            held = [h for h in self._held(rw, func.value, self._functions() if functions is None else functions, True)
                    if h not in ("torch-left", "neutral")]
            layers = [h for h in held if isinstance(h, Layer)]
            flags = [h for h in held if isinstance(h, tuple)]
            if flags:
                return flags[0]
            if layers and (len(layers) != len(held) or len({h.key() for h in layers}) != 1):
                return (_FLAG, f"`{code_of(func.value)}` holds channels-last layers (MLX: NHWC/NLC input) next to "
                        "other things: which one is called cannot be told")
            return layers[0] if layers else None
        return None

    def _channels_last_instance(self, rw, value, functions: list) -> bool:
        """`model` bound to `Net(...)`, a class of this file whose __init__ builds channels-last layers."""
        if not isinstance(value, cst.Name) or self.layout is None:
            return False
        values = self.binding(value.value, functions)[1]
        return any(isinstance(v, cst.Call) and isinstance(v.func, cst.Name) and v.func.value in self.classes
                   and self.layout._class_layers(rw, self.classes[v.func.value]) is not None for v in values)

    def _class_body_callee(self, rw, scope: dict, func):
        """A layer called in a class body (`pool = nn.MaxPool2d(2)` there, or inline)."""
        if isinstance(func, cst.Name):
            collect = _Bindings()
            for stmt in scope["node"].body.body:
                stmt.visit(collect)
            values = collect.values.get(func.value)
            if values is not None:
                found = [self._value_layer(rw, v) if isinstance(v, cst.BaseExpression) else None for v in values]
                return next((f for f in found if isinstance(f, (Layer, tuple))), None)
        return self._callee(rw, func)

    def _member_layer(self, rw, name: str, attr: str, functions: Optional[list]):
        """`model.pool(x)` for `model = Net(...)`, a class of this file whose __init__ sets `self.pool` once."""
        _, values, _ = self.binding(name, self._functions() if functions is None else functions)
        value = values[0] if len(values) == 1 else None
        if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Name)):
            return None
        cls = self.classes.get(value.func.value)
        if cls is None or len(self.module_bindings.get(value.func.value, [])) != 1:
            return None
        assigned = [v for target, v in _members(cls) if target == attr]
        found = self._value_layer(rw, assigned[0]) if len(assigned) == 1 else None
        if found is None and self.layout is not None:
            kind = (self.layout._class_layers(rw, cls) or {}).get(attr)
            if kind not in (None, Layout.PER_POSITION, Layout.PLAIN):
                return (_FLAG, f"`{name}.{attr}` is a channels-last submodule in MLX (NHWC/NLC input): "
                        "this call is not followed")
        return found

    # ----- where the input comes from ----------------------------------------------------------------
    def _has_sources(self, rw) -> bool:
        return (self.layout is not None and self.layout.calls is not None) or bool(_project_builders(rw))

    def _doubtful(self, rw, expr, functions: list) -> bool:
        """Whether `expr` may hold a value a converted channels-last model returned without a transpose back."""
        for node in _walk_nodes(expr):
            if isinstance(node, cst.Call) and self._model_call(rw, node, functions):
                return True
            if isinstance(node, cst.Name) and self._doubtful_name(rw, node.value, functions):
                return True
        return False

    def _model_call(self, rw, call: cst.Call, functions: list) -> bool:
        func = call.func
        if isinstance(func, cst.Name) and func.value in _project_builders(rw):
            return True
        calls = self.layout.calls if self.layout is not None else None
        if calls is None:
            return False
        if isinstance(func, cst.Call) and isinstance(func.func, cst.Name) and func.func.value in calls.classes:
            return True  # `Net()(x)`: an instance the call-site analysis does not follow
        found = None
        if isinstance(func, cst.Name) and func.value in calls.candidates:
            found = calls.resolve(func.value, functions)
        elif isinstance(func, cst.Attribute):
            found = calls.callee(func, self.layout.class_stack)
        if found is None:
            return False
        proven, cls = found
        outputs = self.layout.outputs.get(cls)
        back = bool(outputs) and (outputs <= {Layout.PLAIN} or outputs in ({Layout.CL2}, {Layout.POOLED}, {Layout.CL1}, {Layout.CL3}))
        simple = len(call.args) == calls.classes[cls][1] and not any(a.keyword or a.star for a in call.args)
        return not (proven and simple and back)

    def _flows(self, key, functions: list) -> _Flows:
        root = functions[-1] if key != "module" else self.module
        if id(root) not in self._flow_memo:
            collect = _Flows(root)
            body = root.body.body if isinstance(root, cst.FunctionDef) else root.body
            for stmt in body:
                stmt.visit(collect)
            self._flow_memo[id(root)] = collect
        return self._flow_memo[id(root)]

    def _doubtful_name(self, rw, name: str, functions: list) -> bool:
        key, _, outer = self.binding(name, functions)
        memo = (key, name)
        if memo not in self._doubt_memo:
            self._doubt_memo[memo] = False  # guards cycles: `x = f(x)`
            values = self._flows(key, outer).values.get(name, [])
            self._doubt_memo[memo] = any(self._doubtful(rw, v, outer) for v in values)
        return self._doubt_memo[memo]

    # ----- the rank of the input --------------------------------------------------------------------
    def _rank(self, rw, expr, functions: list, flow: bool = False) -> Optional[int]:
        """The rank of `expr`, where it can be read off the code. `flow`: a name of the current scope has the rank
        of its last straight-line assignment before this statement (`x = x.view(n, c, l)`); otherwise (and for
        names bound elsewhere) every binding of the name must give the same rank."""
        if isinstance(expr, cst.Name):
            key, values, outer = self.binding(expr.value, functions)
            state = self.rank_state.get(key)
            if flow and state is not None and expr.value in state and key == self._scope_key() \
                    and not (key == "module" and expr.value in self.rebound_globals):
                return state[expr.value]
            memo = (key, expr.value)
            if memo not in self._rank_memo:
                self._rank_memo[memo] = None
                ranks = {self._rank(rw, v, outer) if isinstance(v, cst.BaseExpression) else None for v in values}
                self._rank_memo[memo] = ranks.pop() if len(ranks) == 1 else None
            return self._rank_memo[memo]
        if isinstance(expr, cst.BinaryOperation):
            left, right = self._rank(rw, expr.left, functions, flow), self._rank(rw, expr.right, functions, flow)
            numbers = (cst.Integer, cst.Float)
            if isinstance(expr.left, numbers):
                return right
            if isinstance(expr.right, numbers):
                return left
            return max(left, right) if left is not None and right is not None else None
        if isinstance(expr, cst.UnaryOperation):
            return self._rank(rw, expr.expression, functions, flow)
        if not isinstance(expr, cst.Call):
            return None
        func, args = expr.func, expr.args
        qual = rw.qualified_name(func) or ""
        if qual.startswith("torch.") and qual.count(".") == 1:
            name = qual[6:]
            if name in _CREATION:
                return _shape_rank(args)
            if name == "full" and args and args[0].keyword is None:
                return _ints(args[0].value)
            if name in ("tensor", "as_tensor") and args and args[0].keyword is None:
                return _depth(args[0].value)
            if name.endswith("_like") and args and args[0].keyword is None:
                return self._rank(rw, args[0].value, functions, flow)
            if name in ("arange", "linspace"):
                return 1
            return None
        layer = self._callee(rw, func, functions)
        if (isinstance(layer, Layer) or layer == "neutral") and len(args) == 1 and args[0].keyword is None:
            return self._rank(rw, args[0].value, functions, flow)  # every one of them keeps the rank
        if isinstance(func, cst.Attribute) and not qual:
            method, receiver = func.attr.value, func.value
            if method in ("view", "reshape") and args:
                return _shape_rank(args)
            if method in ("unsqueeze",):
                inner = self._rank(rw, receiver, functions, flow)
                return None if inner is None else inner + 1
            if method in _SAME_RANK_METHODS:
                return self._rank(rw, receiver, functions, flow)
            return None
        return None

    # ----- the pass ---------------------------------------------------------------------------------
    def _snapshot(self) -> None:
        if not self.follow:
            return
        state = self.layout.state if self.layout is not None else None
        self.forward_state = dict(state) if state is not None and self.stack[-1]["kind"] == "cl_forward" else None

    def _scope_key(self):
        functions = self._functions()
        return id(functions[-1]) if functions else "module"

    def _forget(self, node) -> None:
        """Names bound anywhere in a compound statement: their rank is no longer known (branches, loops)."""
        if not self.follow:
            return
        if id(node) not in self._bound_in:
            collect = _Bindings()
            node.visit(collect)
            self._bound_in[id(node)] = list(collect.values)
        state = self.rank_state.setdefault(self._scope_key(), {})
        for name in self._bound_in[id(node)]:
            state[name] = None

    def visit_SimpleStatementLine(self, rw, node) -> None:
        self._snapshot()

    def leave_SimpleStatementLine(self, rw, original, updated):
        """Straight-line code: a name assigned here has the rank of its value from the next statement on."""
        if self.stack[-1]["kind"] == "class" or not self.follow:
            return updated
        state = self.rank_state.setdefault(self._scope_key(), {})
        for small in original.body:
            value = getattr(small, "value", None)
            if isinstance(small, (cst.Assign, cst.AnnAssign)) and value is not None:
                targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                rank = self._rank(rw, value, self._functions(), flow=True)
                for target in targets:
                    collect = _Bindings()
                    collect.bind(target)
                    for name in collect.values:  # `a, b = ...`: unknown
                        state[name] = rank if isinstance(target, cst.Name) else None
            else:
                self._forget(small)
        return updated

    def _enter_compound(self, node) -> None:
        self._snapshot()
        if self.open and isinstance(self.open[-1], cst.If) and self.open[-1].orelse is node:
            self._forget(self.open[-1])  # an elif: the body before it may not have run
        self.open.append(node)
        self._forget(node)

    def _leave_compound(self, rw, original, updated):
        if self.open and self.open[-1] is original:
            self.open.pop()
        self._forget(original)
        return updated

    def _enter_branch(self, rw, node) -> None:
        if self.open:
            self._forget(self.open[-1])  # else / except / finally / case: the code before it may not have run

    def visit_If(self, rw, node) -> None:
        self._enter_compound(node)

    visit_For = visit_While = visit_Try = visit_With = visit_Match = visit_If
    leave_If = leave_For = leave_While = leave_Try = leave_With = leave_Match = _leave_compound
    visit_Else = visit_ExceptHandler = visit_Finally = visit_MatchCase = _enter_branch

    def visit_Name(self, rw, node: cst.Name) -> None:
        if self.facts is not None:
            if node.value not in self.facts.passed:
                return
            if self.uses is None:  # the first name that may be a layer passed on: where is it used?
                self.uses = _Uses(self)
                for stmt in self._mentioning():
                    stmt.visit(self.uses)
        if self.uses is None or id(node) not in self.uses.passed or id(node) in self.reported:
            return
        functions = self.uses.passed[id(node)]
        key = self.binding(node.value, functions)[0]
        if (key, node.value) in self.uses.called and isinstance(self._name_layer(rw, node.value, functions), Layer):
            rw.flag(node, RULE, "needs-review", f"`{node.value}` is a channels-last layer in MLX (NHWC/NLC input) "
                    "and is passed on here: what calls it there must feed it channels-last data")

    def visit_Call(self, rw, node: cst.Call) -> None:
        """`f(pool, x)` where the function `f` of this file calls that parameter: its calls are not followed."""
        func = node.func
        if not (isinstance(func, cst.Name) and func.value in self.functions):
            return
        if self.facts is not None and not any(self.facts.holds(a.value) for a in node.args if not a.star):
            return  # nothing passed can be a layer
        called = self._parameters_called(func.value)
        if not called:
            return
        positional = [a for a in node.args if a.keyword is None and not a.star]
        for i, arg in enumerate(positional):
            self._check_passed(rw, arg.value, i in called.values(), func.value)
        for arg in node.args:
            if arg.keyword is not None:
                self._check_passed(rw, arg.value, arg.keyword.value in called, func.value)

    def _check_passed(self, rw, value, called: bool, function: str) -> None:
        if not called:
            return
        found = self._name_layer(rw, value.value) if isinstance(value, cst.Name) else self._value_layer(rw, value)
        if isinstance(found, Layer):
            self.reported.add(id(value))
            rw.flag(value, RULE, "needs-review", f"a channels-last layer (MLX: NHWC/NLC input) passed to `{function}`, "
                    "which calls it: its input there must be channels-last")

    def _parameters_called(self, name: str) -> dict:
        if name not in self._called_params:
            fn = self.functions[name]
            params = fn.params
            order = [p.name.value for p in [*params.posonly_params, *params.params]]
            names = {p.name.value for p in [*params.posonly_params, *params.params, *params.kwonly_params]}
            bound = self._bindings_of(fn)
            found = {}
            for n in _walk_nodes(fn.body):
                if isinstance(n, cst.Call) and isinstance(n.func, cst.Name) and n.func.value in names:
                    p = n.func.value
                    if all(isinstance(v, tuple) for v in bound.get(p, [])):
                        found[p] = order.index(p) if p in order else -1
            self._called_params[name] = found
        return self._called_params[name]

    def _check_built_sequential(self, rw, call: cst.Call) -> None:
        """An nn.Sequential built outside any class (a script, a plain function returning it) mixing channels-last
        layers with layers whose MLX form depends on the axis order (Flatten, Linear) or with a class of this file
        (one deriving from a torch layer takes torch's layout): whoever runs it gets MLX's layers channels-last next
        to the others, wrong whether fed NCHW or NHWC. Flagged where it is built, called here or not (a call
        here is flagged as well; in the default layout mode the file is then built in torch's layout)."""
        if any(scope["kind"] != "plain" for scope in self.stack):
            return  # in a class: nn-layout follows its constructions
        found = self._sequential(rw, call)
        if isinstance(found, tuple) and "depends on the axis order" in found[1]:
            rw.flag(call, RULE, "needs-review", found[1])

    def leave_Call(self, rw, original: cst.Call, updated):
        if not isinstance(updated, cst.Call):
            return updated
        facts = self.facts
        if facts is None or _last_name(original.func) in facts.sources:
            short = _short(rw.qualified_name(original.func))
            if short in LAYERS or short == "Sequential":
                if updated.func.deep_equals(original.func) and _flagged(rw, original):  # left as torch (flagged)
                    self.left_torch.add(id(original))
                elif short == "Sequential":
                    self._check_built_sequential(rw, original)
                return updated
        if facts is not None and not facts.candidate(original.func):
            return updated  # its callee cannot be a layer
        scope = self.stack[-1]
        if scope["kind"] == "class":
            found = self._class_body_callee(rw, scope, original.func)
        else:
            found = self._callee(rw, original.func)
        if found is None or found in ("neutral", "torch-left"):
            return updated
        name = found.name if isinstance(found, Layer) else "layer"
        what = f"`{original.func.value}` ({name})" if isinstance(original.func, cst.Name) else f"this {name}"
        if isinstance(found, tuple):
            rw.flag(original, RULE, "needs-review", found[1])
            return updated
        if scope["kind"] in ("cl_method", "class"):
            rw.flag(original, RULE, "needs-review", f"{what} is channels-last in MLX (NHWC/NLC input), called "
                    "in a class body or in a method of a channels-last class other than forward: the layout of its "
                    "input is not followed")
            return updated
        args = original.args
        if len(args) != 1 or args[0].keyword is not None or args[0].star:
            rw.flag(original, RULE, "needs-review", f"{what} is channels-last in MLX (NHWC/NLC input): "
                    "this call is not translated (one positional input expected)")
            return updated
        arg = args[0].value
        functions = self._functions()
        if scope["kind"] == "cl_forward":
            state = self.forward_state or {}
            if self.layout._feeds_layer(arg) or any(state.get(n.value, Layout.PLAIN) != Layout.PLAIN for n in _walk_nodes(arg)
                                                    if isinstance(n, cst.Name)):
                return updated  # a channels-last value: nn-layout follows (and flags) it
        elif self._has_sources(rw) and self._doubtful(rw, arg, functions):
            rw.flag(original, RULE, "needs-review", f"{what} is channels-last in MLX (NHWC/NLC input) and its "
                    "input may come out of a converted channels-last model without a transpose back: check its layout")
            return updated
        layer: Layer = found
        axis = layer.axis(self._rank(rw, arg, functions, flow=True) if layer.kind != "batch" else None)
        if isinstance(axis, str):
            rw.flag(original, RULE, "needs-review", f"{what} is channels-last in MLX and what it does "
                    f"to torch's layout depends on the input's rank: {axis}")
            return updated
        if axis is None:
            if layer.more:
                rw.flag(original, RULE, "needs-review", f"{what}: its first layer keeps torch's layout on this input "
                        "while later ones are channels-last in MLX")
            return updated  # BatchNorm1d on (N, C): MLX normalises the last axis, torch's channels
        rw.need_import("mx")
        first = updated.args[0]
        moved = first.with_changes(value=_moveaxis(first.value, axis, -1), comma=cst.MaybeSentinel.DEFAULT)
        inner = updated.with_changes(args=[moved], lpar=[], rpar=[])
        result = _moveaxis(inner, -1, axis)
        if updated.lpar:
            result = result.with_changes(lpar=updated.lpar, rpar=updated.rpar)
        return result
