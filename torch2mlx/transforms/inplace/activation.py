"""`inplace=True` activations and dropouts, converted where no one can see the update (id `nn-inplace-activation`).

What it does
    Drops `inplace=True` from `nn.ReLU(inplace=True)`, `nn.LeakyReLU(0.2, True)`, ...,
    `nn.Dropout(inplace=True)` and `F.relu(x, inplace=True)` (any table rule with an `inplace`
    parameter) where that is provably exact, and lets the table translate the rest of the call.
    `F.relu(x, inplace=True)` as a statement becomes `x = nn.relu(x)`.
Why
    In torch the update changes the tensor object, so every other reference to it sees it; an
    MLX array is never changed. The two agree exactly when no other reference exists, which
    the flow analysis in `flow` proves per call.
Exact when
    - the module is an element of an `nn.Sequential` (direct, a `*[...]` list or an
      `OrderedDict`) after a layer that makes a new tensor (conv, norm, linear, pool, an
      activation, ...): its input is an intermediate nobody else holds;
    - the module (or such a Sequential whose first layers pass their input through) is held
      in `self.<name>` of an `nn.Module` (or a local name, or called inline) that is only
      called, and every call gets a fresh tensor: `self.relu(self.bn1(out))`,
      `self.relu(out + identity)`, or `out = self.relu(out)` / `return self.relu(out)` where
      `out` holds a tensor made in this function and never shared;
    - `F.<act>(arg, inplace=True)` with such an argument.
Left flagged (the table's `inplace` flag, with the reason) when
    the argument is a parameter of the function, or may be shared (`identity = x`, a view, a
    container, an unknown call), or is still read after the call; the holder is indexed,
    iterated, passed on, reassigned, or its attribute is used outside the class; the module
    follows a layer the analysis does not know in a Sequential.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Optional

import libcst as cst

from torch2mlx.binding import Flag, bind
from torch2mlx.torch_facts import MODULE_BASES
from torch2mlx.transforms import Transform
from torch2mlx.transforms.inplace.flow import FRESH_METHODS, PASS_FUNCS, READING_BUILTINS, Callee, FunctionFlow

RULE_ID = "nn-inplace-activation"
_POSITIONAL_TRUE = re.compile(r"[(,]\s*True\s*\)")
_SEQUENTIAL = frozenset({"torch.nn.Sequential", "torch.nn.modules.container.Sequential"})
_MODULE_BASES = MODULE_BASES
# torch layers whose output is always a new tensor (checked against torch: never the input's storage)
_FRESH_LAYERS = frozenset({
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "Linear", "Bilinear",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d",
    "InstanceNorm3d", "LocalResponseNorm", "RMSNorm", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d",
    "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d",
    "Embedding", "ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
    "ReflectionPad1d", "ReflectionPad2d", "ReplicationPad1d", "ReplicationPad2d", "Sigmoid", "Tanh", "GELU",
    "Softmax", "LogSoftmax", "Softmin", "Softplus", "Softsign", "PReLU", "LogSigmoid", "Tanhshrink",
    "Hardshrink", "Softshrink", "GLU",
})
_PASS_LAYERS = frozenset({"Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout", "Flatten", "Unflatten"})
# module attributes that neither call the module nor hand it out
_SAFE_MODULE_METHODS = frozenset({
    "eval", "train", "parameters", "named_parameters", "buffers", "named_buffers", "state_dict",
    "load_state_dict", "to", "cpu", "cuda", "float", "double", "half", "bfloat16", "zero_grad", "requires_grad_",
})


@dataclass(eq=False)
class Holder:
    """Where an in-place module (or a Sequential holding one) lives, and what it does to its input."""

    name: str
    mutates_input: bool = False       # an in-place module sees the holder's own input
    fresh_output: bool = False
    safe: list = field(default_factory=list)         # act constructors exact whatever the call sites
    conditional: list = field(default_factory=list)  # exact when every call gets a fresh tensor
    rejected: dict = field(default_factory=dict)     # act constructor id -> why
    blocked: Optional[str] = None


class _Analysis:
    """Decisions for one module: id(constructor or functional call) -> None (exact) or why not."""

    def __init__(self, rw, module: cst.Module):
        self.rw = rw
        self.decisions: dict = {}
        self.discarded: set = set()
        self.holder_calls: dict = {}  # id(holder) -> whys from the flows, one per call visit
        self.inline: dict = {}        # id(constructor called inline) -> Holder
        self.nodes = _Nodes()
        self._module_attributes: Optional[tuple] = None  # (imported names, every Attribute node), when first needed
        functions: list = []
        _collect_functions(module, None, functions)
        everything = list(self.nodes.walk(module))
        self.attr_owner = _self_attribute_owners(everything, self.nodes)
        classes = {id(c): self._class_holders(c, module) for c in everything if isinstance(c, cst.ClassDef)}
        local = {id(f): self._local_holders(f) for f, _ in functions}
        self._flow(module.body, set(), _deferred_names(module, self.nodes), None, {}, {}, {})
        for func, cls in functions:
            holders, kinds = classes[id(cls)] if cls is not None else ({}, {})
            self_name = _first_param(func) if cls is not None else None
            self._flow(func.body.body, _param_names(func), _deferred_names(func.body, self.nodes), self_name, holders,
                       kinds, local[id(func)])
        for group in [*(h for h, _ in classes.values()), *local.values(), self.inline]:
            for holder in group.values():
                if holder is not None:
                    self._settle(holder)

    # ----- what a call is -----------------------------------------------------------------
    def rule_of(self, call: cst.Call):
        qual = self.rw.qualified_name(call.func)
        return (qual, self.rw.index.function(qual)) if qual is not None else (None, None)

    @staticmethod
    def inplace_bound(rule, call: cst.Call):
        """The bound arguments when `call` passes inplace=True literally, else None."""
        if rule is None or rule.signature is None or rule.signature.get("inplace") is None:
            return None
        try:
            bound = bind(call.args, rule.signature)
        except Flag:
            return None
        value = bound.get("inplace")
        return bound if isinstance(value, cst.Name) and value.value == "True" else None

    def layer_kind(self, node) -> Optional[str]:
        """'act' (in-place module), 'seq', 'fresh', 'pass' for a torch layer constructor, else None."""
        if not isinstance(node, cst.Call):
            return None
        qual, rule = self.rule_of(node)
        if qual is None or not qual.startswith("torch.nn.") or qual.startswith("torch.nn.functional."):
            return None
        if qual in _SEQUENTIAL:
            return "seq"
        if rule is None or rule.signature is None:
            return None
        if rule.signature.get("inplace") is not None:
            if self.inplace_bound(rule, node) is not None:
                return "act"
            return None if _mentions_inplace(node) else "fresh"  # inplace=<expression>: unknown
        last = qual.rsplit(".", 1)[1]
        return "fresh" if last in _FRESH_LAYERS else "pass" if last in _PASS_LAYERS else None

    # ----- holders ------------------------------------------------------------------------
    def holder_for(self, ctor, name: str) -> Optional[Holder]:
        kind = self.layer_kind(ctor)
        if kind == "act":
            return Holder(name, mutates_input=True, conditional=[ctor])
        if kind != "seq":
            return None
        holder = Holder(name)
        state = self._sequential(ctor, "input", holder)
        if not (holder.safe or holder.conditional or holder.rejected):
            return None
        holder.fresh_output = state == "fresh"
        return holder

    def _sequential(self, seq: cst.Call, state: str, holder: Holder) -> str:
        """Walk the layers: `state` says whether the next layer's input is new, the Sequential's own, or unknown."""
        elements = _sequential_elements(seq)
        if elements is None:
            holder.blocked = "the nn.Sequential's layers are not written out"
            return "unknown"
        for el in elements:
            kind = self.layer_kind(el)
            if kind == "fresh":
                state = "fresh"
            elif kind == "act":
                if state == "fresh":
                    holder.safe.append(el)
                elif state == "input":
                    holder.mutates_input = True
                    holder.conditional.append(el)
                else:
                    holder.rejected[id(el)] = "it follows a layer whose output may be shared with another reference"
            elif kind == "seq":
                state = self._sequential(el, state, holder)
            elif kind != "pass":
                state = "unknown"
        return state

    def _class_holders(self, cls: cst.ClassDef, module: cst.Module):
        """self.<name> holders of a class, and the kinds of its other layers."""
        holders: dict = {}
        kinds: dict = {}
        stores: dict = {}
        for method in _class_methods(cls):
            me = _first_param(method)
            for node in self.nodes.walk(method.body):
                if isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
                    targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
                    for t in targets:
                        if _is_self_attr(t, me):
                            stores.setdefault(t.attr.value, []).append(node.value)
        for name, values in stores.items():
            holder = self.holder_for(values[0], f"self.{name}")
            if holder is not None:
                holders[name] = holder
                if len(values) > 1:
                    holder.blocked = f"`self.{name}` is assigned more than once"
            elif len(values) == 1 and self.layer_kind(values[0]) in ("fresh", "pass"):
                kinds[name] = self.layer_kind(values[0])
        if holders:
            self._check_class_uses(cls, module, holders)
        return holders, kinds

    def _check_class_uses(self, cls, module, holders: dict) -> None:
        bases = {self.rw.qualified_name(b.value) for b in cls.bases}
        if cls.bases and not bases <= _MODULE_BASES:
            for h in holders.values():
                h.blocked = "the class has a base class whose methods may use it"
        for method in _class_methods(cls):
            me = _first_param(method)
            for node, parent, nested in self.nodes.walk_parents(method.body):
                if _is_self_attr(node, me) and node.attr.value in holders and not isinstance(parent, cst.AssignTarget):
                    why = _use_problem(node, parent, nested, f"self.{node.attr.value}")
                    if why is not None:
                        holders[node.attr.value].blocked = why
        if self._module_attributes is None:
            everything = self.nodes.walk(module)
            self._module_attributes = (_imported_names(module, self.nodes),
                                       [n for n in everything if isinstance(n, cst.Attribute)])
        imported, attributes = self._module_attributes
        for node in attributes:
            if node.attr.value in holders:
                root = node.value
                while isinstance(root, cst.Attribute):
                    root = root.value
                if isinstance(root, cst.Name) and root.value in imported:
                    continue  # `F.relu`: a module's function, not this attribute
                owner = self.attr_owner.get(id(node))
                if owner is cls:
                    continue
                if owner is None or any(isinstance(b.value, cst.Name) and b.value.value == cls.name.value for b in owner.bases):
                    holders[node.attr.value].blocked = f"`.{node.attr.value}` is used outside the class"

    def _local_holders(self, func: cst.FunctionDef) -> dict:
        holders: dict = {}
        stores: dict = {}
        for node in self.nodes.walk(func.body):
            if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
                stores.setdefault(node.targets[0].target.value, []).append(node)
        for name, assigns in stores.items():
            holder = self.holder_for(assigns[0].value, name)
            if holder is None:
                continue
            holders[name] = holder
            if len(assigns) > 1:
                holder.blocked = f"`{name}` is assigned more than once"
            for node, parent, nested in self.nodes.walk_parents(func.body):
                if isinstance(node, cst.Name) and node.value == name and not isinstance(parent, cst.AssignTarget):
                    why = _use_problem(node, parent, nested, name)
                    if why is not None:
                        holder.blocked = why
                elif isinstance(node, (cst.Global, cst.Nonlocal)) and any(n.name.value == name for n in node.names):
                    holder.blocked = f"`{name}` is global"
        return holders

    # ----- the flow over one body ----------------------------------------------------------
    def _flow(self, body, params, pinned, self_name, holders, kinds, local) -> None:
        def holder_of(func) -> Optional[Holder]:
            if isinstance(func, cst.Call) and self.layer_kind(func) in ("act", "seq"):
                if id(func) not in self.inline:
                    self.inline[id(func)] = self.holder_for(func, "the module")
                return self.inline[id(func)]
            if _is_self_attr(func, self_name):
                return holders.get(func.attr.value)
            return local.get(func.value) if isinstance(func, cst.Name) else None

        def classify(call: cst.Call) -> Callee:
            func = call.func
            holder = holder_of(func)
            one_arg = len(call.args) == 1 and call.args[0].keyword is None and not call.args[0].star
            if holder is not None:
                if not one_arg:
                    holder.blocked = "it is called with other than one tensor"
                    return Callee("unknown")
                if holder.mutates_input:
                    return Callee("act", call.args[0].value, holder.fresh_output, id(holder))
                return Callee("fresh" if holder.fresh_output else "pass")
            if _is_self_attr(func, self_name):
                return Callee(kinds.get(func.attr.value, "unknown"))
            qual, rule = self.rule_of(call)
            if qual is not None:
                bound = self.inplace_bound(rule, call)
                if bound is not None and bound.get("input") is not None:
                    return Callee("act", bound.get("input"), False, id(call))
                return Callee("pass" if qual.rsplit(".", 1)[-1] in PASS_FUNCS else "fresh" if qual.startswith("torch.") else "unknown")
            if isinstance(func, cst.Attribute):
                return Callee("fresh" if func.attr.value in FRESH_METHODS else "method")
            if isinstance(func, cst.Name) and func.value in READING_BUILTINS:
                return Callee("fresh")
            return Callee("unknown")

        flow = FunctionFlow(classify, params, pinned)
        flow.block(body)
        holder_ids = {id(h) for group in (holders, local, self.inline) for h in group.values() if h is not None}
        for key, whys in flow.decisions.items():
            bad = next((w for w in whys if w is not None), None)
            if key in holder_ids:
                self.holder_calls.setdefault(key, []).append(bad)
            elif self.decisions.get(key) is None:
                self.decisions[key] = bad
        self.discarded |= flow.discarded

    def _settle(self, holder: Holder) -> None:
        call_why = next((w for w in self.holder_calls.get(id(holder), []) if w is not None), None)
        for ctor in holder.safe:
            self.decisions[id(ctor)] = holder.blocked
        for ctor in holder.conditional:
            why = holder.blocked or (None if call_why is None else f"a call of {holder.name}: {call_why}")
            self.decisions[id(ctor)] = why
        for key, why in holder.rejected.items():
            self.decisions[key] = why


class InplaceActivations(Transform):
    id = RULE_ID
    description = "inplace=True activations/dropouts: dropped where no other reference sees the update"
    order = 45  # before inplace-op, which leaves calls translated here alone
    text_decides = True

    def __init__(self) -> None:
        self.analysis: Optional[_Analysis] = None

    def applies_to(self, text: str) -> bool:
        # `inplace=True`, or a positional True that may be it (`nn.ReLU(True)`, `nn.LeakyReLU(0.2, True)`,
        # `F.relu(x, True)`): the analysis walks the whole module, so files without either skip it
        return "inplace" in text or _POSITIONAL_TRUE.search(text) is not None

    def visit_Module(self, rw, node) -> None:
        self.analysis = _Analysis(rw, node)

    def leave_Call(self, rw, original, updated):
        analysis = self.analysis
        if analysis is None or id(original) not in analysis.decisions or not isinstance(updated, cst.Call):
            return updated
        _qual, rule = analysis.rule_of(original)
        why = analysis.decisions[id(original)]
        if rule is None:
            return updated
        if why is not None:
            rw.edit_flags(lambda f: dataclasses.replace(f, message=f"argument inplace=True: {why}; MLX arrays are immutable")
                          if f.node is original and f.rule_id == rule.id and "inplace" in f.message else f)
            return updated
        try:
            bound = bind(updated.args, rule.signature)
        except Flag:
            return updated
        flag_value = bound.get("inplace")
        args = [a for a in updated.args if a.value is not flag_value]
        if len(args) == len(updated.args):
            return updated
        if args:
            args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        rw.drop_flags(original)
        return rw.apply_rule(rule, original, updated.with_changes(args=args))

    def leave_Expr(self, rw, original, updated):
        """`F.relu(x, inplace=True)` as a statement: the update of `x` was the point."""
        call = original.value
        analysis = self.analysis
        if analysis is None or id(call) not in analysis.discarded or analysis.decisions.get(id(call), "") is not None:
            return updated
        _qual, rule = analysis.rule_of(call)
        bound = analysis.inplace_bound(rule, call)
        target = bound.get("input") if bound is not None else None
        if not isinstance(target, cst.Name) or not isinstance(updated.value, cst.Call) or updated.value.func is call.func:
            return updated
        rw.tensors.mark(target.value, True)
        return cst.Assign([cst.AssignTarget(cst.Name(target.value))], updated.value, semicolon=updated.semicolon)


# ----- tree helpers --------------------------------------------------------------------------
class _Nodes:
    """Walks of one module's tree. libcst computes `node.children` by visiting the node, and the analysis
    walks the same subtrees several times (classes, methods, uses): each node's children are read once."""

    def __init__(self) -> None:
        self._children: dict = {}  # id(node) -> its children, reversed; the tree outlives the analysis

    def _reversed_children(self, node: cst.CSTNode) -> list:
        found = self._children.get(id(node))
        if found is None:
            found = self._children[id(node)] = list(reversed(node.children))
        return found

    def walk(self, node: cst.CSTNode):
        """`node` and every node below it, in source order."""
        stack = [node]
        while stack:
            n = stack.pop()
            yield n
            stack.extend(self._reversed_children(n))

    def walk_parents(self, node: cst.CSTNode, nested: bool = False):
        """(node, parent, inside a nested def/lambda) for every node below `node`."""
        stack = [(c, node, nested) for c in self._reversed_children(node)]
        while stack:
            n, p, inner = stack.pop()
            yield n, p, inner
            deeper = inner or isinstance(n, (cst.FunctionDef, cst.Lambda, cst.ClassDef))
            stack.extend((c, n, deeper) for c in self._reversed_children(n))


def _collect_functions(node, cls, out: list) -> None:
    for child in node.children:
        if isinstance(child, cst.FunctionDef):
            out.append((child, cls))
            _collect_functions(child, None, out)
        elif isinstance(child, cst.ClassDef):
            _collect_functions(child, child, out)
        elif isinstance(child, (cst.BaseSuite, cst.BaseCompoundStatement, cst.Else, cst.ExceptHandler, cst.Finally)):
            _collect_functions(child, cls, out)


def _class_methods(cls: cst.ClassDef) -> list:
    body = cls.body.body if isinstance(cls.body, cst.IndentedBlock) else []
    return [s for s in body if isinstance(s, cst.FunctionDef)]


def _param_names(func: cst.FunctionDef) -> set:
    p = func.params
    names = {x.name.value for x in [*p.posonly_params, *p.params, *p.kwonly_params]}
    for star in (p.star_arg, p.star_kwarg):
        if isinstance(star, cst.Param):
            names.add(star.name.value)
    return names


def _first_param(func: cst.FunctionDef) -> Optional[str]:
    params = [*func.params.posonly_params, *func.params.params]
    return params[0].name.value if params else None


def _is_self_attr(node, me: Optional[str]) -> bool:
    return me is not None and isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == me


def _deferred_names(node: cst.CSTNode, nodes: _Nodes) -> set:
    """Names read inside nested defs and lambdas: they may see a tensor later."""
    names: set = set()
    for n, _p, nested in nodes.walk_parents(node):
        if nested and isinstance(n, cst.Name):
            names.add(n.value)
    return names


def _use_problem(node, parent, nested: bool, name: str) -> Optional[str]:
    """None when this use of a holder only calls it with one tensor (or a harmless method)."""
    if nested:
        return f"`{name}` is used inside a nested function"
    if isinstance(parent, cst.Call) and parent.func is node:
        args = parent.args
        if len(args) == 1 and args[0].keyword is None and not args[0].star:
            return None
        return f"`{name}` is called with other than one tensor"
    if isinstance(parent, cst.Attribute) and parent.value is node and parent.attr.value in _SAFE_MODULE_METHODS:
        return None
    return f"`{name}` is used other than by calling it (indexed, iterated or passed on)"


def _self_attribute_owners(everything: list, nodes: _Nodes) -> dict:
    """id(`<self>.x` node) -> the class whose method it is in (its `self` is the method's first parameter);
    `everything`: the module's nodes."""
    owners: dict = {}
    for cls in everything:
        if isinstance(cls, cst.ClassDef):
            for method in _class_methods(cls):
                me = _first_param(method)
                for node in nodes.walk(method.body):
                    if _is_self_attr(node, me):
                        owners[id(node)] = cls
    return owners


def _imported_names(module: cst.Module, nodes: _Nodes) -> set:
    names: set = set()
    for node in nodes.walk(module):
        if isinstance(node, (cst.Import, cst.ImportFrom)) and not isinstance(node.names, cst.ImportStar):
            for alias in node.names:
                bound = alias.asname.name if alias.asname is not None else alias.name
                while isinstance(bound, cst.Attribute):
                    bound = bound.value
                if isinstance(bound, cst.Name):
                    names.add(bound.value)
    return names


def _mentions_inplace(call: cst.Call) -> bool:
    return any(a.keyword is not None and a.keyword.value == "inplace" for a in call.args)


def _sequential_elements(seq: cst.Call) -> Optional[list]:
    args = seq.args
    if all(a.keyword is None and not a.star for a in args):
        if len(args) == 1 and isinstance(args[0].value, cst.Call) and _is_ordered_dict(args[0].value.func):
            return _ordered_dict_values(args[0].value)
        return [a.value for a in args]
    if len(args) == 1 and args[0].star == "*" and isinstance(args[0].value, (cst.List, cst.Tuple)):
        elements = args[0].value.elements
        if all(isinstance(e, cst.Element) for e in elements):
            return [e.value for e in elements]
    return None


def _is_ordered_dict(func) -> bool:
    return (isinstance(func, cst.Name) and func.value == "OrderedDict") or (
        isinstance(func, cst.Attribute) and func.attr.value == "OrderedDict" and isinstance(func.value, cst.Name)
        and func.value.value == "collections")


def _ordered_dict_values(call: cst.Call) -> Optional[list]:
    if len(call.args) != 1 or call.args[0].keyword is not None or call.args[0].star:
        return None
    items = call.args[0].value
    if isinstance(items, (cst.List, cst.Tuple)):
        values = []
        for e in items.elements:
            if not isinstance(e, cst.Element) or not isinstance(e.value, cst.Tuple) or len(e.value.elements) != 2:
                return None
            values.append(e.value.elements[1].value)
        return values
    if isinstance(items, cst.Dict) and all(isinstance(e, cst.DictElement) for e in items.elements):
        return [e.value for e in items.elements]
    return None
