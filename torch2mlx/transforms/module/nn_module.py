"""`class Net(nn.Module)`: forward, buffers, submodule calls and `apply` in module classes.

**What it does**, in every class whose base is `torch.nn.Module` (or a module class defined
earlier in the same file):
- `def forward(self, ...)` becomes `def __call__(self, ...)`; `self.block.forward(x)` becomes
  `self.block(x)` and `super().forward(x)` becomes `super().__call__(x)`.
- `self.register_buffer("name", t)` becomes `self.name = t` followed by
  `self.freeze(keys=["name"], recurse=False)`: the buffer is an array member, so it appears in
  `parameters()`, loads from a torch state_dict and is saved, but it is frozen, so
  `nn.value_and_grad` / the optimizer leave it alone (MLX's own BatchNorm keeps its running
  statistics the same way).
- `register_buffer("name", t, persistent=False)` becomes `self._name = t` and every `self.name`
  in the class becomes `self._name`: MLX leaves members starting with `_` out of `parameters()`,
  so, as in torch, the buffer is neither trained nor expected in a checkpoint.
- `self.name = nn.Buffer(t)` / `nn.Buffer(t, persistent=False)` (torch >= 2.5) are translated
  the same way as the register_buffer call they stand for.
- The base class itself (`nn.Module` -> mlx `nn.Module`), `super().__init__()`, `self.training`,
  `.train()` and `.eval()` need no change: MLX modules have the same members.

**Weight tying**: `self.wte.weight = self.head.weight` (either direction, a straight-line
statement of `__init__`) where `wte = nn.Embedding(V, D)` (directly or in an nn.ModuleDict) and
`head = nn.Linear(D, V, bias=False)` with the same argument expressions, and `self.head` is only
ever called (nothing else in the file names it): the Linear and the assignment are dropped and
`self.head(x)` becomes `self.wte.as_linear(x)` (`x @ weight.T`, what the bias-free Linear does),
so one MLX parameter serves both, as in torch. `load_torch_weights` skips the checkpoint's second
key for the shared tensor (`LoadReport.tied`). Any other tie of `.weight`/`.bias` is flagged.

**Tensor facts**: inside `forward`, arguments without a default are taken to be tensors (so
`x.view(...)` converts), as are names assigned from a call of a submodule built in `__init__`
and the names unpacked from `.split()`/`.chunk()` of a tensor. An info diagnostic says so.

**Left in place when**: `register_buffer` with a name that is not a string literal or a
`persistent=` that is not a literal; `nn.Buffer(...)` anywhere but as the whole value of a
`self.name = ...` statement of a module class, or with a `persistent=` that is not a literal; `self.apply(fn)` (torch calls fn on every submodule, MLX's
`apply` maps fn over the parameters: use `apply_to_modules(lambda name, m: fn(m))`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import libcst as cst

from torch2mlx.binding import signature_of, try_bind
from torch2mlx.patterns import find, is_name
from torch2mlx.template import sentinel
from torch2mlx.torch_facts import MODULE_BASES, TUPLE_RETURNING_LAYERS
from torch2mlx.transforms import Transform
from torch2mlx.transforms.module.layer_bases import BASES

_DICT_METHODS = frozenset(dir(dict))
_SEQUENCE_BUILTINS = frozenset({"len", "enumerate", "list", "tuple", "reversed", "iter", "zip"})
_SPLITTERS = frozenset({"split", "chunk", "unbind", "tensor_split"})
_BUFFER_CLASSES = frozenset({"torch.nn.Buffer", "torch.nn.parameter.Buffer"})


@dataclass
class _ClassInfo:
    is_module: bool
    hidden_buffers: set = field(default_factory=set)  # persistent=False buffers, renamed to _name
    submodules: set = field(default_factory=set)      # self.<attr> assigned a layer in this class
    dicts: set = field(default_factory=set)           # self.<attr> = nn.ModuleDict(...): now a dict
    sequentials: set = field(default_factory=set)     # self.<attr> = nn.Sequential(...): layers in .layers
    tie: Optional["_Tie"] = None                      # an Embedding/Linear weight tie translated exactly


@dataclass(frozen=True)
class _Tie:
    """`self.<emb>.weight = self.<linear>.weight` (or the reverse) in `__init__`, translatable:
    the Linear's construction and the assignment are dropped, `self.<linear>(x)` becomes
    `self.<emb>.as_linear(x)` (MLX's `x @ weight.T`, what a bias-free Linear computes)."""
    assignment: cst.Assign  # the tie statement (as parsed)
    linear: str       # the Linear's attribute name (`lm_head`)
    embedding: str    # the Embedding's path as written in torch (`transformer.wte`)


def _self_attr(node: cst.BaseExpression) -> Optional[str]:
    if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self":
        return node.attr.value
    return None


def _string_value(node: cst.BaseExpression) -> Optional[str]:
    if isinstance(node, cst.SimpleString) and node.prefix.lower() in ("", "u"):
        value = node.evaluated_value
        return value if isinstance(value, str) and value.isidentifier() else None
    return None


# torch's signatures of the calls read here (arguments are nodes; None where absent or unbindable)
_REGISTER_BUFFER = signature_of(("name", "tensor", "persistent"), optional=True)
_BUFFER = signature_of(("data",), ("persistent",), optional=True)  # nn.Buffer(data=None, *, persistent=True)


def _slots(call: cst.Call, signature) -> tuple:
    """The argument nodes of `call` for each parameter of `signature`, in order; all None if unbindable."""
    bound = try_bind(call.args, signature)
    return tuple(bound.get(name) if bound is not None else None for name in signature.names)


def _buffer_args(call: cst.Call) -> tuple:
    """(name node, tensor node, persistent node) of a register_buffer call; None where absent."""
    return _slots(call, _REGISTER_BUFFER)


def _buffer_class_args(call: cst.Call) -> tuple:
    """(data node, persistent node) of `nn.Buffer(data=None, *, persistent=True)`; (None, None) if unbindable."""
    return _slots(call, _BUFFER)


class _SelfAttrAccess(cst.CSTTransformer):
    """Accesses to members whose MLX form differs, over the whole class (cold lines included):
    `self.buf` -> `self._buf` (persistent=False buffer), `self.blocks.attn` -> `self.blocks["attn"]`
    (an nn.ModuleDict, now a dict), `self.body[0]` -> `self.body.layers[0]` (an nn.Sequential)."""

    def __init__(self, info: _ClassInfo):
        super().__init__()
        self.info = info

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        if _self_attr(updated) in self.info.hidden_buffers:
            return updated.with_changes(attr=cst.Name("_" + updated.attr.value))
        if _self_attr(updated.value) in self.info.dicts and updated.attr.value not in _DICT_METHODS:
            index = cst.SubscriptElement(cst.Index(cst.SimpleString(f'"{updated.attr.value}"')))
            return cst.Subscript(value=updated.value, slice=[index], lpar=updated.lpar, rpar=updated.rpar)
        return updated

    def _layers(self, node: cst.BaseExpression) -> cst.BaseExpression:
        if _self_attr(node) in self.info.sequentials:
            return cst.Attribute(node, cst.Name("layers"))
        return node

    def leave_Subscript(self, original: cst.Subscript, updated: cst.Subscript) -> cst.BaseExpression:
        return updated.with_changes(value=self._layers(updated.value))

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        """len(self.body), enumerate(self.body), ...: the layers, not the MLX module's dict of members."""
        if isinstance(updated.func, cst.Name) and updated.func.value in _SEQUENCE_BUILTINS:
            return updated.with_changes(args=[a.with_changes(value=self._layers(a.value)) for a in updated.args])
        return updated

    def leave_For(self, original: cst.For, updated: cst.For) -> cst.For:
        return updated.with_changes(iter=self._layers(updated.iter))

    def leave_CompFor(self, original: cst.CompFor, updated: cst.CompFor) -> cst.CompFor:
        return updated.with_changes(iter=self._layers(updated.iter))


class NnModuleTransform(Transform):
    id = "nn-module"
    description = "torch nn.Module subclasses to mlx.nn.Module: forward -> __call__, buffers, submodule calls"
    hot_attributes = ("forward", "register_buffer", "apply")

    def __init__(self) -> None:
        self.module_classes: set = set()
        self.classes: list = []
        self.module: Optional[cst.Module] = None
        self.freezes: dict = {}  # id of a translated `self.name = nn.Buffer(t)` assignment -> name to freeze

    def applies_to(self, text: str) -> bool:
        # every class, not only where "Module" is written: a class deriving from a torch layer
        # (`class Conv2dSame(nn.Conv2d)`, timm conv2d_same.py) or from a module class of another project file is a
        # module whose forward must become __call__ (else the base's __call__ runs, silently ignoring it)
        return "class" in text

    def visit_Module(self, rw, node: cst.Module) -> None:
        self.module = node  # a tie is translated only where nothing else in the file names the Linear

    # ----- classes ---------------------------------------------------------------------------
    def _in_module_class(self) -> Optional[_ClassInfo]:
        return self.classes[-1] if self.classes and self.classes[-1].is_module else None

    def visit_ClassDef(self, rw, node: cst.ClassDef) -> None:
        is_module = False
        for base in node.bases:
            qual = rw.qualified_name(base.value) or ""
            layer = qual[9:] if qual.count(".") == 2 and qual.startswith("torch.nn.") else None
            if qual in MODULE_BASES or (layer in BASES and (layer != "Sequential" or _defines_forward(node))):
                is_module = True  # nn.Module, or a torch layer that becomes a torch-exact helper (layer_bases.py)
            elif isinstance(base.value, cst.Name) and (base.value.value in self.module_classes
                                                       or base.value.value in rw.project_module_classes):
                is_module = True  # a module class of this file, or imported from another project file
        info = _ClassInfo(is_module)
        if is_module:
            self.module_classes.add(node.name.value)
            self._scan_init(rw, node, info)
            info.tie = _plan_tie(rw, node, self.module)
        self.classes.append(info)

    def _scan_init(self, rw, node: cst.ClassDef, info: _ClassInfo) -> None:
        """Submodule attributes and persistent=False buffers, known before any method is visited."""
        for stmt in node.body.body:
            if not isinstance(stmt, cst.FunctionDef):
                continue
            for line in _simple_lines(stmt):
                for small in line.body:
                    if isinstance(small, cst.Assign) and isinstance(small.value, cst.Call):
                        qual = rw.qualified_name(small.value.func) or ""
                        hidden = _hidden_buffer_assignment(rw, small)
                        if hidden:
                            info.hidden_buffers.add(hidden)
                        func = small.value.func
                        own_class = isinstance(func, cst.Name) and func.value in self.module_classes
                        layer = (qual.startswith("torch.nn.") and not qual.startswith("torch.nn.functional")) or own_class
                        kind = qual.rsplit(".", 1)[-1]
                        for target in small.targets:
                            attr = _self_attr(target.target)
                            if attr and layer and kind not in TUPLE_RETURNING_LAYERS:
                                info.submodules.add(attr)
                            if attr and kind == "ModuleDict":
                                info.dicts.add(attr)
                            if attr and kind == "Sequential":
                                info.sequentials.add(attr)
                    if isinstance(small, cst.Expr) and _is_register_buffer(small.value):
                        name_node, _, persistent = _buffer_args(small.value)
                        name = _string_value(name_node) if name_node is not None else None
                        if name and is_name(persistent, "False"):
                            info.hidden_buffers.add(name)

    def leave_ClassDef(self, rw, original: cst.ClassDef, updated: cst.ClassDef):
        info = self.classes.pop()
        if not info.is_module:
            return updated
        bases = [self._mlx_base(rw, b) for b in updated.bases]
        updated = updated.with_changes(bases=bases)
        body = []
        for stmt in updated.body.body:
            if isinstance(stmt, cst.FunctionDef) and stmt.name.value == "forward":
                stmt = stmt.with_changes(name=cst.Name("__call__"))
            body.append(stmt)
        updated = updated.with_changes(body=updated.body.with_changes(body=body))
        if info.tie is not None:
            updated = updated.visit(_Untie(info.tie))
        if info.hidden_buffers or info.dicts or info.sequentials:
            updated = updated.visit(_SelfAttrAccess(info))
        return updated

    @staticmethod
    def _mlx_base(rw, base: cst.Arg) -> cst.Arg:
        """A base the table did not visit (a class scope with no other torch use) is still torch's."""
        if rw.qualified_name(base.value) in MODULE_BASES:
            rw.need_import("nn")
            rw.count_conversion()
            return base.with_changes(value=cst.Attribute(cst.Name(sentinel("nn")), cst.Name("Module")))
        return base

    # ----- forward's tensors -----------------------------------------------------------------
    def visit_FunctionDef(self, rw, node: cst.FunctionDef) -> None:
        info = self._in_module_class()
        if info is None or node.name.value != "forward" or len(self.classes) != _depth(rw):
            return
        marked = [p.name.value for p in node.params.params[1:] if p.default is None and p.annotation is None]
        for name in marked:
            rw.tensors.mark(name, True)
        if marked:
            rw.flag(node.name, "nn-module", "needs-review",
                    f"forward's arguments without a default ({', '.join(marked)}) are taken to be tensors", "info")

    def visit_SimpleStatementLine(self, rw, node: cst.SimpleStatementLine) -> None:
        """The table skips statements with no torch in them (`h = self.fc(x)`): mark those here."""
        if rw.is_cold(node):
            for small in node.body:
                if isinstance(small, cst.Assign):
                    self._mark_assignment(rw, small)
                    self._check_tying(rw, small)

    def _check_cold_block(self, rw, node) -> None:
        """The pass skips compound statements with no torch in them: a tie nested there is still flagged."""
        if rw.is_cold(node) and self._in_module_class() is not None:
            for line in _lines_under([node]):
                for small in line.body:
                    if isinstance(small, cst.Assign):
                        self._check_tying(rw, small)

    visit_If = visit_For = visit_While = visit_With = visit_Try = _check_cold_block

    def _mark_assignment(self, rw, assign: cst.Assign) -> None:
        info = self._in_module_class()
        if info is None or not isinstance(assign.value, cst.Call):
            return
        call = assign.value
        if _self_attr(call.func) in info.submodules:
            for target in assign.targets:
                if isinstance(target.target, cst.Name):
                    rw.tensors.mark(target.target.value, True)
        elif isinstance(call.func, cst.Attribute) and call.func.attr.value in _SPLITTERS:
            source = call.func.value
            if rw.tensors.is_tensor(source) or (isinstance(source, cst.Call) and _self_attr(source.func) in info.submodules):
                for target in assign.targets:
                    if isinstance(target.target, (cst.Tuple, cst.List)):
                        for el in target.target.elements:
                            if isinstance(el.value, cst.Name):
                                rw.tensors.mark(el.value.value, True)

    # ----- calls -----------------------------------------------------------------------------
    def leave_Call(self, rw, original: cst.Call, updated: cst.Call):
        if self._in_module_class() is None or not isinstance(updated, cst.Call) or not isinstance(updated.func, cst.Attribute):
            return updated
        method = updated.func.attr.value
        receiver = updated.func.value
        if isinstance(original.func, cst.Attribute) and _is_self(original.func.value):
            _drop_receiver_flags(rw, original)  # self.norm(x): a submodule named like a tensor method
        if method == "forward":
            if isinstance(receiver, cst.Call) and is_name(receiver.func, "super"):
                return updated.with_changes(func=updated.func.with_changes(attr=cst.Name("__call__")))
            return updated.with_changes(func=receiver)
        if method == "register_buffer" and _is_register_buffer(original) and not _convertible_buffer(original):
            rw.flag(original, "torch.nn.Module.register_buffer", "no-equivalent",
                    "register_buffer needs a string-literal name and a literal persistent= to become an attribute")
        if method == "apply" and isinstance(receiver, cst.Name) and receiver.value == "self":
            rw.flag(original, "torch.nn.Module.apply", "semantics-differ",
                    "torch's Module.apply calls fn on every submodule; MLX's apply maps fn over the parameters: "
                    "use self.apply_to_modules(lambda name, m: fn(m)) with an MLX init function")
        return updated

    def leave_Assign(self, rw, original: cst.Assign, updated: cst.Assign):
        self._mark_assignment(rw, original)
        self._check_tying(rw, original)
        return self._buffer_assignment(rw, original, updated)

    def _buffer_assignment(self, rw, original: cst.Assign, updated: cst.Assign):
        """`self.name = nn.Buffer(t)` -> `self.name = t` (then frozen, or renamed `_name` if not persistent)."""
        if self._in_module_class() is None or _buffer_assignment_target(rw, original) is None:
            return updated
        if not isinstance(updated.value, cst.Call):
            return updated
        data, _ = _buffer_class_args(updated.value)
        rw.drop_flags(original.value, kind="unknown-api")
        rw.count_conversion()
        result = updated.with_changes(value=data)
        name = _buffer_assignment_target(rw, original)
        if name not in self._in_module_class().hidden_buffers and not (isinstance(data, cst.Name) and data.value == "None"):
            self.freezes[id(result)] = name
        return result

    def _check_tying(self, rw, assign: cst.Assign) -> None:
        """`self.a.weight = self.b.weight` ties two parameters in torch; MLX arrays are values."""
        value = assign.value
        if not (isinstance(value, cst.Attribute) and value.attr.value in ("weight", "bias") and _is_self_chain(value)):
            return
        info = self._in_module_class()
        if info is not None and info.tie is not None and assign.deep_equals(info.tie.assignment):
            rw.flag(assign, "nn-module-weight-tying", "needs-review",
                    f"weight tying: one MLX parameter, self.{info.tie.embedding}.weight; "
                    f"self.{info.tie.linear}(x) becomes self.{info.tie.embedding}.as_linear(x)", "info")
            return
        for target in assign.targets:
            if isinstance(target.target, cst.Attribute) and _is_self_chain(target.target):
                rw.flag(assign, "nn-module-weight-tying", "semantics-differ",
                        "MLX parameters are arrays, not shared objects: the two copies load and run the same "
                        "but each gets its own gradient, so training unties them; in MLX reuse one layer "
                        "(e.g. Embedding.as_linear(x)) instead of assigning the weight")

    # ----- buffers -----------------------------------------------------------------------------
    def leave_SimpleStatementLine(self, rw, original: cst.SimpleStatementLine, updated):
        if self._in_module_class() is None or len(updated.body) != 1:
            return updated
        if id(updated.body[0]) in self.freezes:  # `self.name = nn.Buffer(t)`, now `self.name = t`
            name = self.freezes.pop(id(updated.body[0]))
            return cst.FlattenSentinel([updated, cst.parse_statement(f'self.freeze(keys=["{name}"], recurse=False)')])
        if not isinstance(updated.body[0], cst.Expr):
            return updated
        call = updated.body[0].value
        if not _is_register_buffer(call):
            return updated
        if not _convertible_buffer(call):
            return updated
        name_node, tensor, persistent = _buffer_args(call)
        name = _string_value(name_node)
        hidden = is_name(persistent, "False")
        attr = "_" + name if hidden else name
        assign = cst.parse_statement(f"self.{attr} = 0").with_changes(leading_lines=updated.leading_lines)
        assign = assign.with_changes(body=[assign.body[0].with_changes(value=tensor)],
                                     trailing_whitespace=updated.trailing_whitespace)
        if hidden or (isinstance(tensor, cst.Name) and tensor.value == "None"):
            return assign
        freeze = cst.parse_statement(f'self.freeze(keys=["{name}"], recurse=False)')
        return cst.FlattenSentinel([assign, freeze])


def _defines_forward(node: cst.ClassDef) -> bool:
    """A Sequential-derived class with no forward stays MLX's nn.Sequential (layer_values.py), not a module class here."""
    body = node.body.body if isinstance(node.body, cst.IndentedBlock) else ()
    return any(isinstance(s, cst.FunctionDef) and s.name.value in ("forward", "__call__") for s in body)


def _is_self(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Name) and node.value == "self"


def _is_self_chain(node: cst.BaseExpression) -> bool:
    while isinstance(node, cst.Attribute):
        node = node.value
    return _is_self(node)


def _drop_receiver_flags(rw, call: cst.Call) -> None:
    """`self` is the module, never a tensor: the table's "unknown receiver" doubt does not apply."""
    rw.drop_flags(call, kind="unknown-receiver")


def _is_register_buffer(node: cst.BaseExpression) -> bool:
    return (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
            and node.func.attr.value == "register_buffer" and isinstance(node.func.value, cst.Name)
            and node.func.value.value == "self")


def _buffer_assignment_target(rw, assign: cst.Assign) -> Optional[str]:
    """`name` of `self.name = nn.Buffer(t[, persistent=<literal>])`, the statement this transform translates."""
    call = assign.value
    if len(assign.targets) != 1 or not isinstance(call, cst.Call) or rw.qualified_name(call.func) not in _BUFFER_CLASSES:
        return None
    data, persistent = _buffer_class_args(call)
    if data is None or not (persistent is None or is_name(persistent, "True", "False")):
        return None
    return _self_attr(assign.targets[0].target)


def _hidden_buffer_assignment(rw, assign: cst.Assign) -> Optional[str]:
    """`name` of `self.name = nn.Buffer(t, persistent=False)`."""
    name = _buffer_assignment_target(rw, assign)
    if name is None:
        return None
    _, persistent = _buffer_class_args(assign.value)
    return name if is_name(persistent, "False") else None


def _convertible_buffer(call: cst.Call) -> bool:
    name, tensor, persistent = _buffer_args(call)
    literal = persistent is None or is_name(persistent, "True", "False")
    return name is not None and _string_value(name) is not None and tensor is not None and literal


def _simple_lines(func: cst.FunctionDef):
    """The simple statement lines of a function, nested blocks included (not nested defs)."""
    return _lines_under(func.body.body)


def _lines_under(statements):
    """The simple statement lines among `statements` and the blocks nested in them (not in defs)."""
    stack = list(statements)
    while stack:
        stmt = stack.pop(0)
        if isinstance(stmt, cst.SimpleStatementLine):
            yield stmt
        elif isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            continue
        else:
            for attr in ("body", "orelse", "handlers", "finalbody"):
                block = getattr(stmt, attr, None)
                if block is None:
                    continue
                for part in block if isinstance(block, (list, tuple)) else [block]:
                    inner = getattr(part, "body", None)
                    if isinstance(inner, cst.BaseSuite):
                        inner = inner.body
                    if isinstance(inner, (list, tuple)):
                        stack.extend(inner)


def _depth(rw) -> int:
    """How many classes enclose the function being visited (its own scope is already pushed)."""
    return sum(1 for scope in rw.scopes if scope.kind == "class")


# ----- weight tying ------------------------------------------------------------------------------
def _call_args(call: cst.Call, names: tuple) -> Optional[dict]:
    """Parameter name -> the argument, for calls using only `names`; None otherwise."""
    bound = try_bind(call.args, signature_of(names, optional=True))
    return bound.values if bound is not None else None


def _same(a: cst.BaseExpression, b: Optional[cst.BaseExpression]) -> bool:
    """The same expression, as written (`config.vocab_size` twice)."""
    return b is not None and a.deep_equals(b)


def _self_path(node: cst.BaseExpression) -> Optional[str]:
    """`self.a.b` -> "a.b"; None for anything but a chain of names on self."""
    parts = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    return ".".join(reversed(parts)) if parts and _is_self(node) else None


def _layers_built(rw, init: cst.FunctionDef) -> dict:
    """Path -> qualified layer call, for `self.x = nn.Layer(...)` and the entries of
    `self.x = nn.ModuleDict(dict(k=nn.Layer(...)))` / `nn.ModuleDict({"k": nn.Layer(...)})`."""
    layers: dict = {}
    for stmt in init.body.body:
        if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign)):
            continue
        assign = stmt.body[0]
        attr = _self_attr(assign.targets[0].target) if len(assign.targets) == 1 else None
        if attr is None or not isinstance(assign.value, cst.Call):
            continue
        qual = rw.qualified_name(assign.value.func) or ""
        layers[attr] = (qual, assign.value)
        if qual.endswith(".ModuleDict") and len(assign.value.args) == 1:
            inner = assign.value.args[0].value
            entries = []
            if isinstance(inner, cst.Call) and is_name(inner.func, "dict"):
                entries = [(a.keyword.value, a.value) for a in inner.args if a.keyword is not None]
            elif isinstance(inner, cst.Dict):
                entries = [(_string_value(e.key), e.value) for e in inner.elements if isinstance(e, cst.DictElement)]
            for key, value in entries:
                if key and isinstance(value, cst.Call):
                    layers[f"{attr}.{key}"] = (rw.qualified_name(value.func) or "", value)
    return layers


class _SelfUses(cst.CSTVisitor):
    """Counts, in a class, `self.<name>` uses, those that are calls, and assignments to `self.<root>`."""

    def __init__(self, name: str, roots: tuple):
        super().__init__()
        self.name, self.roots = name, roots
        self.uses = self.calls = 0
        self.assigned = {root: 0 for root in roots}

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if _self_attr(node) == self.name:
            self.uses += 1

    def visit_Call(self, node: cst.Call) -> None:
        if _self_attr(node.func) == self.name:
            self.calls += 1

    def _count_target(self, target: cst.BaseExpression) -> None:
        attr = _self_attr(target)
        if attr in self.assigned:
            self.assigned[attr] += 1

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self._count_target(t.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._count_target(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._count_target(node.target)


def _mentions(module: cst.Module, name: str) -> int:
    """How often the file names `name`: identifiers (variables, attributes, keywords, definitions) and
    words of string literals (`getattr(self, "lm_head")`, `_tied_weights_keys = ["lm_head.weight"]` reach
    the attribute by name); comments do not count."""
    word = re.compile(rf"\b{re.escape(name)}\b")
    names = len(find(module, cst.Name, lambda n: n.value == name))
    strings = find(module, (cst.SimpleString, cst.FormattedStringText))
    return names + sum(len(word.findall(s.value)) for s in strings)


def _plan_tie(rw, node: cst.ClassDef, module: cst.Module) -> Optional[_Tie]:
    """The exact translation of an Embedding/bias-free Linear weight tie in `__init__`, if any."""
    init = next((s for s in node.body.body if isinstance(s, cst.FunctionDef) and s.name.value == "__init__"), None)
    if init is None:
        return None
    layers = _layers_built(rw, init)
    for stmt in init.body.body:
        if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign)):
            continue
        assign = stmt.body[0]
        if len(assign.targets) != 1:
            continue
        target, value = _self_path(assign.targets[0].target), _self_path(assign.value)
        if not (target and value and target.endswith(".weight") and value.endswith(".weight")):
            continue
        paths = (target[: -len(".weight")], value[: -len(".weight")])
        kinds = {p: layers.get(p, ("", None)) for p in paths}
        embedding = next((p for p in paths if kinds[p][0] == "torch.nn.Embedding"), None)
        linear = next((p for p in paths if kinds[p][0] == "torch.nn.Linear"), None)
        if embedding is None or linear is None or "." in linear:
            return None
        emb_args = _call_args(kinds[embedding][1], ("num_embeddings", "embedding_dim"))
        lin_args = _call_args(kinds[linear][1], ("in_features", "out_features", "bias"))
        if (emb_args is None or lin_args is None or not is_name(lin_args.get("bias"), "False") or len(emb_args) != 2
                or not _same(emb_args["num_embeddings"], lin_args.get("out_features"))
                or not _same(emb_args["embedding_dim"], lin_args.get("in_features"))):
            return None
        uses = _SelfUses(linear, (linear, embedding.split(".")[0]))
        node.visit(uses)
        # every `self.<linear>` is its construction, the tie or a call, and nothing else in the file names it
        only_calls = uses.uses == uses.calls + 2 and _mentions(module, linear) == uses.uses
        if not only_calls or any(n != 1 for n in uses.assigned.values()):
            return None
        return _Tie(assign, linear, embedding)
    return None


class _Untie(cst.CSTTransformer):
    """Applies a `_Tie`: drops the Linear and the assignment, calls the embedding's `as_linear`."""

    def __init__(self, tie: _Tie):
        super().__init__()
        self.tie = tie

    def leave_SimpleStatementLine(self, original, updated):
        if len(updated.body) == 1 and isinstance(updated.body[0], cst.Assign):
            assign = updated.body[0]
            if assign.deep_equals(self.tie.assignment) or (
                    len(assign.targets) == 1 and _self_attr(assign.targets[0].target) == self.tie.linear):
                return cst.RemoveFromParent()
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        if _self_attr(updated.func) == self.tie.linear:
            return updated.with_changes(func=cst.parse_expression(f"self.{self.tie.embedding}.as_linear"))
        return updated
