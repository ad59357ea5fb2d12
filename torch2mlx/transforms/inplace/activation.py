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
    - `F.<act>(arg, inplace=True)` with such an argument, or with a name read nowhere after the
      call (densenet: `out = F.relu(features, inplace=True)`, `features` not read again);
    - layers in a list unpacked into a Sequential (`layers = [...]`, `layers += [...]`,
      `.append`, `.extend`, then `nn.Sequential(*layers)`: vgg, mnasnet), when the list is only
      built, measured and unpacked into nn.Sequential: an in-place layer after a new-tensor layer
      of the same literal; a name bound once to a layer (`final_conv`) counts as that layer;
    - a Sequential returned or passed on (no holder): its in-place layers after a new-tensor layer
      (calling one of its layers alone by index, outside this file, is not followed);
    - a name assigned several modules (squeezenet's `self.features` per version): each is analysed
      and a call meets any of them; `self.features.add_module(name, layer)` under a name none of
      its layers has (densenet) appends: the Sequential's output is then the last layer's;
    - a subclass whose base classes are this file's classes that never use the attribute (swin);
    - an in-place module made only in `__init__` (which calls no method of the class), whose input layer another
      method swaps for one passing its input on, where that method swaps the in-place module out right after
      (ghostnet's `prune_intermediate_layers`: `self.bn1 = nn.Identity()`, then `self.act1 = nn.Identity()`): its
      calls are decided with the layers it can be with (`_overlays`);
    - a Sequential whose first layers are replaced by index from a list literal
      (`for idx, layer in enumerate(v1_stem): self.layers[idx] = layer`: mnasnet's version-1 stem): the sequence it
      then is (the list's layers, then its own from position len(list) on) is walked too (`_replaced_layers`);
    - a module built by a function of this file returning a torch layer (resnet's `conv3x3`), or
      by a parameter whose default is a torch layer class (`norm_layer`, nn.BatchNorm2d unless
      given): taken to return a new tensor or its input, with an info note on that assumption.
Left flagged (the table's `inplace` flag, with the reason) when
    the argument is a parameter of the function, or may be shared (`identity = x`, a view, a
    container, an unknown call), or is still read after the call; the holder is indexed,
    iterated or passed on, or its attribute is used outside the class; the module
    follows a layer the analysis does not know in a Sequential; an nn.Sequential subclass with
    attribute layers (its MLX class would call only the layers given to its constructor).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Optional

import libcst as cst

from torch2mlx.binding import Flag, bind
from torch2mlx.torch_facts import FRESH_METHODS, MODULE_BASES, PASS_THROUGH_OPS
from torch2mlx.transforms import Transform
from torch2mlx.transforms.module.layer_values import _registers_own_modules as registers_own_modules
from torch2mlx.transforms.inplace.flow import (
    INPLACE_METHODS, READING_BUILTINS, Callee, FunctionFlow,
)

RULE_ID = "nn-inplace-activation"
_POSITIONAL_TRUE = re.compile(r"[(,]\s*True\s*\)")
_SEQUENTIAL = frozenset({"torch.nn.Sequential", "torch.nn.modules.container.Sequential"})
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
    unknown_output: bool = False  # its value may be anything (a layer the analysis does not know comes last)
    keys: Optional[frozenset] = None  # the Sequential's layer names (`add_module` with another name appends)
    digit_keys: bool = False  # ... numbered 0, 1, ... (a Sequential of positional layers)
    assumed: set = field(default_factory=set)  # layer factories whose output its calls' freshness assumes
    layers: Optional[list] = None  # a Sequential's layers in order, where they are written out
    layers_scope: Optional["_Scope"] = None  # ... and the scope they were written in

    @property
    def has_acts(self) -> bool:
        return bool(self.safe or self.conditional or self.rejected)


class _Scope:
    """One body (a function's, or the module's): names bound once to a value, and lists of layers built only to
    be unpacked into an `nn.Sequential(*layers)` (vgg's `layers += [conv2d, nn.ReLU(inplace=True)]`)."""

    def __init__(self, nodes: "_Nodes", body: cst.CSTNode, params: set):
        self.single: dict = {}  # name -> the value of its only binding `name = value` (read anywhere else)
        self.lists: dict = {}   # name -> [the elements of each literal added to it], the initializer's first
        self.unpacked: dict = {}  # name -> the calls it is unpacked into (`nn.Sequential(*layers)`)
        self.bound: set = set(params)  # every name bound here
        uses: dict = {}
        parents: dict = {}
        for node, parent, nested in nodes.walk_parents(body):
            parents[id(node)] = parent
            if isinstance(node, cst.Name) and not _is_member_name(node, parent):
                uses.setdefault(node.value, []).append((node, parent, nested))
        for name, found in uses.items():
            stores = [(n, p) for n, p, _ in found if _is_store(n, p, parents)]
            if stores:
                self.bound.add(name)
            if name in params or any(nested for _n, _p, nested in found):
                continue
            if len(stores) == 1:
                value = _bound_value(*stores[0], parents)
                if value is not None:
                    self.single[name] = value
            pieces = _list_pieces(found, parents)
            if pieces is not None:
                self.lists[name] = pieces
                self.unpacked[name] = [parents[id(p)] for _n, p, _ in found if isinstance(p, cst.Arg) and p.star == "*"]


class _Analysis:
    """Decisions for one module: id(constructor or functional call) -> None (exact) or why not."""

    def __init__(self, rw, module: cst.Module):
        self.rw = rw
        self.decisions: dict = {}
        self.method_decisions: dict = {}  # id(`x.op_(...)`) -> None when no other reference sees x's tensor, else why
        self._method_keys: set = set()
        self.discarded: set = set()
        self.holder_calls: dict = {}  # id(holder) -> whys from the flows, one per call visit
        self.inline: dict = {}        # id(constructor called inline) -> Holder
        self.walked: set = set()      # ids of the nn.Sequential calls whose layers were walked
        self.nodes = _Nodes()
        self._scopes: dict = {}
        self._module_attributes: Optional[tuple] = None  # (imported names, every Attribute node), when first needed
        self.module_classes = {s.name.value: s for s in module.body if isinstance(s, cst.ClassDef)}
        self.assumed: dict = {}  # id(act constructor converted) -> layer factories its exactness assumes
        self.assumed_kinds: dict = {}  # id(class) -> {attribute: the parameter its layer is built by}
        self.overlays: dict = {}  # id(class) -> {holder name: kinds of the other layers while it is in place}
        self.factories: dict = {}
        self.factories = self._factories(module)
        functions: list = []
        _collect_functions(module, None, functions)
        everything = list(self.nodes.walk(module))
        self.attr_owner = _self_attribute_owners(everything, self.nodes)
        classes = {id(c): self._class_holders(c, module) for c in everything if isinstance(c, cst.ClassDef)}
        local = {id(f): self._local_holders(f) for f, _ in functions}
        self._flow(module.body, set(), _deferred_names(module, self.nodes), None, {}, {}, {}, self.scope_of(module),
                   module_level=True)
        for func, cls in functions:
            holders, kinds = classes[id(cls)] if cls is not None else ({}, {})
            self_name = _first_param(func) if cls is not None else None
            overlays = self.overlays.get(id(cls), {}) if cls is not None else {}
            skip = {id(holders[h]) for h in overlays}
            self._flow(func.body.body, _param_names(func), _deferred_names(func.body, self.nodes), self_name, holders,
                       kinds, local[id(func)], self.scope_of(func), self.assumed_kinds.get(id(cls)), skip=skip)
            for hname, overlay in overlays.items():  # that holder's calls, with the layers it can be with
                self._flow(func.body.body, _param_names(func), _deferred_names(func.body, self.nodes), self_name, holders,
                           overlay, local[id(func)], self.scope_of(func), self.assumed_kinds.get(id(cls)),
                           only=id(holders[hname]))
        for group in [*(h for h, _ in classes.values()), *local.values(), self.inline]:
            for holder in group.values():
                if holder is not None:
                    self._settle(holder)
        self._free_sequentials(module, [f for f, _ in functions])

    def scope_of(self, node) -> _Scope:
        found = self._scopes.get(id(node))
        if found is None:
            if isinstance(node, cst.FunctionDef):
                found = _Scope(self.nodes, node.body, _param_names(node))
            else:
                found = _Scope(self.nodes, node, set())
            for name, calls in found.unpacked.items():
                if any(self.rw.qualified_name(c.func) not in _SEQUENTIAL for c in calls):
                    del found.lists[name]  # `f(*layers)`: f may take the layers apart
            self._scopes[id(node)] = found
        return found

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

    def layer_kind(self, node, scope: Optional[_Scope] = None) -> Optional[str]:
        """'act' (in-place module), 'seq', 'fresh', 'pass' for a torch layer constructor, else None.
        A name bound once in `scope` to a 'fresh' or 'pass' layer (`final_conv = nn.Conv2d(...)`) is that layer."""
        if isinstance(node, cst.Name) and scope is not None and node.value in scope.single:
            kind = self.layer_kind(scope.single[node.value])
            return kind if kind in ("fresh", "pass") else None
        if not isinstance(node, cst.Call):
            return None
        func = node.func
        if isinstance(func, cst.Name) and func.value in self.factories and (scope is None or func.value not in scope.bound):
            return self.factories[func.value]  # `conv3x3(...)`: a function of this file returning an nn.Conv2d
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

    def class_kind(self, node) -> Optional[str]:
        """'fresh' or 'pass' for a torch layer class used as a value (`nn.BatchNorm2d`)."""
        qual = self.rw.qualified_name(node)
        if qual is None or not qual.startswith("torch.nn.") or qual.startswith("torch.nn.functional."):
            return None
        last = qual.rsplit(".", 1)[1]
        return "fresh" if last in _FRESH_LAYERS else "pass" if last in _PASS_LAYERS else None

    def _factories(self, module: cst.Module) -> dict:
        """Module-level functions whose every return is a torch layer constructor (resnet's `conv3x3`): name -> kind."""
        found: dict = {}
        for func in module.body:
            if not isinstance(func, cst.FunctionDef) or func.decorators:
                continue
            kinds = set()
            for node, _parent, nested in self.nodes.walk_parents(func.body):
                if isinstance(node, (cst.Yield, cst.Await)) and not nested:
                    kinds.add(None)
                elif isinstance(node, cst.Return) and not nested:
                    kinds.add(self.layer_kind(node.value) if node.value is not None else None)
            if kinds and kinds <= {"fresh", "pass"}:
                found[func.name.value] = "fresh" if kinds == {"fresh"} else "pass"
        names = [s.name.value for s in module.body if isinstance(s, (cst.FunctionDef, cst.ClassDef))]
        return {n: k for n, k in found.items() if names.count(n) == 1}

    def _factory_parameter(self, value, method: cst.FunctionDef) -> Optional[str]:
        """`P` for `norm_layer(planes)` where P is a parameter of `method` whose default (directly, or through
        `if P is None: P = nn.BatchNorm2d`) is a torch layer that makes a new tensor or returns its input."""
        if not isinstance(value, cst.Call) or not isinstance(value.func, cst.Name):
            return None
        name = value.func.value
        param = next((p for p in [*method.params.posonly_params, *method.params.params, *method.params.kwonly_params]
                      if p.name.value == name), None)
        if param is None or param.default is None:
            return None
        classes = [] if isinstance(param.default, cst.Name) and param.default.value == "None" else [param.default]
        for node in self.nodes.walk(method.body):
            if isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign, cst.For, cst.NamedExpr, cst.Del)):
                targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
                for t in targets:
                    if any(isinstance(n, cst.Name) and n.value == name for n in self.nodes.walk(t)):
                        if not (isinstance(node, cst.Assign) and t is node.targets[0].target and len(node.targets) == 1):
                            return None
                        classes.append(node.value)
            elif isinstance(node, (cst.Global, cst.Nonlocal, cst.FunctionDef, cst.Lambda)):
                return None
        if not classes or any(self.class_kind(c) is None for c in classes):
            return None
        return name

    # ----- holders ------------------------------------------------------------------------
    def holder_for(self, ctor, name: str, scope: Optional[_Scope] = None) -> Optional[Holder]:
        """The holder of an in-place module or of a Sequential (with or without in-place layers), else None."""
        kind = self.layer_kind(ctor, scope)
        if kind == "act":
            return Holder(name, mutates_input=True, conditional=[ctor])
        if kind != "seq":
            return None
        holder = Holder(name)
        state = self._sequential(ctor, "input", holder, scope)
        args = ctor.args
        if (len(args) == 1 and args[0].star == "*" and isinstance(args[0].value, cst.Name) and scope is not None
                and len(scope.lists.get(args[0].value.value, ())) == 1):
            holder.layers, holder.layers_scope = scope.lists[args[0].value.value][0], scope
        elif (elements := _sequential_elements(ctor)) is not None and not (len(args) == 1 and args[0].keyword is None
                                                                             and isinstance(args[0].value, cst.Call)):
            holder.layers, holder.layers_scope = elements, scope
        holder.fresh_output = state == "fresh"
        holder.unknown_output = state == "unknown"
        holder.keys, holder.digit_keys = _sequential_keys(ctor)
        return holder

    def _sequential(self, seq: cst.Call, state: str, holder: Holder, scope: Optional[_Scope]) -> str:
        """Walk the layers: `state` says whether the next layer's input is new, the Sequential's own, or unknown."""
        self.walked.add(id(seq))
        args = seq.args
        if (len(args) == 1 and args[0].star == "*" and isinstance(args[0].value, cst.Name) and scope is not None
                and args[0].value.value in scope.lists):
            pieces = scope.lists[args[0].value.value]
        else:
            elements = _sequential_elements(seq)
            if elements is None:
                holder.blocked = "the nn.Sequential's layers are not written out"
                return "unknown"
            pieces = [elements]
        for i, elements in enumerate(pieces):
            # a literal appended later follows whatever was added before it: not followed
            state = self._layers(elements, state if i == 0 else "unknown", holder, scope)
        return state if len(pieces) == 1 else "unknown"

    def _layers(self, elements: list, state: str, holder: Holder, scope: Optional[_Scope]) -> str:
        for el in elements:
            kind = self.layer_kind(el, scope)
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
                state = self._sequential(el, state, holder, scope)
            elif kind != "pass":
                state = "unknown"
        return state

    def _class_holders(self, cls: cst.ClassDef, module: cst.Module):
        """self.<name> holders of a class, and the kinds of its other layers."""
        holders: dict = {}
        kinds: dict = {}
        seq_class = self._sequential_class(cls, module)
        if seq_class is not None:
            return seq_class, kinds
        stores: dict = {}
        for method in _class_methods(cls):
            me = _first_param(method)
            for node in self.nodes.walk(method.body):
                if isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
                    targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
                    for t in targets:
                        if _is_self_attr(t, me):
                            stores.setdefault(t.attr.value, []).append((node.value, method))
        for name, values in stores.items():
            # each value stored under the name (squeezenet's `self.features` per version): a call meets any of them
            infos = []
            for value, method in values:
                scope = self.scope_of(method)
                kind = self.layer_kind(value, scope)
                infos.append(self.holder_for(value, f"self.{name}", scope) if kind in ("act", "seq") else kind)
            found = [i for i in infos if isinstance(i, Holder)]
            if any(h.has_acts for h in found):
                holders[name] = _merge(f"self.{name}", infos)
            elif all(i in ("fresh", "pass") or (isinstance(i, Holder) and not i.unknown_output) for i in infos):
                fresh = all(i == "fresh" or (isinstance(i, Holder) and i.fresh_output) for i in infos)
                kinds[name] = "fresh" if fresh else "pass"
            elif len(values) == 1 and (factory := self._factory_parameter(*values[0])) is not None:
                # resnet's `self.bn1 = norm_layer(planes)`: what the caller passes is not known; assumed to
                # return a new tensor or its input, as torch's norm layers do (an info on what relies on it)
                kinds[name] = "pass"
                self.assumed_kinds.setdefault(id(cls), {})[name] = factory
        if holders:
            self._check_class_uses(cls, module, holders)
            overlays = self._overlays(cls, holders, stores, kinds)
            if overlays:
                self.overlays[id(cls)] = overlays
        return holders, kinds

    def _overlays(self, cls: cst.ClassDef, holders: dict, stores: dict, kinds: dict) -> dict:
        """{holder name: the kinds of the class's other layers while that holder holds its in-place module}, where
        they differ from `kinds`. ghostnet's `prune_intermediate_layers` sets `self.bn1 = nn.Identity()` and at once
        `self.act1 = nn.Identity()`: while `self.act1` is the `nn.ReLU(inplace=True)` of `__init__`, `self.bn1` is
        the BatchNorm2d of `__init__`, whose output is a new tensor. An assignment of another layer is left out for
        a holder when the statements right after it in its block (only `self.<attr> = <layer or value>`, nothing
        called in between) set the holder to a layer that is not in place, in a method other than `__init__`; the
        holder gets its in-place module only in `__init__`, which calls no method of the class (one of them could
        otherwise set the other layer before the in-place one is made)."""
        methods = _class_methods(cls)
        init = next((m for m in methods if m.name.value == "__init__"), None)
        if init is None:
            return {}
        names = {m.name.value for m in methods}
        me = _first_param(init)
        for node in self.nodes.walk(init.body):
            if (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and _is_self_name(node.func.value, me)
                    and node.func.attr.value in names):
                return {}
        found: dict = {}
        for hname in holders:
            values = stores.get(hname, [])
            if any(self.layer_kind(v, self.scope_of(m)) in ("act", "seq") and m is not init for v, m in values):
                continue
            filtered: dict = {}
            changed = False
            for name, pairs in stores.items():
                if name in holders:
                    continue
                keep = [(v, m) for v, m in pairs if m is init or not self._superseded(v, m, hname)]
                changed |= len(keep) != len(pairs)
                filtered[name] = keep or pairs
            if changed:
                overlay = self._store_kinds(filtered)
                if overlay != {n: k for n, k in kinds.items() if n in overlay}:
                    found[hname] = {**kinds, **overlay}
        return found

    def _superseded(self, value, method: cst.FunctionDef, hname: str) -> bool:
        """`self.<attr> = value` in `method` is followed in its block, with only assignments of layers or values to
        attributes of self in between, by `self.<hname> = <a layer that is not in place>`."""
        me = _first_param(method)
        for block in self.nodes.walk(method.body):
            if not isinstance(block, cst.IndentedBlock):
                continue
            body = list(block.body)
            for i, stmt in enumerate(body):
                small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
                if not (isinstance(small, cst.Assign) and small.value is value):
                    continue
                for later in body[i + 1:]:
                    small = later.body[0] if isinstance(later, cst.SimpleStatementLine) and len(later.body) == 1 else None
                    if not (isinstance(small, cst.Assign) and len(small.targets) == 1 and _is_self_attr(small.targets[0].target, me)):
                        return False
                    kind = self.layer_kind(small.value, self.scope_of(method))
                    if small.targets[0].target.attr.value == hname:
                        return kind in ("fresh", "pass")
                    if kind is None and any(isinstance(n, cst.Call) for n in self.nodes.walk(small.value)):
                        return False
                return False
        return False

    def _store_kinds(self, stores: dict) -> dict:
        """'fresh' / 'pass' for attributes whose every stored value is a layer of that kind (as `_class_holders`)."""
        kinds: dict = {}
        for name, pairs in stores.items():
            infos = [self.layer_kind(v, self.scope_of(m)) for v, m in pairs]
            if all(i in ("fresh", "pass") for i in infos):
                kinds[name] = "fresh" if all(i == "fresh" for i in infos) else "pass"
        return kinds

    def _sequential_class(self, cls: cst.ClassDef, module: cst.Module) -> Optional[dict]:
        """`class T(nn.Sequential)` with only an `__init__` that assigns its layers to attributes in order
        (densenet's _Transition): Sequential's forward calls them in that order. {attribute: Holder} of
        its layers when one of them is in place, else None."""
        if len(cls.bases) != 1 or cls.keywords or self.rw.qualified_name(cls.bases[0].value) not in _SEQUENTIAL:
            return None
        methods = _class_methods(cls)
        body = cls.body.body if isinstance(cls.body, cst.IndentedBlock) else []
        if len(methods) != 1 or methods[0].name.value != "__init__" or methods[0].decorators:
            return None
        if any(s is not methods[0] and not _is_docstring_or_constant(s) for s in body):
            return None  # a class attribute may be `forward = ...`
        init = methods[0]
        me = _first_param(init)
        names, elements = [], []
        for stmt in init.body.body:
            small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
            if isinstance(small, cst.Expr) and _is_super_init(small.value):
                continue
            if (isinstance(small, cst.Assign) and len(small.targets) == 1 and _is_self_attr(small.targets[0].target, me)
                    and not any(_is_self_name(n, me) for n in self.nodes.walk(small.value))):
                names.append(small.targets[0].target.attr.value)
                elements.append(small.value)
            elif any(_is_self_name(n, me) for n in self.nodes.walk(stmt)):
                return None  # `self` used otherwise (a layer added in a branch, add_module, ...): not followed
        if len(set(names)) != len(names):
            return None
        holder = Holder(f"the nn.Sequential subclass {cls.name.value}")
        self._layers(elements, "input", holder, self.scope_of(init))
        if not holder.has_acts:
            return None
        for ctor in holder.conditional:  # its first layers see the caller's tensor
            holder.rejected[id(ctor)] = f"it is a first layer of the nn.Sequential subclass {cls.name.value}, which gets the caller's tensor"
        holder.conditional = []
        holder.mutates_input = False
        self._check_class_uses(cls, module, {name: holder for name in names}, sequential=True)
        # exact as torch: a Sequential subclass setting torch.nn layers on self derives from TorchSequential
        # (nn-layer-values), which runs them in the order they were set, as torch's Sequential does
        runs_attributes = registers_own_modules(self.rw, cls)
        for ctor in holder.safe:
            self.decisions[id(ctor)] = holder.blocked or (None if runs_attributes else (
                f"{cls.name.value} derives from nn.Sequential and assigns its layers as attributes; MLX's "
                "nn.Sequential calls only the layers given to its constructor: pass them to super().__init__()"))
        for key, why in holder.rejected.items():
            self.decisions[key] = why
        return {}  # its calls are Sequential calls of the class's instances, not of `self.<name>`

    def _base_problem(self, cls: cst.ClassDef, names: set, seen: set) -> Optional[str]:
        """None when every base class is nn.Module or a class of this file (its bases too) whose code never
        mentions the attributes `names`."""
        for base in cls.bases:
            if self.rw.qualified_name(base.value) in MODULE_BASES:
                continue
            other = self.module_classes.get(base.value.value) if isinstance(base.value, cst.Name) else None
            if other is None or other is cls or id(other) in seen:
                return "the class has a base class whose methods may use it"
            seen.add(id(other))
            if any(isinstance(n, cst.Attribute) and n.attr.value in names for n in self.nodes.walk(other)):
                return f"its base class {other.name.value} uses the attribute"
            why = self._base_problem(other, names, seen)
            if why is not None:
                return why
        return None

    def _check_class_uses(self, cls, module, holders: dict, sequential: bool = False) -> None:
        if cls.bases and not sequential:
            why = self._base_problem(cls, set(holders), set())
            if why is not None:
                for h in holders.values():
                    h.blocked = why
        appended: dict = {}  # holder name -> [(add_module call, its method, its statement)]
        for method in _class_methods(cls):
            me = _first_param(method)
            parents: dict = {}
            for node, parent, nested in self.nodes.walk_parents(method.body):
                parents[id(node)] = parent
                if _is_self_attr(node, me) and node.attr.value in holders and not isinstance(parent, cst.AssignTarget):
                    holder = holders[node.attr.value]
                    call = parents.get(id(parent))
                    if (not nested and isinstance(parent, cst.Attribute) and parent.value is node
                            and parent.attr.value == "add_module" and isinstance(call, cst.Call) and call.func is parent):
                        why = _add_module_problem(call, holder, parents)
                        if why is None:
                            appended.setdefault(node.attr.value, []).append((call, method, parents.get(id(parents[id(call)]))))
                    elif (not nested and isinstance(parent, cst.Subscript) and parent.value is node
                          and (loop := _replacing_loop(parent, parents)) is not None):
                        why = self._replaced_layers(holder, loop, method)
                    else:
                        why = _use_problem(node, parent, nested, f"self.{node.attr.value}")
                    if why is not None:
                        holder.blocked = why
        for name, calls in appended.items():
            self._after_add_module(holders[name], calls)
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

    def _replaced_layers(self, holder: Holder, loop: cst.For, method: cst.FunctionDef) -> Optional[str]:
        """None when `for idx, layer in enumerate(stem): self.layers[idx] = layer` (torchvision's mnasnet, loading a
        version-1 checkpoint) leaves every in-place layer of the Sequential after one that makes a new tensor: `stem`
        is a list literal bound once in the method and only enumerated here, so the Sequential becomes its layers
        followed by its own from position len(stem) on; that sequence is walked as `_sequential` walks one. The
        stem's in-place layers are decided by the same walk. Else why not."""
        what = f"`{holder.name}` has layers replaced by index"
        if holder.layers is None or holder.conditional:
            return what
        scope = self.scope_of(method)
        stem_name = loop.iter.args[0].value.value
        stem = scope.single.get(stem_name)
        uses = [n for n in self.nodes.walk(method.body) if isinstance(n, cst.Name) and n.value == stem_name]
        elements = _list_elements(stem)
        if elements is None or len(uses) != 2 or len(elements) > len(holder.layers):
            return what + " from other than a list literal enumerated once"
        combined = Holder(holder.name)
        state = self._layers(elements, "input", combined, scope)
        tail = holder.layers[len(elements):]
        self._layers(tail, state, combined, holder.layers_scope)
        if combined.conditional or combined.rejected:
            return what + ": then an in-place layer follows one whose output may be shared"
        kept = {id(e) for e in tail}
        for ctor in holder.safe:
            if id(ctor) in kept and not any(c is ctor for c in combined.safe):
                return what + ": then an in-place layer follows one whose output may be shared"
        for ctor in combined.safe:
            if id(ctor) not in kept:
                self.decisions[id(ctor)] = None
        return None

    def _after_add_module(self, holder: Holder, calls: list) -> None:
        """What the Sequential returns once layers are appended: the last one's output, when the last
        `add_module` is a statement of `__init__`'s own body (densenet's `add_module("norm5", BatchNorm2d(...))`)."""
        holder.fresh_output = False
        holder.unknown_output = True
        call, method, line = calls[-1]
        if method.name.value == "__init__" and any(s is line for s in method.body.body):
            kind = self.layer_kind(call.args[1].value, self.scope_of(method))
            holder.fresh_output = kind == "fresh"
            holder.unknown_output = kind != "fresh"

    def _local_holders(self, func: cst.FunctionDef) -> dict:
        holders: dict = {}
        stores: dict = {}
        for node in self.nodes.walk(func.body):
            if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
                stores.setdefault(node.targets[0].target.value, []).append(node)
        for name, assigns in stores.items():
            holder = self.holder_for(assigns[0].value, name, self.scope_of(func))
            if holder is None or not holder.has_acts:
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

    def _free_sequentials(self, module: cst.Module, functions: list) -> None:
        """nn.Sequentials no holder or call reaches (returned, passed to a constructor): an in-place layer after
        one that makes a new tensor is exact wherever the Sequential goes; one that sees its input is not."""
        for owner in [module, *functions]:
            body = owner.body if isinstance(owner, cst.FunctionDef) else owner
            for node, _parent, nested in self.nodes.walk_parents(body):
                if nested or not isinstance(node, cst.Call) or id(node) in self.walked or self.layer_kind(node) != "seq":
                    continue
                holder = Holder("the nn.Sequential")
                self._sequential(node, "input", holder, self.scope_of(owner))
                for ctor in holder.safe:
                    self.decisions.setdefault(id(ctor), None)
                for ctor in holder.conditional:
                    self.decisions.setdefault(id(ctor), "it is a first layer of an nn.Sequential whose calls are not followed")
                for key, why in holder.rejected.items():
                    self.decisions.setdefault(key, why)

    # ----- the flow over one body ----------------------------------------------------------
    def _flow(self, body, params, pinned, self_name, holders, kinds, local, scope, assumed_kinds=None,
              module_level: bool = False, skip: frozenset = frozenset(), only: Optional[int] = None) -> None:
        """Decisions of one body's flow; the calls of the holders in `skip` are decided by another run, and a run
        with `only` (a holder's id, under the kinds `_overlays` gives it) decides that holder's calls alone."""
        used: set = set()  # the assumed layer factories the flow relied on

        def holder_of(func) -> Optional[Holder]:
            if isinstance(func, cst.Call) and self.layer_kind(func) in ("act", "seq"):
                if id(func) not in self.inline:
                    holder = self.holder_for(func, "the module", scope)
                    self.inline[id(func)] = holder if holder is not None and holder.has_acts else None
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
                    return Callee("act", call.args[0].value, holder.fresh_output, id(holder), unknown_output=holder.unknown_output)
                if holder.unknown_output:
                    return Callee("unknown")
                return Callee("fresh" if holder.fresh_output else "pass")
            if _is_self_attr(func, self_name):
                if assumed_kinds and func.attr.value in assumed_kinds:
                    used.add(f"self.{func.attr.value} (built by `{assumed_kinds[func.attr.value]}`)")
                return Callee(kinds.get(func.attr.value, "unknown"))
            qual, rule = self.rule_of(call)
            if qual is not None:
                bound = self.inplace_bound(rule, call)
                if bound is not None and bound.get("input") is not None:
                    return Callee("act", bound.get("input"), False, id(call))
                return Callee("pass" if qual.rsplit(".", 1)[-1] in PASS_THROUGH_OPS else "fresh" if qual.startswith("torch.") else "unknown")
            if isinstance(func, cst.Attribute):
                method = func.attr.value
                if method in INPLACE_METHODS and method != "set_":  # `x.set_(y)`: x then shares y's storage
                    self._method_keys.add(id(call))
                    return Callee("act", func.value, False, id(call), method=True)
                if method in PASS_THROUGH_OPS:
                    return Callee("pass", receiver=True)
                return Callee("fresh" if method in FRESH_METHODS else "method")
            if isinstance(func, cst.Name) and func.value in READING_BUILTINS:
                return Callee("fresh")
            return Callee("unknown")

        # liveness within a function only: another module may import a module-level name and read it later
        flow = FunctionFlow(classify, params, pinned, () if module_level else body)
        flow.block(body)
        holder_ids = {id(h) for group in (holders, local, self.inline) for h in group.values() if h is not None}
        for key, whys in flow.decisions.items():
            bad = next((w for w in whys if w is not None), None)
            if (only is not None and key != only) or key in skip:
                continue
            if key in holder_ids:
                self.holder_calls.setdefault(key, []).append(bad)
                if bad is None:
                    next(h for group in (holders, local, self.inline) for h in group.values()
                         if h is not None and id(h) == key).assumed |= used
            elif key in self._method_keys:
                self.method_decisions[key] = bad
            elif self.decisions.get(key) is None:
                self.decisions[key] = bad
        if only is None:
            self.discarded |= flow.discarded

    def _settle(self, holder: Holder) -> None:
        call_why = next((w for w in self.holder_calls.get(id(holder), []) if w is not None), None)
        for ctor in holder.safe:
            self.decisions[id(ctor)] = holder.blocked
        for ctor in holder.conditional:
            why = holder.blocked or (None if call_why is None else f"a call of {holder.name}: {call_why}")
            self.decisions[id(ctor)] = why
            if why is None and holder.assumed:
                self.assumed[id(ctor)] = sorted(holder.assumed)
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
        assumed = analysis.assumed.get(id(original))
        flag_value = bound.get("inplace")
        args = [a for a in updated.args if a.value is not flag_value]
        if len(args) == len(updated.args):
            return updated
        if args:
            args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        rw.drop_flags(original)
        result = rw.apply_rule(rule, original, updated.with_changes(args=args))
        if assumed:
            rw.flag(original, RULE_ID, "needs-review",
                    f"inplace=True dropped assuming that {', '.join(assumed)} return a new tensor or their input, as torch's "
                    "layers do; a layer keeping or returning another reference would see torch's in-place update",
                    severity="info")
        return result

    def leave_Expr(self, rw, original, updated):
        """`F.relu(x, inplace=True)` as a statement: the update of `x` was the point."""
        call = original.value
        analysis = self.analysis
        if (analysis is None or not isinstance(updated, cst.Expr) or id(call) not in analysis.discarded
                or analysis.decisions.get(id(call), "") is not None):
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


def _replacing_loop(subscript: cst.Subscript, parents: dict) -> Optional[cst.For]:
    """The loop `for idx, layer in enumerate(stem): <holder>[idx] = layer` (its only statement) whose assignment
    target `subscript` is, else None."""
    target = parents.get(id(subscript))
    assign = parents.get(id(target))
    line = parents.get(id(assign))
    block = parents.get(id(line))
    loop = parents.get(id(block))
    if not (isinstance(target, cst.AssignTarget) and isinstance(assign, cst.Assign) and len(assign.targets) == 1
            and isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1 and isinstance(block, cst.IndentedBlock)
            and len(block.body) == 1 and isinstance(loop, cst.For) and loop.orelse is None and loop.asynchronous is None):
        return None
    it, names = loop.iter, loop.target
    if not (isinstance(it, cst.Call) and isinstance(it.func, cst.Name) and it.func.value == "enumerate" and len(it.args) == 1
            and it.args[0].keyword is None and not it.args[0].star and isinstance(it.args[0].value, cst.Name)):
        return None
    if not (isinstance(names, cst.Tuple) and len(names.elements) == 2
            and all(isinstance(e.value, cst.Name) for e in names.elements)):
        return None
    idx, layer = (e.value.value for e in names.elements)
    index = subscript.slice[0].slice if len(subscript.slice) == 1 else None
    if not (isinstance(index, cst.Index) and isinstance(index.value, cst.Name) and index.value.value == idx
            and isinstance(assign.value, cst.Name) and assign.value.value == layer and idx != layer):
        return None
    return loop


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


_TARGET_OWNERS = (cst.AssignTarget, cst.AnnAssign, cst.AugAssign, cst.For, cst.CompFor, cst.NamedExpr, cst.Del)


def _is_store(node: cst.Name, parent, parents: dict) -> bool:
    """Whether this occurrence of a name binds it (a target, a parameter, an import, global/nonlocal, a def)."""
    child = node
    while isinstance(parent, (cst.Element, cst.StarredElement, cst.Tuple, cst.List)):
        child, parent = parent, parents.get(id(parent))
    if isinstance(parent, _TARGET_OWNERS):
        return parent.target is child
    if isinstance(parent, (cst.AsName, cst.Param, cst.FunctionDef, cst.ClassDef)):
        return parent.name is child
    return isinstance(parent, (cst.NameItem, cst.ImportAlias))


def _bound_value(node: cst.Name, parent, parents: dict):
    """The value of `name = value` / `name: T = value` where this occurrence is the only target, else None."""
    if isinstance(parent, cst.AssignTarget) and parent.target is node:
        assign = parents.get(id(parent))
        return assign.value if isinstance(assign, cst.Assign) and len(assign.targets) == 1 else None
    if isinstance(parent, cst.AnnAssign) and parent.target is node:
        return parent.value
    return None


def _list_elements(node) -> Optional[list]:
    if not isinstance(node, cst.List) or not all(isinstance(e, cst.Element) for e in node.elements):
        return None
    return [e.value for e in node.elements]


def _list_pieces(found: list, parents: dict) -> Optional[list]:
    """The literals a list of layers is built from, the initializer's first, when the list is only built
    (`= [...]`, `+= [...]`, `.append(layer)`, `.extend([...])`), measured (`len`) and unpacked into calls."""
    init = None
    pieces: list = []
    for node, parent, _nested in found:
        grand = parents.get(id(parent))
        value = _bound_value(node, parent, parents)
        if value is not None:
            if init is not None:
                return None
            init = _list_elements(value)
            if init is None:
                return None
        elif isinstance(parent, cst.AugAssign) and parent.target is node and isinstance(parent.operator, cst.AddAssign):
            piece = _list_elements(parent.value)
            if piece is None:
                return None
            pieces.append(piece)
        elif (isinstance(parent, cst.Attribute) and parent.value is node and parent.attr.value in ("append", "extend")
              and isinstance(grand, cst.Call) and grand.func is parent and isinstance(parents.get(id(grand)), cst.Expr)
              and len(grand.args) == 1 and grand.args[0].keyword is None and not grand.args[0].star):
            piece = [grand.args[0].value] if parent.attr.value == "append" else _list_elements(grand.args[0].value)
            if piece is None:
                return None
            pieces.append(piece)
        elif isinstance(parent, cst.Arg) and parent.value is node and isinstance(grand, cst.Call) and (
                (parent.star == "*" and len(grand.args) == 1)
                or (parent.star == "" and isinstance(grand.func, cst.Name) and grand.func.value == "len")):
            continue  # which calls may unpack it is checked where the call is (`nn.Sequential(*layers)` only)
        else:
            return None
    return None if init is None else [init, *pieces]


def _merge(name: str, infos: list) -> Holder:
    """One holder for a name assigned several modules (each a Holder, 'fresh', 'pass' or None: unknown)."""
    merged = Holder(name)
    holders = [i for i in infos if isinstance(i, Holder)]
    for h in holders:
        merged.mutates_input |= h.mutates_input
        merged.safe += h.safe
        merged.conditional += h.conditional
        merged.rejected.update(h.rejected)
        merged.blocked = merged.blocked or h.blocked
    merged.fresh_output = all(i == "fresh" or (isinstance(i, Holder) and i.fresh_output) for i in infos)
    merged.unknown_output = any((isinstance(i, Holder) and i.unknown_output) or (not isinstance(i, Holder) and i not in ("fresh", "pass"))
                                for i in infos)
    if len(infos) == 1:
        merged.keys, merged.digit_keys = holders[0].keys, holders[0].digit_keys
        merged.layers, merged.layers_scope = holders[0].layers, holders[0].layers_scope
    return merged


def _sequential_keys(seq: cst.Call) -> tuple:
    """(the layer names when literal, whether they are the numbers 0, 1, ...) of an nn.Sequential call."""
    args = seq.args
    if all(a.keyword is None and not a.star for a in args):
        if len(args) == 1 and isinstance(args[0].value, cst.Call) and _is_ordered_dict(args[0].value.func):
            items = args[0].value.args[0].value if len(args[0].value.args) == 1 else None
            keys = []
            for e in items.elements if isinstance(items, (cst.List, cst.Tuple)) else []:
                key = e.value.elements[0].value if isinstance(e.value, cst.Tuple) and e.value.elements else None
                keys.append(key.evaluated_value if isinstance(key, cst.SimpleString) else None)
            return (frozenset(keys), False) if keys and None not in keys else (None, False)
        return frozenset(str(i) for i in range(len(args))), True
    return None, True


def _literal_prefix(node) -> str:
    """The text a layer name surely starts with: `"norm5"`, `"denseblock%d" % i`, `f"block{i}"`."""
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return value if isinstance(value, str) else ""
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo) and isinstance(node.left, cst.SimpleString):
        value = node.left.evaluated_value
        return value.split("%", 1)[0] if isinstance(value, str) else ""
    if isinstance(node, cst.FormattedString) and node.parts and isinstance(node.parts[0], cst.FormattedStringText):
        return node.parts[0].value.split("{", 1)[0].split("\\", 1)[0]
    return ""


def _add_module_problem(call: cst.Call, holder: Holder, parents: dict) -> Optional[str]:
    """None when `self.x.add_module(name, layer)` appends a layer: a name none of its layers has. With the name
    of a layer it would replace that layer in place, perhaps the one an in-place layer relies on."""
    args = call.args
    if len(args) != 2 or any(a.keyword is not None or a.star for a in args) or not isinstance(parents.get(id(call)), cst.Expr):
        return f"`{holder.name}.add_module` is called with other than a name and a layer"
    prefix = _literal_prefix(args[0].value)
    if prefix and holder.digit_keys and not prefix[0].isdigit():
        return None
    if prefix and holder.keys is not None and not any(k.startswith(prefix) for k in holder.keys):
        return None
    return f"`{holder.name}.add_module` gets a name that may be one of its layers' (the layer would be replaced)"


def _is_super_init(node) -> bool:
    """`super().__init__()`"""
    return (isinstance(node, cst.Call) and not node.args and isinstance(node.func, cst.Attribute)
            and node.func.attr.value == "__init__" and isinstance(node.func.value, cst.Call)
            and isinstance(node.func.value.func, cst.Name) and node.func.value.func.value == "super" and not node.func.value.args)


def _is_self_name(node, me: Optional[str]) -> bool:
    return me is not None and isinstance(node, cst.Name) and node.value == me


def _is_docstring_or_constant(stmt) -> bool:
    """A docstring or `name = <number or string>` in a class body."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return False
    small = stmt.body[0]
    if isinstance(small, cst.Expr):
        return isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString))
    return (isinstance(small, (cst.Assign, cst.AnnAssign)) and isinstance(small.value, (cst.Integer, cst.Float, cst.SimpleString))
            and all(isinstance(t.target, cst.Name) for t in getattr(small, "targets", [small])))


def _is_member_name(node: cst.Name, parent) -> bool:
    """`x` in `self.x` or in `f(x=1)`: a member or keyword, not a variable."""
    return (isinstance(parent, cst.Attribute) and parent.attr is node) or (isinstance(parent, cst.Arg) and parent.keyword is node)
