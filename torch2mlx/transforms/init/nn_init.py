"""Weight-initialisation code -> MLX: `nn.init.*_`, `.data.normal_()`, `self.apply(fn)`, isinstance checks.

MLX arrays are immutable, but assigning an array to a module member replaces the parameter
(`self.fc.weight = ...`, `module.bias = ...` on a module from `self.modules()`), so an in-place
initialiser used as a statement becomes `<member> = <new array of the same shape and dtype>`:

- `nn.init.<fn>_(member, ...)` (and torch's deprecated names without `_`), see `calls`:
  zeros_, ones_, constant_, normal_, uniform_ (half-open, as torch), xavier_* (fan_in + fan_out,
  the same in both layouts), kaiming_* -> `nn.init.he_*(t.dtype)(t, mode=..., gain=...)` with
  torch's calculate_gain computed here from literal arguments (MLX's default gain is 1.0, torch's
  sqrt(2)) where the weight's layer is known to have torch's fans (not ConvTranspose),
  trunc_normal_ -> `mean + std * mx.random.truncated_normal((a-mean)/std, (b-mean)/std, ...)` (a computed
  mean or std, read three times there, is bound once by `(lambda std_: ...)(<expression>)`),
  orthogonal_ and eye_ for Linear/Embedding (orthogonal_ also Conv) weights; dirac_ is flagged.
- `m.weight.data.normal_(...)`, `.uniform_`, `.zero_()`, `.fill_(v)`, `.copy_(src)` on a member,
  see `methods`.
- `self.apply(fn)` -> `for module in reversed(self.modules()): fn(module)`, see `apply`.
- `isinstance(m, nn.Linear)` and `m.bias is not None` on a known layer, see `classes`.
A trailing `.data` on the target is dropped (`m.weight.data` is `m.weight`).

Random values come from MLX's own random stream: the same distribution as torch, not torch's
numbers (load torch's weights with `load_torch_weights` for equal outputs).

**Left flagged**: the call's value used in an expression, a target that is not an attribute
(`nn.init.zeros_(w)` rebinding a local name would not reach the module), `generator=`,
layout-dependent initialisers on a weight whose layer is unknown, and other initialisers.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import argument_code, code_of
from torch2mlx.transforms import Transform
from torch2mlx.transforms.init.apply import APPLY_RULE, apply_loop, apply_loop_parts, loop_variable, names_used
from torch2mlx.transforms.init.calls import ALIASES, INITS
from torch2mlx.transforms.init.classes import (
    OPTIONAL_KEYS, class_arguments, class_value, key_check, optional_member_check, type_comparison_class)
from torch2mlx.transforms.init.layers import PARAMETER, LayerFacts
from torch2mlx.transforms.init.methods import RANDOM_FILLS, data_receiver, member_target, method_value
from torch2mlx.transforms.codegen import mlx_expr

_PREFIX = "torch.nn.init."
_HINTS = ("init", "apply", "isinstance", "type(", "_(", "bias", "weight")


def _drop_findings(rw, node, rule_id=None) -> None:
    rw.drop_flags(node, rule_id=rule_id)


class NnInitTransform(Transform):
    id = "nn-init"
    description = "weight-initialisation statements, module.apply(fn) and layer isinstance checks -> MLX"
    order = 150  # last: replaces a whole line (self.apply) after the others have seen it
    hot_attributes = ("normal_", "uniform_", "zero_", "fill_", "copy_", "bias", "weight", "apply")

    def __init__(self) -> None:
        self.facts = LayerFacts()
        self.functions: list = []          # enclosing FunctionDef nodes
        self.statement_calls: set = set()   # ids of calls that are whole expression statements
        self.class_refs: set = set()        # ids of class expressions in isinstance()/type() checks
        self.hub_init: frozenset = frozenset()
        self.loops: dict = {}               # id(Expr) -> (receiver, fn, variable) for self.apply(fn)

    def prepare(self, tree, module_scope) -> None:
        # `from transformers import initialization as init` with the hub option (the names the stand-in has)
        self.hub_init = frozenset(n for n, stand_in in module_scope.hub_names.items() if stand_in == "initialization")

    def applies_to(self, text: str) -> bool:
        return any(hint in text for hint in _HINTS)

    # ----- what is known about layers ------------------------------------------------------
    def visit_ClassDef(self, rw, node) -> None:
        self.facts.visit_ClassDef(rw, node)

    def leave_ClassDef(self, rw, original, updated):
        self.facts.leave_ClassDef()
        return updated

    def visit_FunctionDef(self, rw, node) -> None:
        self.facts.visit_FunctionDef()
        self.functions.append(node)

    def leave_FunctionDef(self, rw, original, updated):
        self.facts.leave_FunctionDef()
        self.functions.pop()
        return updated

    def visit_If(self, rw, node) -> None:
        self.facts.visit_If(rw, node)

    def visit_IndentedBlock(self, rw, node) -> None:
        self.facts.visit_IndentedBlock(node)

    def leave_IndentedBlock(self, rw, original, updated):
        self.facts.leave_IndentedBlock()
        return updated

    def _layer_of(self, target: cst.Attribute, rw):
        """Torch classes of the module owning `target` (`m.weight`), {Parameter} for `self.<param>`."""
        classes = self.facts.classes_of(target, rw)
        if classes == {PARAMETER}:
            return classes
        return self.facts.classes_of(target.value, rw) if target.attr.value == "weight" else None

    # ----- layer classes in checks ---------------------------------------------------------
    def visit_Call(self, rw, node) -> None:
        self.class_refs.update(id(c) for c in class_arguments(node))

    def visit_Comparison(self, rw, node) -> None:
        cls = type_comparison_class(node)
        if cls is not None:
            self.class_refs.add(id(cls))

    def leave_Attribute(self, rw, original, updated):
        return self._class_ref(rw, original, updated)

    def leave_Name(self, rw, original, updated):
        return self._class_ref(rw, original, updated)

    def _class_ref(self, rw, original, updated):
        if id(original) not in self.class_refs or not isinstance(updated, (cst.Name, cst.Attribute)):
            return updated
        mlx = class_value(rw, original)
        if mlx is None:
            return updated
        _drop_findings(rw, original)
        rw.count_conversion()
        return mlx_expr(rw, mlx)

    def leave_Comparison(self, rw, original, updated):
        found = optional_member_check(original)
        if found is None or not isinstance(updated, cst.Comparison):
            return updated
        module, member, present = found
        classes = self.facts.classes_of(module, rw)
        if classes is None or not classes <= OPTIONAL_KEYS:
            return updated
        rw.count_conversion()
        return key_check(updated, member, present)

    # ----- initialiser statements ----------------------------------------------------------
    def visit_Expr(self, rw, node) -> None:
        if isinstance(node.value, cst.Call):
            self.statement_calls.add(id(node.value))

    def leave_Call(self, rw, original, updated):
        func = original.func
        if (isinstance(func, cst.Attribute) and func.attr.value in RANDOM_FILLS
                and id(original) not in self.statement_calls and rw.qualified_name(func.value) is None):
            rw.flag(original, f"torch.Tensor.{func.attr.value}", "semantics-differ",
                    f"the value of `.{func.attr.value}()` is used; MLX arrays are immutable: assign a new array")
        return updated

    def leave_Expr(self, rw, original, updated):
        call = original.value
        if isinstance(call, cst.IfExp) and isinstance(updated, cst.Expr) and isinstance(updated.value, cst.IfExp):
            return self._conditional(rw, original, updated)
        if not isinstance(call, cst.Call) or not isinstance(updated, cst.Expr) or not isinstance(updated.value, cst.Call):
            return updated  # (an Expr that inplace-op already made an assignment: `tensor[...] = mx.random.uniform(...)`)
        qual = rw.qualified_name(call.func) or ""
        if qual.startswith(_PREFIX):
            return self._init_function(rw, original, updated, qual[len(_PREFIX):])
        if isinstance(call.func, cst.Attribute) and rw.qualified_name(call.func.value) is None:
            if any(f.node is call and f.rule_id == APPLY_RULE for f in rw.flags()):
                return self._apply(rw, original, updated)
            return self._method(rw, original, updated)
        return updated

    def _conditional(self, rw, original, updated):
        """`nn.init.normal_(m.bias, std=1e-6) if 'mlp' in name else nn.init.zeros_(m.bias)` as a statement (timm's
        init_weights_vit_jax): Python evaluates the test, then one branch, whose value is dropped; both branches
        initialise the same member, so it is `m.bias = <first value> if <test> else <second value>`, which evaluates
        the test and then the one branch's new array, as torch runs the one initialiser."""
        parts = []
        before = rw.flags()
        for branch, new in ((original.value.body, updated.value.body), (original.value.orelse, updated.value.orelse)):
            qual = rw.qualified_name(branch.func) if isinstance(branch, cst.Call) else None
            result = None
            if qual is not None and qual.startswith(_PREFIX) and isinstance(new, cst.Call):
                result = self._init_function(rw, cst.Expr(branch), cst.Expr(new), qual[len(_PREFIX):])
            parts.append(result if isinstance(result, cst.Assign) else None)
        targets = {code_of(p.targets[0].target) for p in parts if p is not None}
        if None in parts or len(targets) != 1:
            # as the statement was: its findings as they were (a branch translated alone dropped its own)
            rw.drop_flags()
            for f in before:
                rw.flag(f.node, f.rule_id, f.kind, f.message, f.severity)
            return updated
        value = updated.value.with_changes(body=parts[0].value, orelse=parts[1].value)
        return cst.Assign([cst.AssignTarget(parts[0].targets[0].target)], value, semicolon=updated.semicolon)

    def _init_function(self, rw, original, updated, name):
        call = original.value
        name = ALIASES.get(name, name)
        if (name == "copy_" and isinstance(call.func, cst.Attribute) and isinstance(call.func.value, cst.Name)
                and call.func.value.value in self.hub_init and updated.value.args and updated.value.args[0].keyword is None):
            # transformers' init.copy_(t, src) is t.copy_(src) under no_grad (on a tensor not loaded from a checkpoint,
            # as the hub's other init functions): the method's translation, layout check included
            method_call = updated.value.with_changes(func=cst.Attribute(updated.value.args[0].value, cst.Name("copy_")),
                                                     args=updated.value.args[1:])
            result = self._method(rw, original, updated.with_changes(value=method_call))
            return result if isinstance(result, cst.Assign) else updated  # untranslated: the call as written
        if name not in INITS or not updated.value.args:
            return updated
        signature, build = INITS[name]
        first = updated.value.args[0]
        value = first.value
        source_first = call.args[0].value if call.args else None
        if (isinstance(source_first, cst.Attribute) and source_first.attr.value == "data" and isinstance(value, cst.Call)
                and len(value.args) == 1 and value.args[0].keyword is None and not value.args[0].star):
            value = value.args[0].value  # `m.weight.data` the table wrote `mx.stop_gradient(m.weight)`: the member
        target = member_target(value) if first.keyword is None else None
        args = argument_code(updated.value.args, signature)
        if args is None or target is None:
            return updated
        args["t"] = code_of(target)
        text, why = build(args, self._layer_of(target, rw))
        if text is None:
            _drop_findings(rw, call)
            rw.flag(call, f"{_PREFIX}{name}", "semantics-differ", why)
            return updated
        _drop_findings(rw, call)
        rw.count_conversion()
        return cst.Assign([cst.AssignTarget(target)], mlx_expr(rw, text), semicolon=updated.semicolon)

    def _method(self, rw, original, updated):
        call = original.value
        method = call.func.attr.value
        found = method_value(data_receiver(call, updated.value))
        if found is None:
            if method in RANDOM_FILLS:
                rw.flag(call, f"torch.Tensor.{method}", "semantics-differ",
                        f"`.{method}()` is translated only as a statement on a module member "
                        "(`m.weight.data.normal_(...)`) with mean/std or from/to arguments")
            return updated
        target, text = found
        if method == "copy_" and target.attr.value == "weight":
            classes = self._layer_of(target, rw)
            if classes is None or any("Conv" in c for c in classes):
                _drop_findings(rw, call)  # one flag for this statement: the layout is the root cause
                rw.flag(call, "torch.Tensor.copy_", "semantics-differ",
                        f"copying a tensor in torch's layout into `{code_of(target)}`: an MLX convolution weight is "
                        "(out, *kernel, in) where torch's is (out, in, *kernel); move the axes "
                        "(mx.moveaxis(src, 1, -1)) for a convolution, or assign it as is for other layers")
                return updated
        _drop_findings(rw, call)
        rw.count_conversion()
        return cst.Assign([cst.AssignTarget(target)], mlx_expr(rw, text), semicolon=updated.semicolon)

    # ----- self.apply(fn) ------------------------------------------------------------------
    def _apply(self, rw, original, updated):
        parts = apply_loop_parts(updated.value)
        if parts is None or not self.functions:
            return updated
        variable = loop_variable(names_used(self.functions[-1]))
        if variable is None:
            return updated
        _drop_findings(rw, original.value, APPLY_RULE)
        rw.count_conversion()
        self.loops[id(updated)] = (*parts, variable)
        return updated

    def leave_SimpleStatementLine(self, rw, original, updated):
        if len(updated.body) != 1 or id(updated.body[0]) not in self.loops:
            return updated
        return apply_loop(updated, *self.loops.pop(id(updated.body[0])))
