"""In-place tensor updates -> functional assignments (id `inplace-op`).

What it does
    `x.add_(y)` as a statement becomes `x = x + y`-style code: the out-of-place form comes
    from the rule table (`add_` -> the rule for `add`); `x.zero_()`, `x.fill_(v)`,
    `x.copy_(y)` have their own forms. `x[x < 0] = 0` becomes `x = mx.where(x < 0, 0, x)`.
    (`inplace=True` arguments are decided by nn-inplace-activation, with a flow analysis.)
Why
    MLX arrays are immutable (item assignment aside): an update is a new array bound to the
    same name.
A parameter of the function (timm's `_trunc_normal_(tensor, ...)`: `tensor.uniform_(...)`, `tensor.erfinv_()`,
`tensor.mul_(s).add_(m)`) is updated as a whole array, `tensor[...] = <value>.astype(tensor.dtype)`: MLX item
assignment changes the caller's array object, which every reference to it sees, as torch's update of the caller's
tensor (`_whole_update` argues it; not where a view of the parameter is kept, the shape changes, or the parameter is
rebound; a call of such a function of this file with a view (`f(w[0])`) is flagged). The value of an update of an
unshared local used as an operand or returned is `(x := <new value>)` (`_fresh_local_value`). The value of an update
of such a parameter (timm's activations: `return x.sigmoid_() if self.inplace else x.sigmoid()`, `x.mul_(x.sigmoid())`,
`x.add_(3.).clamp_(0., 6.).div_(6.)`; fastvit's `x.mul_(self.gamma)`) is `update_whole(x, <new value>)`, a helper
assigning the whole array and returning it (`_whole_parameter_value`); calls in this file passing a view to such a
function, or to a layer class of the file whose forward updates its input (`self.gate(x[:, :c])`), are flagged, and
an info note states the assumption about callers in other files (no view whose base they read afterwards).
Left in place (flagged) when
    another reference could have seen the mutation: the receiver is an attribute or
    subscript of something else, a name not assigned in this function, a loop variable, a name assigned from
    something that may share storage (a view, `.detach()`, another name, a model output), or a name passed
    to a call / stored anywhere in the function; also when the in-place call's value is kept (`y = x.add_(1)`).
`x[idx] += v` and `x[idx] = v` with non-mask indices are kept: MLX supports item assignment
(repeated indices: the last write wins in both).

Also translated (real models):
    - `noise = noise.bernoulli_(p)`: the statement form, its value bound back to its own name;
    - the value of a fill of a new tensor: `torch.empty(1, n, d).normal_(std=0.02)`,
      `x.new_empty(shape).bernoulli_(p)` (the creation call, free of calls, is written twice);
    - `x[a:b].zero_()` / `x[i].fill_(v)` -> `x[a:b] = 0` / `x[i] = v` (slices and int literals only:
      a tensor index makes torch update a copy), where the flow analysis of `nn-inplace-activation`
      shows no other reference to x's tensor, or x is a layer's weight/bias the file never assigns;
    - `module.weight.data.mul_(s)` -> `module.weight[:] = mx.multiply(module.weight, s)` on a layer's
      weight/bias the file never assigns (nn-init translates its own fills). MLX item assignment
      changes the array object, which every reference sees, as torch's update does.
"""
from __future__ import annotations

import ast
import functools
import re
from typing import Optional

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from torch2mlx.binding import argument_code, code_of, signature_of
from torch2mlx.table.model import ParamSpec, Rule
from torch2mlx.torch_facts import BOOL_RESULT_OPS, FRESH_METHODS, VALUE_ATTRIBUTES, VIEW_OPS
from torch2mlx.transforms import Transform
from torch2mlx.transforms.codegen import add_helpers, mlx_expr
from torch2mlx.transforms.init.methods import METHODS as FILL_METHODS
from torch2mlx.transforms.init.methods import RANDOM_FILLS
from torch2mlx.transforms.inplace.activation import RULE_ID as ACTIVATION_ID
from torch2mlx.transforms.inplace.activation import _Analysis
from torch2mlx.transforms.inplace.flow import INPLACE_METHODS, READING_BUILTINS

RULE_ID = "inplace-op"
SPECIAL = {"zero_", "fill_", "copy_"}
# INPLACE_METHODS: every in-place Tensor method (`op_`): its out-of-place form `op` comes from the rule
# table; an `op_` with a rule of its own (requires_grad_) is translated by that rule before this runs
# creation calls whose value is a new tensor and whose arguments may be evaluated twice (`torch.empty(n).normal_()`)
_CREATIONS = frozenset({"torch.empty", "torch.zeros", "torch.ones"})
# torch functions whose value is always a new tensor no other reference holds (not `as_tensor` / `from_numpy` /
# `atleast_1d`, which may return their input or share its memory)
_NEW_TENSORS = _CREATIONS | frozenset(f"torch.{n}" for n in (
    "full", "eye", "arange", "linspace", "logspace", "tensor", "randn", "rand", "randint", "randperm", "normal",
    "zeros_like", "ones_like", "empty_like", "full_like", "randn_like", "rand_like", "randint_like"))
_NEW_METHODS = frozenset({"new_empty", "new_zeros", "new_ones"})  # `x.new_empty(shape)` (timm's drop_path)
# method -> (torch's signature after the tensor, MLX expression over the new tensor {t}): nn-init's, and bernoulli_
_VALUE_FILLS = {**FILL_METHODS, "bernoulli_": (signature_of(("p",), defaults={"p": "0.5"}),
                                               "mx.random.bernoulli({p}, {t}.shape).astype({t}.dtype)")}

# in-place methods that change the tensor's shape or storage rather than its values (not written as `x[...] = v`)
_SHAPE_METHODS = frozenset({"resize_", "resize_as_", "as_strided_", "set_", "detach_", "share_memory_", "requires_grad_"})

_MODULE_ROOTS = frozenset({"torch", "F", "nn", "np", "numpy", "mx"})  # `torch.reshape(x, ...)`: a function, not a method of `torch`
# uses that read a value without keeping a reference to the tensor: its value attributes, and the methods
# giving a Python value (a bound method, called or not, reads the shape or the data only)
_SCALAR_ATTRS = VALUE_ATTRIBUTES | {"size", "item", "tolist", "numel", "dim"}


# torch functions whose value is a new tensor whatever their input (elementwise activations and arithmetic: never
# their input, never a view of it), unless called in place (`inplace=True`, `out=`): checked against torch
_NEW_RESULTS = frozenset(f"torch.nn.functional.{n}" for n in (
    "relu", "relu6", "hardtanh", "gelu", "silu", "mish", "elu", "selu", "celu", "leaky_relu", "hardsigmoid",
    "hardswish", "softplus", "sigmoid", "tanh", "softmax", "log_softmax")) | frozenset(f"torch.{n}" for n in (
    "relu", "sigmoid", "tanh", "exp", "log", "sqrt", "abs", "neg", "add", "sub", "mul", "div", "matmul"))


def _new_result(rw, call: cst.Call) -> bool:
    """`F.relu6(x + 3.)`: a call of a `_NEW_RESULTS` function, not in place: its value no other reference holds."""
    return (rw.qualified_name(call.func) in _NEW_RESULTS
            and not any(a.star or (a.keyword is not None and a.keyword.value in ("inplace", "out")) for a in call.args)
            and not any(isinstance(a.value, cst.Name) and a.value.value == "True" for a in call.args))


def _is_fresh(value: ast.expr) -> bool:
    if isinstance(value, (ast.BinOp, ast.UnaryOp, ast.Compare, ast.Constant, ast.ListComp)):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        if isinstance(func, ast.Attribute):
            if _module_root(func) is not None:
                return func.attr not in VIEW_OPS
            # a view of a value nothing else refers to is itself unshared
            return func.attr in FRESH_METHODS or _is_fresh(func.value)
    if isinstance(value, ast.Subscript):
        return _is_fresh(value.value)
    return False


class _ScopeFacts:
    """What one function (or the module) does with its names, for the aliasing check."""

    def __init__(self, node: ast.AST, updating: frozenset = frozenset()):
        # this file's functions that update a parameter as a whole array, and names it imports from torch: calls of
        # either keep no view of their argument
        self.updating = updating
        self.params: set = set()
        self.declared: set = set()  # global / nonlocal
        self.stores: dict = {}  # name -> list of assigned values (None: not a plain assignment)
        self.unsafe_uses: dict = {}  # name -> why the first alias-capable use is one
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            self.params = {p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if p is not None}
            body = node.body
        else:
            body = node.body
        for stmt in body:
            self._collect_stores(stmt)
        parents: dict = {}
        for parent in ast.walk(node):
            for child in ast.iter_child_nodes(parent):
                parents[child] = parent
        self.unsafe_lines: dict = {}  # name -> [(line, why)] of every alias-capable use
        self.kept_views: dict = {}  # name -> the first view of its tensor that is kept (bound, passed on, returned)
        self.aliases: dict = {}  # parameter -> why its object may reach another holder in the function (`_alias_problem`)
        self.loops: list = []  # (first line, last line) of each loop: a use after an update in the text may run before it
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                why = self._use_problem(n, parents)
                if why is not None:
                    self.unsafe_uses.setdefault(n.id, why)
                    self.unsafe_lines.setdefault(n.id, []).append((n.lineno, why))
                if n.id in self.params:
                    view = _kept_view(n, parents)
                    if view is not None:
                        self.kept_views.setdefault(n.id, view)
                    alias = self._alias_problem(n, parents)
                    if alias is not None:
                        self.aliases.setdefault(n.id, alias)
            elif isinstance(n, (ast.For, ast.AsyncFor, ast.While)):
                self.loops.append((n.lineno, n.end_lineno))

    def _collect_stores(self, node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            if not isinstance(node, ast.Lambda):
                self.stores.setdefault(node.name, []).append(None)
            return
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            self.declared.update(node.names)
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if _rebinds_inplace(node.targets[0].id, node.value):
                self.stores.setdefault(node.targets[0].id, []).append(ast.BinOp())  # `x = x.op_(...)` keeps the object
            else:
                self.stores.setdefault(node.targets[0].id, []).append(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            self.stores.setdefault(node.target.id, []).append(node.value)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            self.stores.setdefault(node.target.id, []).append(ast.BinOp())  # keeps the object
        else:
            for n in ast.iter_child_nodes(node) if not isinstance(node, ast.Name) else ():
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                    self.stores.setdefault(n.id, []).append(None)
                else:
                    self._collect_stores(n)
            return
        for value in [node.value] if getattr(node, "value", None) is not None else []:
            self._collect_stores(value)

    def _use_problem(self, node: ast.expr, parents: dict) -> Optional[str]:
        """None when this use of a tensor value cannot keep a reference to its storage."""
        parent = parents.get(node)
        if isinstance(parent, (ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.FormattedValue, ast.Return)):
            return None
        if isinstance(parent, ast.Attribute) and parent.value is node:
            call = parents.get(parent)
            if parent.attr in INPLACE_METHODS and isinstance(call, ast.Call) and call.func is parent:
                # the value of `x.op_()` is x's tensor: `y = x.sigmoid_()` keeps a reference to it (a statement, or
                # `x = x.op_()`, does not)
                up = parents.get(call)
                if isinstance(up, ast.Expr) or (isinstance(up, ast.Assign) and len(up.targets) == 1 and isinstance(node, ast.Name)
                                                and isinstance(up.targets[0], ast.Name) and up.targets[0].id == node.id):
                    return None
                return self._use_problem(call, parents)
            if parent.attr in _SCALAR_ATTRS or parent.attr in INPLACE_METHODS:
                return None
            if isinstance(call, ast.Call) and call.func is parent:
                if parent.attr in FRESH_METHODS:
                    return None
                return self._use_problem(call, parents) if parent.attr in VIEW_OPS else None
            return self._use_problem(parent, parents)
        if isinstance(parent, ast.Subscript) and parent.value is node:
            if isinstance(parent.ctx, ast.Store):
                return None
            return self._use_problem(parent, parents)
        if isinstance(parent, ast.Call) and node in parent.args:
            func = parent.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if isinstance(func, ast.Name) and name in READING_BUILTINS:
                return None
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ("torch", "F") and name not in VIEW_OPS:
                return None
            if name.endswith("_") and _module_root(func) in ("torch", "F") and parent.args[0] is node:
                return None  # `torch.nn.functional.relu_(x)`: updates x in place (as `x.relu_()`), keeps no reference
            return f"it is passed to `{ast.unparse(func)}(...)`, which may keep a reference"
        if isinstance(parent, ast.Subscript) and parent.slice is node:
            return None
        if isinstance(parent, (ast.Tuple, ast.List, ast.Starred)) and isinstance(parent.ctx, ast.Load):
            return self._use_problem(parent, parents)
        if isinstance(parent, (ast.Assign, ast.AnnAssign, ast.NamedExpr)):
            return "it is assigned to another name, which would have seen the mutation"
        return "it is used where a reference to it may be kept"

    def _alias_problem(self, node: ast.Name, parents: dict) -> Optional[str]:
        """Why this use of a parameter may hand its object to another holder in the function (another name, a
        container, an attribute, a call that may keep it), whose views of it (`y = x; v = y[0]`) the view check would
        not see; None when the object only reaches operators, torch functions, this file's updating functions, the
        function's return value or a statement's end (through `a if c else b`, `a or b` and in-place methods,
        whose value is their receiver)."""
        current: ast.expr = node
        while True:
            parent = parents.get(current)
            if isinstance(parent, ast.IfExp) and current is not parent.test or isinstance(parent, ast.BoolOp):
                current = parent
                continue
            if isinstance(parent, ast.Attribute) and parent.value is current and parent.attr in INPLACE_METHODS:
                call = parents.get(parent)
                if isinstance(call, ast.Call) and call.func is parent:
                    current = call  # `x.sigmoid_()`: its value is x's object
                    continue
            if isinstance(parent, (ast.Tuple, ast.List)) and isinstance(parents.get(parent), ast.Return):
                return None  # `return x.mul_(2), y`: the caller gets the object
            break
        if isinstance(parent, (ast.Assign, ast.AnnAssign, ast.NamedExpr, ast.AugAssign)) and parent.value is current:
            return "is assigned to another name"
        if isinstance(parent, (ast.Tuple, ast.List, ast.Set, ast.Dict, ast.Starred, ast.keyword, ast.Yield, ast.YieldFrom,
                               ast.Lambda)):
            if isinstance(parent, ast.keyword):
                parent = parents.get(parent)
            else:
                return "is stored in a container"
        if isinstance(parent, ast.Call) and current is not parent.func:
            func = parent.func
            if isinstance(func, ast.Name) and (func.id in READING_BUILTINS or func.id in self.updating):
                return None
            if _module_root(func) in ("torch", "F") and isinstance(func, ast.Attribute) and func.attr not in VIEW_OPS:
                return None
            return f"is passed to `{ast.unparse(func)[:40]}(...)`, which may keep it"
        return None

    def whole_parameter(self, name: str) -> Optional[str]:
        """None when `name` is a parameter that holds the caller's tensor object all through the function (never
        rebound, not global/nonlocal) and no view of it is kept in the function (torch's view would see an update of
        the whole tensor, an MLX slice is a copy): an update of its whole array then reaches every reference to that
        object, as torch's in-place update does. Else why not."""
        if name not in self.params:
            return f"`{name}` is not a parameter"
        if name in self.declared or name in self.stores:
            return f"`{name}` is a parameter rebound in the function: the caller would see the mutation"
        alias = self.aliases.get(name)
        if alias is not None:
            return f"`{name}` is a parameter that {alias}: a view of it there would not see the update in MLX"
        view = self.kept_views.get(name)
        if view is not None:
            return (f"`{name}` is a parameter whose view `{view[:40]}` is kept: torch's view would see the update, "
                    "an MLX slice or reshape is a copy")
        return None

    def view_source(self, name: str) -> Optional[str]:
        """The assignment that may make `name` a view of another tensor (or of a numpy array), if any."""
        for value in self.stores.get(name) or ():
            if isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name) and value.value.id != name:
                return ast.unparse(value)
            if isinstance(value, ast.Call):
                func = value.func
                called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
                # `x = x.unsqueeze(0)`: a view of the old x, which nothing else refers to
                of_itself = any(_root_name(n) == name for n in [getattr(func, "value", None), *(value.args[:1])])
                if called in VIEW_OPS and not of_itself:
                    return ast.unparse(value)
        return None

    def problem(self, name: str, line: Optional[int] = None) -> Optional[str]:
        """Why updating `name`'s tensor in place (at `line` of the scope's code, if known) could be seen by another
        reference; None when it cannot. A use that may keep a reference (`y = x`) matters only where it can run
        before the update: on an earlier line, or in a loop around both (torch's docstrings: `x.index_add_(...)`,
        then `out = x`)."""
        if name in self.params:
            return f"`{name}` is a parameter: the caller would see the mutation"
        if name in self.declared:
            return f"`{name}` is global/nonlocal: other code would see the mutation"
        values = self.stores.get(name)
        if not values:
            return f"`{name}` is not assigned in this scope"
        for value in values:
            if value is None or not _is_fresh(value):
                source = "" if value is None else f" (`{ast.unparse(value)[:40]}`)"
                return f"`{name}` may share storage with another tensor{source}"
        uses = self.unsafe_lines.get(name, [])
        if line is not None:
            uses = [(at, why) for at, why in uses
                    if at <= line or any(first <= at <= last and first <= line <= last for first, last in self.loops)]
        return f"`{name}`: {uses[0][1]}" if uses else None


class InplaceOps(Transform):
    id = RULE_ID
    description = "in-place tensor updates (x.add_(y), x[mask] = v) -> assignments"
    hot_attributes = INPLACE_METHODS
    order = 50

    def __init__(self) -> None:
        self.scopes: list = []  # libcst FunctionDef / ClassDef / Module
        self.facts: dict = {}
        self.statement_calls: set = set()
        self.rebind_calls: set = set()  # `x = x.op_(...)`: the value is the receiver, bound to its own name
        self.nested = 0  # depth of lambdas and comprehensions around the node
        self.chain_calls: set = set()  # `x.mul_(s)` in a statement `x.mul_(s).add_(m)`: its value is x, updated again
        self.converted_values: set = set()  # in-place calls whose used value was translated (`torch.empty(n).normal_()`)
        self.item_updates = False  # the file updates an item in place (`x[a:b].zero_()`): the flow analysis decides
        self.assigned_attributes: frozenset = frozenset()  # attribute names assigned anywhere in the file
        self.analysis: Optional[_Analysis] = None
        self.updating: dict = {}  # module-level function -> (its parameter names, those it updates in place)
        self.torch_imports: frozenset = frozenset()  # names the file imports from torch (`from torch.nn.init import ...`)
        self.updating_layers: tuple = ({}, {})  # (`_updating_layers`: classes whose forward updates its input, holders)
        self.positions: dict = {}  # id(scope) -> node -> its position in the scope's code (only where asked)
        self.whole_values: dict = {}  # id(`x.op_(...)` translated as `update_whole(x, ...)`) -> x

    def applies_to(self, text: str) -> bool:
        return "_(" in text or "inplace" in text or _ITEM_WRITE.search(text) is not None

    def prepare(self, tree: ast.Module, module_scope) -> None:
        attributes = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                attributes.add(node.attr)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("zero_", "fill_")
                  and isinstance(_strip_data(node.func.value), ast.Subscript)):
                self.item_updates = True
            elif isinstance(node, ast.Call) and (
                    (isinstance(node.func, ast.Name) and node.func.id == "setattr")
                    or (isinstance(node.func, ast.Attribute) and node.func.attr in ("register_parameter", "register_buffer"))):
                # the attribute it sets: its literal name, else any
                index = 1 if isinstance(node.func, ast.Name) else 0
                name = node.args[index] if len(node.args) > index else None
                attributes.add(name.value if isinstance(name, ast.Constant) and isinstance(name.value, str) else "*")
        self.assigned_attributes = frozenset(attributes)
        self.updating = _updating_functions(tree)
        self.torch_imports = frozenset(a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) and n.level == 0
                                       and (n.module or "").split(".")[0] == "torch" for a in n.names)
        self.updating_layers = _updating_layers(tree, self.updating)
        if self.updating or self.updating_layers[0]:  # their calls (`fill_(w[0])`) name no torch API: the pass must see those statements
            self.needs_every_statement = True

    # ----- scopes -----------------------------------------------------------------------------
    def visit_Module(self, rw, node) -> None:
        self.scopes.append(node)
        if self.item_updates:
            activation = rw.transform(ACTIVATION_ID)  # its flow analysis of this file, if it made one
            found = activation.analysis if activation is not None else None
            self.analysis = found if found is not None else _Analysis(rw, node)

    def visit_FunctionDef(self, rw, node) -> None:
        self.scopes.append(node)

    visit_ClassDef = visit_FunctionDef

    def leave_FunctionDef(self, rw, original, updated):
        self.scopes.pop()
        return updated

    leave_ClassDef = leave_FunctionDef

    def _scope_facts(self) -> Optional[_ScopeFacts]:
        scope = self.scopes[-1] if self.scopes else None
        if scope is None or isinstance(scope, cst.ClassDef):
            return None
        if id(scope) not in self.facts:
            code = scope.code if isinstance(scope, cst.Module) else cst.Module([]).code_for_node(scope)
            tree = ast.parse(code)
            self.facts[id(scope)] = _ScopeFacts(tree if isinstance(scope, cst.Module) else tree.body[0],
                                                frozenset(self.updating) | self.torch_imports)
        return self.facts[id(scope)]

    def _problem(self, name: str, node: Optional[cst.CSTNode] = None) -> Optional[str]:
        facts = self._scope_facts()
        if facts is None:
            return "in-place update in a class body"
        why = facts.problem(name)
        if why is not None and node is not None and facts.problem(name, line=0) is None:  # no use runs before line 1
            why = facts.problem(name, self._line(node))  # only a use that may keep a reference: is it before the update?
        return why

    def _line(self, node: cst.CSTNode) -> Optional[int]:
        """The line of `node` in the code `_scope_facts` parsed (its scope's, alone), or None."""
        scope = self.scopes[-1]
        if id(scope) not in self.positions:
            module = scope if isinstance(scope, cst.Module) else cst.Module(body=[scope])
            self.positions[id(scope)] = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        position = self.positions[id(scope)].get(node)
        return None if position is None else position.start.line

    # ----- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _drop_findings(rw, node) -> None:
        rw.drop_flags(node)

    def _refuse(self, rw, node, why: str) -> None:
        # the closed world's "an mx.array has no .op_()": this flag says why
        rw.drop_flags(node, kind="unknown-api", predicate=lambda f: f.rule_id.startswith("Tensor."))
        # and the table's "not known to be a tensor" for this method: this flag already takes the receiver for a
        # tensor (one flag per cause; a second conversion, whose receiver is an mx.array, would add it otherwise)
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            rw.drop_flags(kind="unknown-receiver", rule_id=f"torch.Tensor.{node.func.attr.value}")
        rw.flag(node, RULE_ID, "semantics-differ", f"in-place update left as written: {why}; MLX arrays are immutable, assign the result by hand")

    @staticmethod
    def _apply(rw, rule, original, call, receiver):
        """The table's translation of `call`, or None when the table flags it."""
        before = len(rw.flags())
        result = rw.apply_rule(rule, original, call, receiver)
        flagged = any(f.severity != "info" for f in rw.flags(before))
        return None if flagged else result

    # ----- x.add_(y), x.zero_() as statements -----------------------------------------------
    def visit_Expr(self, rw, node) -> None:
        if isinstance(node.value, cst.Call):
            self.statement_calls.add(id(node.value))
            inner = _chain(node.value)
            if inner:
                self.chain_calls.update(id(c) for c in inner)

    def visit_Assign(self, rw, node) -> None:
        value = node.value
        if (len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name) and isinstance(value, cst.Call)
                and isinstance(value.func, cst.Attribute) and isinstance(value.func.value, cst.Name)
                and value.func.value.value == node.targets[0].target.value):
            self.rebind_calls.add(id(value))

    def leave_Call(self, rw, original, updated):
        func = original.func
        if isinstance(func, cst.Name) and func.value in self.updating:
            self._view_arguments(rw, original, func.value)
        layer = self._updating_layer(func)
        if layer is not None:
            self._view_arguments(rw, original, layer, self.updating_layers[0])
        if (isinstance(func, cst.Attribute) and _left_to_this(rw, func.attr.value)
                and id(original) not in self.statement_calls and id(original) not in self.rebind_calls
                and id(original) not in self.chain_calls and rw.qualified_name(func.value) is None):
            value = self._fresh_receiver(rw, original, updated)
            if value is None:
                value = self._new_tensor_fill(rw, original, updated) or self._new_tensor_update(rw, original, updated)
            if value is None:
                value = self._fresh_local_value(rw, original, updated)
            if value is None:
                value = self._whole_parameter_value(rw, original, updated)
            if value is not None:
                self.converted_values.add(id(original))
                return value
            why = self._whole_parameter(func.value.value, func.attr.value) if isinstance(func.value, cst.Name) else None
            if why is None or "is not a parameter" in why or "in a class body" in why:
                why = f"the value of `.{func.attr.value}()` is used"
            self._refuse(rw, original, why)
        return updated

    def _whole_parameter_value(self, rw, original, updated):
        """`return x.sigmoid_() if self.inplace else x.sigmoid()`, `return x.mul_(self.gamma)`, `x.add_(3.).clamp_(0.,
        6.).div_(6.)` (timm's activations.py, fastvit's LayerScale2d) where `x` is a parameter holding the caller's
        tensor all through the function (`_whole_parameter`, as for the statement form `_whole_update`): the update
        of the caller's whole array, whose value is that array: `update_whole(x, mx.sigmoid(x))`, a helper doing
        `x[...] = value.astype(x.dtype)` and returning `x`. Python evaluates operands in the same order under both
        frameworks, and every use reads the object's current contents in both (`x + x.mul_(2)` reads the update
        twice in torch, and in MLX the object's contents are replaced before `+` reads them), so the value and the
        update agree wherever the caller's object is the only holder of its storage. What this cannot see: a caller
        passing a torch view (`f(w[0])`, `layer(x[:, :c])`) whose base it reads afterwards: torch updates the base,
        MLX a copy. Calls of such functions in this file with a view are flagged (`_view_arguments`); other callers
        get an info note saying what the translation assumes. A chain (`x.add_(3.).clamp_(0., 6.)`) is each link
        in turn on the object the previous one returned."""
        receiver = original.func.value
        method = original.func.attr.value
        if self.nested or not isinstance(updated, cst.Call) or not isinstance(updated.func, cst.Attribute):
            return None
        if isinstance(receiver, cst.Name):
            name = receiver.value
        elif isinstance(receiver, cst.Call) and id(receiver) in self.whole_values:
            name = self.whole_values[id(receiver)]
        else:
            return None
        if _flagged_before(rw.statement) or self._whole_parameter(name, method) is not None:
            return None
        before = rw.flags()
        if method in _VALUE_FILLS:  # a fill reads only the shape and dtype, which no in-place update changes
            signature, template = _VALUE_FILLS[method]
            args = argument_code(updated.args, signature)
            value = None if args is None else mlx_expr(rw, template.format(t=name, **args))
        else:
            value = self._out_of_place(rw, original, updated, method, name)
        if value is None or any(f.severity != "info" for f in rw.flags(len(before))):
            kept = {id(f) for f in before}
            rw.drop_flags(predicate=lambda f: id(f) not in kept)
            return None
        self._drop_findings(rw, original)
        helper = add_helpers(rw, ["update_whole"], {"update_whole": _UPDATE_WHOLE})["update_whole"]
        if isinstance(receiver, cst.Name):
            rw.flag(original, RULE_ID, "needs-review",
                    f"`{name}.{method}()` updates the caller's whole array (`{helper}`), as torch updates the caller's "
                    f"tensor: exact unless a caller passes a view (a slice, `.view`, `.transpose`, a `chunk` piece, ...) "
                    "whose base it reads afterwards (torch's update reaches that base, MLX's a copy), or a torch copy that "
                    "MLX's translation leaves the same array (`.contiguous()` of a transposed tensor) whose original it "
                    "reads afterwards", severity="info")
        self.whole_values[id(original)] = name
        rw.tensors.mark(name, True)  # its in-place method was translated as a tensor's (as `_fresh_local_value`)
        rw.count_conversion()
        return cst.Call(cst.Name(helper), [cst.Arg(cst.Name(name), comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
                                           cst.Arg(value)])

    def _fresh_local_value(self, rw, original, updated):
        """`y = x.sigmoid_() * 2` where `x` holds a tensor no other reference has (as for the statement form): the
        update is x's new value, and the call's value is that tensor: `(x := mx.sigmoid(x)) * 2`. Exact where x
        occurs once in the statement (`x + x.mul_(2)` reads x's object before the update and sees the update in
        torch, the old array in MLX), outside comprehensions and lambdas (a walrus there binds elsewhere or not at
        all) and class bodies."""
        receiver = original.func.value
        method = original.func.attr.value
        if (not isinstance(receiver, cst.Name) or self.nested or not isinstance(updated, cst.Call)
                or not isinstance(updated.func, cst.Attribute) or rw.statement is None):
            return None
        name = receiver.value
        if self._problem(name, original) is not None or _occurrences(rw.statement, name) != 1:
            return None
        parent = _parent(rw.statement, original)
        # the value must not be kept under another name (`y = x.sigmoid_()`: y is x's object in torch, and a later
        # update of x would reach it): an operand of a new value, or returned
        if not (isinstance(parent, (cst.BinaryOperation, cst.Comparison, cst.Return))
                or (isinstance(parent, cst.UnaryOperation) and not isinstance(parent.operator, cst.Plus))):
            return None
        before = rw.flags()
        if method in _VALUE_FILLS:
            signature, template = _VALUE_FILLS[method]
            args = argument_code(updated.args, signature)
            value = None if args is None else mlx_expr(rw, template.format(t=name, **args))
        else:
            value = self._out_of_place(rw, original, updated, method, name)
        if value is None:
            kept = {id(f) for f in before}
            rw.drop_flags(predicate=lambda f: id(f) not in kept)
            return None
        self._drop_findings(rw, original)
        rw.tensors.mark(name, True)
        rw.count_conversion()
        return cst.NamedExpr(cst.Name(name), value, lpar=[cst.LeftParen()], rpar=[cst.RightParen()])

    def visit_Lambda(self, rw, node) -> None:
        self.nested += 1

    def leave_Lambda(self, rw, original, updated):
        self.nested -= 1
        return updated

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_Lambda
    leave_ListComp = leave_SetComp = leave_DictComp = leave_GeneratorExp = leave_Lambda

    def _fresh_receiver(self, rw, original, updated):
        """`torch.empty(1, n, d).normal_(std=0.02)`: the update of a new tensor nobody else holds is the value of
        a new array (vision_transformer's pos_embedding); the creation call, free of calls, is written twice."""
        receiver = original.func.value
        method = original.func.attr.value
        if (not isinstance(receiver, cst.Call) or method not in _VALUE_FILLS or not _creation(rw, receiver)
                or any(isinstance(n, cst.Call) for a in receiver.args for n in _walk(a.value))
                or not isinstance(updated, cst.Call) or not isinstance(updated.func, cst.Attribute)):
            return None
        signature, template = _VALUE_FILLS[method]
        args = argument_code(updated.args, signature)
        if args is None:
            return None
        rw.count_conversion()
        return mlx_expr(rw, template.format(t=code_of(updated.func.value), **args))

    def _new_tensor_fill(self, rw, original, updated):
        """`torch.randn(4).uniform_(1, 2)` (torch's docstrings): a fill of a tensor the expression creates, whose
        creation draws random numbers (not written twice, as `_fresh_receiver` writes `torch.empty(n)`): the fill's
        form over the creation evaluated once, into a fresh name on a line before (the draws happen in torch's order)."""
        receiver = original.func.value
        method = original.func.attr.value
        if (method not in _VALUE_FILLS or not isinstance(receiver, cst.Call) or rw.qualified_name(receiver.func) not in _NEW_TENSORS
                or not isinstance(updated, cst.Call) or not isinstance(updated.func, cst.Attribute)):
            return None
        before = rw.flags()
        value = self._apply(rw, _fill_rule(method), original, updated, updated.func.value)
        if value is None:  # the creation cannot be evaluated once here (in a comprehension, ...): as it was
            kept = {id(f) for f in before}
            rw.drop_flags(predicate=lambda f: id(f) not in kept)
            return None
        self._drop_findings(rw, original)
        return value

    def _new_tensor_update(self, rw, original, updated):
        """`torch.zeros(3, 5).scatter_add_(0, index, src)`, `torch.randn(3, 3).triu_()`: the update of a tensor the
        expression itself creates (a torch creation function: no other reference to it exists) is the value of
        the out-of-place method on it (the table's rule for `scatter_add`, `triu`); the creation is evaluated once
        (a fresh name where the rule reads it twice, else flagged). Where torch runs the in-place form, the
        out-of-place result has the receiver's dtype (a promotion is an error in place), but for comparisons: cast."""
        receiver = original.func.value
        method = original.func.attr.value
        new = isinstance(receiver, cst.Call) and (rw.qualified_name(receiver.func) in _NEW_TENSORS
                                                  # `torch.zeros(n).add_(x).mul_(2)` (not `x.add_(3.).clamp_(0., 6.)` on a
                                                  # parameter x: that value is x's object, `_whole_parameter_value`)
                                                  or (id(receiver) in self.converted_values and id(receiver) not in self.whole_values)
                                                  or _new_result(rw, receiver))  # timm's `F.relu6(x + 3.).div_(6.)`
        if method in SPECIAL or not new or not isinstance(updated, cst.Call) or not isinstance(updated.func, cst.Attribute):
            return None
        rule = rw.index.method(method[:-1])
        if rule is None or rule.status == "manual" or rule.returns != "tensor" or method[:-1] in BOOL_RESULT_OPS:
            return None
        out_call = updated.with_changes(func=updated.func.with_changes(attr=cst.Name(method[:-1])))
        before = rw.flags()
        value = self._apply(rw, rule, original, out_call, updated.func.value)
        if value is None:  # the out-of-place rule cannot translate it: the statement's flags as they were
            kept = {id(f) for f in before}
            rw.drop_flags(predicate=lambda f: id(f) not in kept)
            return None
        self._drop_findings(rw, original)
        return value

    def _drop_late_flags(self, rw) -> None:
        """nn-init (and the closed world) flag a random fill whose value is used after this transform left the call:
        it is translated here."""
        if self.converted_values:
            rw.drop_flags(predicate=lambda f: id(f.node) in self.converted_values and f.rule_id.startswith(("torch.Tensor.", "Tensor.")))

    def leave_Return(self, rw, original, updated):
        self._drop_late_flags(rw)
        return updated

    def leave_AnnAssign(self, rw, original, updated):
        self._drop_late_flags(rw)
        return updated

    def leave_Expr(self, rw, original, updated):
        self._drop_late_flags(rw)
        call = original.value
        if not isinstance(call, cst.Call) or not isinstance(updated, cst.Expr) or not isinstance(updated.value, cst.Call):
            return updated
        if _functional_inplace(rw, call) is not None:
            return self._function(rw, updated, call)
        if isinstance(call.func, cst.Attribute) and _left_to_this(rw, call.func.attr.value):
            if rw.qualified_name(call.func.value) is not None:
                return updated
            return self._method(rw, original, updated, call)
        return updated

    def _function(self, rw, updated, call):
        """`torch.relu_(x)` / `F.leaky_relu_(x, 0.2)` as a statement (or `x = torch.relu_(x)`): the function form of
        an in-place method updates its first argument and returns it; with no other reference to x's tensor (as for
        `x.relu_()`) it is `x = <the table's translation of torch.relu(x)>`. Where torch runs the in-place form the
        out-of-place result has x's dtype (an integer x whose result would be float is an error in torch)."""
        rule = _functional_inplace(rw, call)
        name = call.args[0].value.value
        why = self._problem(name, call)
        if why is not None:
            rw.drop_flags(call)  # one flag, saying why: not also the table's "no in-place form"
            self._refuse(rw, call, why)
            return updated
        new_call = updated.value
        out_call = new_call.with_changes(func=new_call.func.with_changes(attr=cst.Name(new_call.func.attr.value[:-1])))
        before = len(rw.flags())
        value = rw.apply_rule(rule, call, out_call)
        if any(f.severity != "info" for f in rw.flags(before)):
            return updated  # the out-of-place rule's own flag says why (an argument it cannot translate)
        rw.drop_flags(call)  # the table's "no in-place form" for torch.relu_
        rw.tensors.mark(name, True)
        return cst.Assign([cst.AssignTarget(cst.Name(name))], value, semicolon=updated.semicolon)

    def _method(self, rw, original, updated, call):
        method = call.func.attr.value
        if _flagged_before(rw.statement):
            # the first conversion saw why (hf_storage's `x = y.detach()`, a view, reads `mx.stop_gradient(y)` once
            # translated): what it left as written stays so (its flag is kept, not written twice), and the table's
            # word on the same method, which the receiver now being an mx.array brings out (`x.share_memory_()`:
            # "MLX exposes no storage"), is that same cause
            own = rw.index.method(method)
            if own is not None:
                rw.drop_flags(rule_id=own.id)
            self._refuse(rw, call, "an earlier conversion left this update as written")
            return updated
        if method in ("zero_", "fill_") and isinstance(_strip_data_cst(call.func.value), cst.Subscript):
            return self._item_update(rw, updated, call)
        if self._layer_parameter(call.func.value) and method not in FILL_METHODS and method not in RANDOM_FILLS:
            return self._parameter_update(rw, updated, call, method)  # nn-init translates its own methods
        if isinstance(call.func.value, cst.Call) and id(call.func.value) in self.chain_calls:
            return self._chain_update(rw, updated, call)
        if not isinstance(call.func.value, cst.Name):
            self._refuse(rw, call, f"`{code_of(call.func.value)}` is part of another object, which would see the mutation")
            return updated
        name = call.func.value.value
        why = self._problem(name, call)
        if why is not None:
            whole_why = self._whole_parameter(name, method)
            if whole_why is None:
                return self._whole_update(rw, updated, call, method, name)
            if "is not a parameter" not in whole_why and "in a class body" not in whole_why:
                why = whole_why
        if why is not None:
            self._refuse(rw, call, why)
            return updated
        self._drop_findings(rw, call)
        value = self._out_of_place(rw, call, updated.value, method, name)
        if value is None:
            if not rw.flags():
                self._refuse(rw, call, f"no out-of-place rule for `.{method}()`")
            return updated
        rw.tensors.mark(name, True)
        return cst.Assign([cst.AssignTarget(cst.Name(name))], value, semicolon=updated.semicolon)

    def _item_update(self, rw, updated, call):
        """`x[a:b].zero_()` / `x[i].fill_(v)` -> `x[a:b] = 0` / `x[i] = v`. MLX item assignment changes the array
        object, which every reference to it sees, as torch's update does; it differs where torch shares storage
        between two objects (views), so the base must be a tensor nobody else holds (the flow analysis), or a
        layer's weight/bias that this file never assigns (swin's `self.qkv.bias[length : 2 * length].data.zero_()`)."""
        item = _strip_data_cst(call.func.value)
        base = _strip_data_cst(item.value)
        method = call.func.attr.value
        if not all(_basic_index(el.slice) for el in item.slice):
            self._refuse(rw, call, f"`{code_of(item)[:40]}` may index with a tensor: torch updates a copy")
            return updated
        if isinstance(base, cst.Name):
            decisions = self.analysis.method_decisions if self.analysis is not None else {}
            why = decisions.get(id(call), "its tensor may be shared with another reference")
        elif (isinstance(base, cst.Attribute) and base.attr.value in ("weight", "bias") and isinstance(base.value, (cst.Attribute, cst.Name))
              and not {base.attr.value, "data", "*"} & self.assigned_attributes):
            why = None
        else:
            why = f"`{code_of(base)[:40]}` is part of another object, which may share its storage"
        args = updated.value.args
        if why is None and method == "fill_" and (len(args) != 1 or args[0].keyword is not None or args[0].star):
            why = "fill_ takes one value"
        if why is not None:
            self._refuse(rw, call, why)
            return updated
        new_item = _undata(call.func.value, updated.value.func.value)
        if not isinstance(new_item, cst.Subscript):
            self._refuse(rw, call, f"`{code_of(item)[:40]}` was translated to another expression")
            return updated
        new_item = new_item.with_changes(value=_undata(item.value, new_item.value))
        value = args[0].value if method == "fill_" else cst.Integer("0")
        self._drop_findings(rw, call)
        rw.count_conversion()
        return cst.Assign([cst.AssignTarget(new_item)], value, semicolon=updated.semicolon)

    def _layer_parameter(self, node) -> bool:
        """`module.weight` / `self.fc.bias` (or its `.data`), an attribute this file never assigns: a layer's
        parameter, which is never a view of another tensor."""
        base = _strip_data_cst(node)
        return (isinstance(base, cst.Attribute) and base.attr.value in ("weight", "bias")
                and isinstance(base.value, (cst.Attribute, cst.Name)) and not {base.attr.value, "data", "*"} & self.assigned_attributes)

    def _parameter_update(self, rw, updated, call, method):
        """`module.weight.data.mul_(s)` -> `module.weight[:] = module.weight * s` (convnext's head init): MLX item
        assignment changes the parameter's array object, which every reference to it sees, as torch's update;
        `[:]` keeps its dtype (MLX's `x[...] = v` would take v's)."""
        member = _undata(call.func.value, updated.value.func.value)
        new_call = updated.value.with_changes(func=updated.value.func.with_changes(value=member))
        value = self._out_of_place(rw, call, new_call, method, code_of(member))
        if value is None:
            if not rw.flags():
                self._refuse(rw, call, f"no out-of-place rule for `.{method}()`")
            return updated
        self._drop_findings(rw, call)
        rw.count_conversion()
        target = cst.Subscript(member, [cst.SubscriptElement(cst.Slice(lower=None, upper=None))])
        return cst.Assign([cst.AssignTarget(target)], value, semicolon=updated.semicolon)

    def _updating_layer(self, func) -> Optional[str]:
        """The class of this file whose forward updates its input in place, that `func` may be an instance of:
        `self.gate` where the file assigns `self.gate = Sigmoid(...)`, or `Sigmoid(...)` called at once."""
        if not self.updating_layers[0]:
            return None
        classes, holders = self.updating_layers
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            return holders.get(func.attr.value)
        if isinstance(func, cst.Call) and isinstance(func.func, cst.Name) and func.func.value in classes:
            return func.func.value
        return None

    def _view_arguments(self, rw, call, function: str, layer: Optional[dict] = None) -> None:
        """`trunc_normal_(w[0], std=.02)` where this file's `trunc_normal_` updates its parameter in place (as an
        update of the whole array: `_whole_update`), or `self.gate(x[:, 0])` where `self.gate` is a layer of this file
        whose forward updates its input: torch updates the tensor `w[0]` views, MLX a copy of it."""
        params, updated_params = self.updating[function] if layer is None else layer[function]
        for i, arg in enumerate(call.args):
            if arg.star:
                return
            param = arg.keyword.value if arg.keyword is not None else params[i] if i < len(params) else None
            if param not in updated_params:
                continue
            view = f"`{code_of(arg.value)[:40]}`" if _view_expression(arg.value) else None
            if view is None and isinstance(arg.value, cst.Name):  # `first = w[0]; fill_(first)`
                scope = self._scope_facts()
                source = scope.view_source(arg.value.value) if scope is not None else None
                view = None if source is None else f"`{arg.value.value}` (= `{source[:40]}`)"
            if view is not None:
                rw.flag(call, RULE_ID, "semantics-differ",
                        f"`{function}` updates its parameter `{param}` in place, and {view} is a view in "
                        "torch, whose update reaches the tensor it views; in MLX it is a copy: pass the whole tensor")

    def _chain_update(self, rw, updated, call):
        """`tensor.mul_(std).add_(mean)` (timm's trunc_normal_tf_): each in-place method returns its receiver, so the
        chain is the updates one after the other on the same tensor, with nothing run between them: one assignment
        of the composed value (`mx.add(mx.multiply(tensor, std), mean)`), to the name (an unshared local, as
        `_method`) or to the whole array of a parameter (as `_whole_update`, each step cast to its dtype)."""
        originals = [call, *_chain(call)]  # outermost first
        news = [updated.value]
        while len(news) < len(originals):
            news.append(news[-1].func.value)
        originals.reverse()
        news.reverse()
        root = originals[0].func.value
        methods = [c.func.attr.value for c in originals]
        if not isinstance(root, cst.Name) or not all(_left_to_this(rw, m) for m in methods) or _flagged_before(rw.statement):
            self._refuse(rw, call, f"`{code_of(call.func.value)[:40]}` is an update chain this transform does not follow")
            return updated
        name = root.value
        whole = False
        why = self._problem(name, call)
        if why is not None:
            whole = all(self._whole_parameter(name, m) is None for m in methods)
            if not whole:
                self._refuse(rw, call, why)
                return updated
        value: cst.BaseExpression = cst.Name(name)
        for original, new, method in zip(originals, news, methods):
            if method in _VALUE_FILLS:  # a fill reads only the shape and dtype, which no in-place update changes
                signature, template = _VALUE_FILLS[method]
                args = argument_code(new.args, signature)
                step = None if args is None else mlx_expr(rw, template.format(t=name, **args))
            else:
                step = self._out_of_place(rw, original, new.with_changes(func=new.func.with_changes(value=value)), method, name)
                if step is not None and whole and method[:-1] not in BOOL_RESULT_OPS:
                    cast = mlx_expr(rw, f"VALUE.astype({name}.dtype)")
                    step = cast.with_changes(func=cast.func.with_changes(value=step))
            if step is None:
                if not [f for f in rw.flags() if f.severity != "info"]:
                    self._refuse(rw, call, f"no out-of-place form of `.{method}()`")
                return updated
            value = step
        for original in originals:
            self._drop_findings(rw, original)
        rw.count_conversion()
        target = cst.Subscript(cst.Name(name), [cst.SubscriptElement(cst.Index(cst.Ellipsis()))]) if whole else cst.Name(name)
        if not whole:
            rw.tensors.mark(name, True)
        return cst.Assign([cst.AssignTarget(target)], value, semicolon=updated.semicolon)

    def _whole_parameter(self, name: str, method: str) -> Optional[str]:
        """None when `name.<method>()` may be written as an update of the whole array of a parameter (see
        `_whole_update`), else why not."""
        facts = self._scope_facts()
        if facts is None:
            return "in-place update in a class body"
        if name not in facts.params:
            return f"`{name}` is not a parameter"
        if method[:-1] in VIEW_OPS or method in _SHAPE_METHODS:
            return f"`.{method}()` changes the shape of the caller's tensor"
        return facts.whole_parameter(name)

    def _whole_update(self, rw, updated, call, method, name):
        """`tensor.mul_(s)` on a parameter `tensor` (timm's `_trunc_normal_(tensor, ...)`: uniform_, erfinv_, mul_,
        add_, clamp_) -> `tensor[...] = mx.multiply(tensor, s).astype(tensor.dtype)`.

        Why the caller sees the same: torch updates the storage of the tensor object the caller passed, and every
        reference to that object sees the new values; MLX item assignment replaces the contents of the array object
        the caller passed, and every reference to that object sees them (`whole_parameter`: the parameter still holds
        the caller's object here, and no view of it is kept in the function, which in torch would see the change and
        in MLX is a copy). `[...]` assigns the whole array; torch's in-place result keeps the tensor's dtype and
        shape: the value is cast to its dtype (`x[...] = v` takes v's), ops that change the shape are excluded
        (`_whole_parameter`), and a value of another shape than the tensor's is an error in both (torch: the
        output cannot be resized; MLX: broadcasting into the shape fails) or is broadcast into it as torch does
        (`x.copy_(v)`). What this cannot see: a caller passing a view (`f(w[0])`, `f(w.t())`): torch updates the
        viewed tensor, MLX a copy; calls of this file's functions are checked (`_view_arguments`), callers in other
        files are not.
        """
        if _flagged_before(rw.statement):
            self._refuse(rw, call, "an earlier conversion left this update as written")
            return updated
        if method in _VALUE_FILLS:
            signature, template = _VALUE_FILLS[method]
            args = argument_code(updated.value.args, signature)
            value = None if args is None else mlx_expr(rw, template.format(t=name, **args))
        else:
            value = self._out_of_place(rw, call, updated.value, method, name)
            if value is not None and method[:-1] not in BOOL_RESULT_OPS:  # (those are cast by _out_of_place)
                cast = mlx_expr(rw, f"VALUE.astype({name}.dtype)")
                value = cast.with_changes(func=cast.func.with_changes(value=value))
        if value is None:
            if not [f for f in rw.flags() if f.node is call and f.severity != "info"]:
                self._refuse(rw, call, f"no out-of-place form of `.{method}()` to assign")
            return updated
        self._drop_findings(rw, call)
        rw.count_conversion()
        target = cst.Subscript(cst.Name(name), [cst.SubscriptElement(cst.Index(cst.Ellipsis()))])
        return cst.Assign([cst.AssignTarget(target)], value, semicolon=updated.semicolon)

    def _out_of_place(self, rw, call, new_call, method, name):
        args = new_call.args
        if method == "zero_" and not args:
            return mlx_expr(rw, f"mx.zeros_like({name})")
        if method == "fill_" and len(args) == 1 and args[0].keyword is None and not args[0].star:
            return mlx_expr(rw, f"mx.full({name}.shape, {code_of(args[0].value)}, dtype={name}.dtype)")
        if method == "copy_" and len(args) == 1 and args[0].keyword is None and not args[0].star:
            return mlx_expr(rw, f"mx.broadcast_to({code_of(args[0].value)}, {name}.shape).astype({name}.dtype)")
        if method in SPECIAL:
            return None
        rule = rw.index.method(method[:-1])
        if rule is None or rule.returns != "tensor":
            return None
        out_call = new_call.with_changes(func=new_call.func.with_changes(attr=cst.Name(method[:-1])))
        value = self._apply(rw, rule, call, out_call, new_call.func.value)
        if value is not None and method[:-1] in BOOL_RESULT_OPS:  # torch writes the result into x's dtype
            cast = mlx_expr(rw, f"VALUE.astype({name}.dtype)")
            value = cast.with_changes(func=cast.func.with_changes(value=value))
        return value

    def leave_Assign(self, rw, original, updated):
        self._drop_late_flags(rw)
        if len(original.targets) != 1:
            return updated
        value = original.value
        if id(value) in self.converted_values and isinstance(original.targets[0].target, cst.Name):
            # `t = torch.full(...).scatter_(...)`: an in-place method's value is its (new) tensor, whatever the translation
            # calls (a generated helper, `scatter(...)`, whose def the pass does not read): a second pass, which reads
            # it, must find the same facts
            rw.tensors.mark(original.targets[0].target.value, True)
        if (isinstance(value, cst.Call) and isinstance(original.targets[0].target, cst.Name) and isinstance(updated.value, cst.Call)
                and _functional_inplace(rw, value) is not None and value.args[0].value.value == original.targets[0].target.value):
            return self._function(rw, cst.Expr(updated.value, semicolon=updated.semicolon), value)  # `x = torch.relu_(x)`
        if id(original.value) in self.rebind_calls and _left_to_this(rw, original.value.func.attr.value) and isinstance(updated.value, cst.Call):
            # `noise = noise.bernoulli_(p)`: the statement form `noise.bernoulli_(p)`, whose value is bound back
            return self._method(rw, original, updated, original.value)
        target = original.targets[0].target
        if isinstance(target, cst.Subscript):
            return self._mask_assign(rw, original, updated, target)
        return updated

    def leave_AugAssign(self, rw, original, updated):
        self._drop_late_flags(rw)
        if isinstance(original.target, cst.Subscript):
            self._view_write(rw, original.target)
        return updated

    # ----- x[x < 0] = 0 -------------------------------------------------------------------------
    def _view_write(self, rw, target) -> bool:
        """`y[i] = v` where `y` may be a view: torch writes through to the viewed tensor (or numpy array), MLX does not."""
        if not isinstance(target.value, cst.Name) or not rw.tensors.is_tensor(target.value):
            return False
        scope = self._scope_facts()
        source = scope.view_source(target.value.value) if scope is not None else None
        if source is None:
            return False
        self._refuse(rw, target, f"`{target.value.value}` may be a view of another tensor or array (`{source[:40]}`): "
                     "torch writes the item through to it, an MLX array is a copy")
        return True

    def _mask_assign(self, rw, original, updated, target):
        if self._view_write(rw, target):
            return updated
        if not isinstance(target.value, cst.Name) or len(target.slice) != 1 or not isinstance(target.slice[0].slice, cst.Index):
            return updated
        name = target.value.value
        mask = target.slice[0].slice.value
        if not isinstance(mask, cst.Comparison) or not rw.tensors.is_tensor(target.value):
            return updated
        sides = [mask.left, *[c.comparator for c in mask.comparisons]]
        self_compared = len(sides) == 2 and any(isinstance(s, cst.Name) and s.value == name for s in sides) and any(_number(s) for s in sides)
        if not self_compared or _number(original.value) is None:
            return updated  # the table's boolean-mask flag stays
        why = self._problem(name)
        if why is not None:
            self._refuse(rw, target, why)
            return updated
        self._drop_findings(rw, target)
        new_mask = updated.targets[0].target.slice[0].slice.value
        fill = code_of(updated.value)
        if _number(original.value) == "float":
            fill = f"mx.array({fill}, dtype={name}.dtype)"  # torch casts the value to x's dtype
        where = mlx_expr(rw, f"mx.where(MASK, {fill}, {name})")
        where = where.with_changes(args=[where.args[0].with_changes(value=new_mask), *where.args[1:]])
        rw.count_conversion()
        return updated.with_changes(targets=[cst.AssignTarget(cst.Name(name))], value=where)


def _view_expression(node: cst.BaseExpression) -> bool:
    """`w[0]`, `w.t()`, `w.view(-1)`, `w.T`: an expression whose torch value may be a view of another tensor."""
    if isinstance(node, cst.Subscript):
        return True
    if isinstance(node, cst.Attribute):
        return node.attr.value in ("T", "mT", "H", "mH", "real", "imag") or (node.attr.value == "data" and _view_expression(node.value))
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        return node.func.attr.value in VIEW_OPS
    return False


def _updating_functions(tree: ast.Module) -> dict:
    """Module-level functions that update a parameter in place: name -> (parameter names in order, the updated ones).
    A parameter is updated by an in-place method statement (or chain) on it, or by passing it to such a function
    at an updated parameter (to a fixed point: timm's `trunc_normal_` -> `_trunc_normal_`)."""
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    params = {name: [a.arg for a in [*f.args.posonlyargs, *f.args.args]] + [a.arg for a in f.args.kwonlyargs]
              for name, f in functions.items()}
    updated: dict = {name: set() for name in functions}
    changed = True
    while changed:
        changed = False
        for name, f in functions.items():
            for node in ast.walk(f):
                found = set()
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in INPLACE_METHODS:
                    root = node.func.value
                    while isinstance(root, ast.Call) and isinstance(root.func, ast.Attribute) and root.func.attr in INPLACE_METHODS:
                        root = root.func.value
                    if isinstance(root, ast.Name):
                        found.add(root.id)
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and updated.get(node.func.id):
                    callee = params[node.func.id]
                    for i, arg in enumerate(node.args):
                        if isinstance(arg, ast.Name) and i < len(callee) and callee[i] in updated[node.func.id]:
                            found.add(arg.id)
                    for kw in node.keywords:
                        if isinstance(kw.value, ast.Name) and kw.arg in updated[node.func.id]:
                            found.add(kw.value.id)
                new = (found & set(params[name])) - updated[name]
                if new:
                    updated[name] |= new
                    changed = True
    return {name: (tuple(params[name]), frozenset(u)) for name, u in updated.items() if u}


def _updating_layers(tree: ast.Module, updating: dict) -> tuple:
    """({class: (forward's parameter names after self, those it updates in place)} for this file's classes whose
    forward updates an input in place (timm's `Sigmoid`: `x.sigmoid_()`; `Swish`: `swish(x, self.inplace)`),
    {attribute: class} for `self.<attribute> = <such a class>(...)` anywhere in the file)."""
    classes: dict = {}
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef):
            continue
        forward = next((f for f in cls.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name == "forward"), None)
        if forward is None:
            continue
        module = ast.Module(body=[*[f for f in tree.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                                    and f.name in updating], forward], type_ignores=[])
        found = _updating_functions(module).get("forward")
        if found is not None:
            params, updated = found
            classes[cls.name] = (params[1:], updated)
    holders: dict = {}
    if classes:
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name):
                for target in node.targets:
                    if isinstance(target, ast.Attribute) and node.value.func.id in classes:
                        holders[target.attr] = node.value.func.id
    return classes, holders


def _parent(root: cst.CSTNode, node: cst.CSTNode):
    """The node whose child `node` is (through a ComparisonTarget: the Comparison), or None."""
    stack = [root]
    while stack:
        n = stack.pop()
        for child in n.children:
            if child is node:
                return n
            if isinstance(child, cst.ComparisonTarget) and child.comparator is node:
                return n
            stack.append(child)
    return None


def _occurrences(node: cst.CSTNode, name: str) -> int:
    """How often the variable `name` is read or bound in `node` (not attribute names or keyword names)."""
    count = 0
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.Name):
            count += n.value == name
        elif isinstance(n, cst.Attribute):
            stack.append(n.value)
        elif isinstance(n, cst.Arg):
            stack.append(n.value)
        else:
            stack.extend(n.children)
    return count


def _chain(call: cst.Call) -> list:
    """The in-place calls whose value is the receiver of the next in `call` (`x.mul_(s).add_(m)`: [`x.mul_(s)`]),
    outermost first; empty unless `call` is itself an in-place method call."""
    found = []
    if not (isinstance(call.func, cst.Attribute) and call.func.attr.value in INPLACE_METHODS):
        return found
    receiver = call.func.value
    while (isinstance(receiver, cst.Call) and isinstance(receiver.func, cst.Attribute)
           and receiver.func.attr.value in INPLACE_METHODS):
        found.append(receiver)
        receiver = receiver.func.value
    return found


def _kept_view(node: ast.Name, parents: dict) -> Optional[str]:
    """The source of a view of `node`'s tensor that outlives its expression (a subscript or a view op bound to a
    name, passed to a call, returned, stored), else None. A view consumed at once (`x[0] * 2`, `x.view(-1).sum()`,
    `x.shape`) keeps nothing."""
    view = None
    current: ast.expr = node
    while True:
        parent = parents.get(current)
        if isinstance(parent, ast.Subscript) and parent.value is current and isinstance(parent.ctx, ast.Load):
            view = current = parent
            continue
        if isinstance(parent, ast.Attribute) and parent.value is current:
            call = parents.get(parent)
            if parent.attr == "data" or parent.attr in ("T", "mT", "H", "mH", "real", "imag"):
                view = current = parent
                continue
            if isinstance(call, ast.Call) and call.func is parent and parent.attr in VIEW_OPS:
                view = current = call
                continue
            return None  # a value attribute, a method giving a new tensor, an in-place method on it (flagged by itself)
        if (isinstance(parent, ast.Call) and parent.args and parent.args[0] is current and _module_root(parent.func) is not None
                and isinstance(parent.func, ast.Attribute) and parent.func.attr in VIEW_OPS):
            view = current = parent  # `torch.reshape(x, s)`
            continue
        break
    if view is None or isinstance(parent, (ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.FormattedValue)):
        return None
    if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id in READING_BUILTINS:
        return None
    return ast.unparse(view)


def _rebinds_inplace(name: str, value: ast.expr) -> bool:
    """`noise = noise.bernoulli_(p)`: the value of an in-place method is its receiver."""
    return (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr in INPLACE_METHODS
            and isinstance(value.func.value, ast.Name) and value.func.value.id == name)


# the value form of an in-place update of a parameter's whole array (`_whole_parameter_value`)
_UPDATE_WHOLE = '''
def update_whole(t, value):
    """torch's in-place update of the tensor `t`: MLX item assignment replaces the contents of the array object `t`,
    which every reference to it sees; `t` keeps its dtype (and shape: `value` is broadcast into it)."""
    t[...] = value.astype(t.dtype)
    return t
'''

_ITEM_WRITE = re.compile(r"\]\s*(?:[-+*/%&|^@]|//|\*\*|<<|>>)?=(?!=)")


def _root_name(node) -> Optional[str]:
    """`x` for `x`, `x.permute(1, 0)`, `x[0].t()`, `torch.reshape(x.t(), s)`: the name a chain of calls,
    attributes and subscripts starts from (through the input of a module function: `mx.transpose(x, ...)`)."""
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        if isinstance(node, ast.Call) and node.args and _module_root(node.func) is not None:
            node = node.args[0]
        else:
            node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _module_root(func) -> Optional[str]:
    """`torch` for `torch.nn.functional.relu`: the module a function is called through, if it is one."""
    if not isinstance(func, ast.Attribute):
        return None
    root = func.value
    while isinstance(root, ast.Attribute):
        root = root.value
    return root.id if isinstance(root, ast.Name) and root.id in _MODULE_ROOTS else None


def _left_to_this(rw, method: str) -> bool:
    """An in-place method this transform translates: not one the table converts by a rule of its own."""
    if method not in INPLACE_METHODS:
        return False
    rule = rw.index.method(method)
    return rule is None or rule.status == "manual"


@functools.lru_cache(maxsize=None)
def _fill_rule(method: str) -> Rule:
    """A fill method's form (`_VALUE_FILLS`: nn-init's, over the tensor `{t}`) as a rule over its receiver, for the
    rewriter to translate (and evaluate a receiver it reads twice once)."""
    signature, template = _VALUE_FILLS[method]
    params = [p.name for p in signature.params]
    return Rule(id=f"torch.Tensor.{method}", status="exact", methods=(method,),
                signature=signature_of(("input", *params), defaults={p.name: p.default for p in signature.params if p.default is not None}),
                mlx=template.replace("{t}", "{input}"), params={p: ParamSpec(always_write=True) for p in params})


def _functional_inplace(rw, call: cst.Call):
    """For `torch.relu_(x, ...)` (any `torch.<op>_` / `torch.nn.functional.<op>_` the table has no rule of its own for,
    called on a name): the table's rule for the out-of-place `torch.<op>`, if it translates to a tensor; else None."""
    qual = rw.qualified_name(call.func)
    if qual is None or not qual.endswith("_") or qual.endswith("__") or not isinstance(call.func, cst.Attribute):
        return None
    own = rw.index.function(qual)
    if own is not None and own.status != "manual":
        return None
    first = call.args[0] if call.args else None
    if first is None or first.keyword is not None or first.star or not isinstance(first.value, cst.Name):
        return None
    rule = rw.index.function(qual[:-1])
    if rule is None or rule.status == "manual" or rule.returns != "tensor":
        return None
    return rule


def _number(node: cst.BaseExpression) -> Optional[str]:
    """'int' / 'float' for a number literal (optionally negated, or float('inf')), else None."""
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, (cst.Minus, cst.Plus)):
        return _number(node.expression)
    if isinstance(node, cst.Integer):
        return "int"
    if isinstance(node, cst.Float):
        return "float"
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "float" and len(node.args) == 1:
        return "float" if isinstance(node.args[0].value, cst.SimpleString) else None
    return None


def _strip_data(node: ast.expr) -> ast.expr:
    return node.value if isinstance(node, ast.Attribute) and node.attr == "data" else node


def _flagged_before(stmt) -> bool:
    """`stmt` carries this transform's flag from an earlier conversion of the file."""
    mark = f"# torch2mlx: {RULE_ID}:"
    return stmt is not None and any(line.comment is not None and line.comment.value.startswith(mark)
                                    for line in getattr(stmt, "leading_lines", ()))


def _undata(original: cst.BaseExpression, updated: cst.BaseExpression) -> cst.BaseExpression:
    """The translation of `original` without its `.data` (the same storage): `updated` is `m.weight.data`, or, where
    `m.weight` is known to be a tensor, the table's `mx.stop_gradient(m.weight)` for it (convnext's
    `module.weight.data.mul_(s)` inside `isinstance(module, nn.Linear)`): the member, never the temporary."""
    if isinstance(original, cst.Attribute) and original.attr.value == "data":
        if isinstance(updated, cst.Attribute) and updated.attr.value == "data":
            return updated.value
        if isinstance(updated, cst.Call) and len(updated.args) == 1 and updated.args[0].keyword is None and not updated.args[0].star:
            return updated.args[0].value
    return updated


def _strip_data_cst(node: cst.BaseExpression) -> cst.BaseExpression:
    """`x` for `x.data` (the same storage), else the node."""
    return node.value if isinstance(node, cst.Attribute) and node.attr.value == "data" else node


def _basic_index(index) -> bool:
    """A slice or an int literal: an index whose item is a view in torch (a tensor index copies). Not `...` or
    None: MLX's `x[...] = v` replaces the whole array, v's dtype included (x keeps its dtype in torch)."""
    if isinstance(index, cst.Slice):
        return True
    value = index.value if isinstance(index, cst.Index) and index.star is None else None
    if isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus):
        value = value.expression
    return isinstance(value, cst.Integer)


def _walk(node: cst.CSTNode):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(n.children)


def _creation(rw, call: cst.Call) -> bool:
    """A call making a new tensor: `torch.empty(...)`, `torch.zeros(...)`, `x.new_empty(...)`."""
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value in _NEW_METHODS and isinstance(func.value, cst.Name):
        return rw.qualified_name(func.value) is None
    return rw.qualified_name(func) in _CREATIONS
