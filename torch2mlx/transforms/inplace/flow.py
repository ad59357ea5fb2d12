"""Which tensors no other reference can see: the flow analysis behind `nn-inplace-activation`.

An in-place activation (`nn.ReLU(inplace=True)`, `F.relu(x, inplace=True)`) changes the
tensor object it gets, so every other reference to that object sees the change. Dropping
`inplace=True` is exact only where no other reference exists. `FunctionFlow` walks one
function in order and tracks, for each local name, whether the tensor it holds is *fresh*:
made by an operator or a call that returns a new tensor in this function, and not copied to
another name, container or unknown call since. At each in-place call it records a decision:
None (exact) or why not. Branches meet (fresh only if fresh on every path), loops run to a
fixed point, `try`/`match` forget everything; anything unknown counts as shared. A name whose
tensor is updated may still be read later; the update is exact without rebinding it when nothing
reads it after the call (its last occurrence in the function, outside loops). In-place Tensor
methods (`x.add_(y)`, `x[a:b].zero_()`) get a decision too: whether the receiver's tensor is
unshared (the `inplace-op` transform rewrites them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import libcst as cst

from torch2mlx.array_facts import TORCH_TENSOR_MEMBERS
from torch2mlx.binding import code_of
from torch2mlx.torch_facts import VALUE_ATTRIBUTES

SCALAR_ATTRS = VALUE_ATTRIBUTES | {"training"}  # ... and a module's mode
# builtins that read their argument and keep no reference to it
READING_BUILTINS = frozenset({"print", "len", "float", "int", "str", "repr", "bool", "round", "isinstance", "format", "range", "hasattr"})

# every in-place Tensor method (`op_`); `set_` makes its receiver share its argument's storage
INPLACE_METHODS = frozenset(m for m in TORCH_TENSOR_MEMBERS if m.endswith("_") and not m.startswith("_")) | {"zero_", "fill_", "copy_"}

Value = tuple  # (fresh: bool, aliases: frozenset of names the value may be)
_NEW: Value = (True, frozenset())
_UNKNOWN: Value = (False, frozenset())


@dataclass
class Callee:
    """What the caller tells the flow about a call: how its value relates to its argument."""

    kind: str  # "act": updates its input in place (a decision point); "fresh": a new tensor;
    # "pass": may be (a view of) its arguments; "method": may be its receiver, and may keep its
    # arguments (`.append(x)`); "unknown": may keep or return any argument
    arg: Optional[cst.BaseExpression] = None  # the tensor argument (act / pass)
    fresh_output: bool = False  # an "act" whose value is a new tensor anyway (a Sequential)
    key: int = 0  # where the decision is recorded (id of a call or of a holder)
    receiver: bool = False  # a "pass" method (`x.view(...)`): its value may also be (a view of) the receiver
    unknown_output: bool = False  # an "act" followed by layers the analysis does not know (a Sequential)
    method: bool = False  # an "act" that is an in-place Tensor method (`x.add_(y)`, `x[i].zero_()`): the decision
    # is whether the receiver's tensor is unshared; how the result is bound is the caller's business


@dataclass
class _Loop:
    breaks: list = field(default_factory=list)
    continues: list = field(default_factory=list)


class FunctionFlow:
    """Run `classify` over one function body; `decisions[key]` lists the why (None = exact) per visit."""

    def __init__(self, classify: Callable[[cst.Call], Callee], params: set, pinned: set, body=()):
        self.classify = classify
        self.params = set(params)
        self.pinned = set(pinned)  # names a nested scope reads later, or global/nonlocal
        self.state: dict = {}  # name -> True when fresh; absent: shared or unknown
        self.assigned: set = set()
        self.decisions: dict = {}  # key -> list of Optional[str]
        self.discarded: set = set()  # ids of act calls approved as statements (x = act(x) by hand)
        self.loops: list = []
        self.loop_depth = 0  # a while test is evaluated again, outside `loops`
        self.try_depth = 0
        self._context: tuple = (None, None)  # (id of the statement's top call, "rebind:x" | "return" | "discard")
        # liveness: each name's occurrences in source order, to see that a name is not read after a call
        self._position: dict = {}  # id(Name node) -> its index in source order
        self._last: dict = {}  # name -> index of its last occurrence
        self._statement = None  # the small statement being analysed
        stack = list(reversed(list(body)))
        while stack:
            node = stack.pop()
            if isinstance(node, cst.Name):
                self._position[id(node)] = self._last[node.value] = len(self._position)
            elif isinstance(node, cst.Attribute):  # `self.x` does not read a variable `x`
                stack.append(node.value)
            elif isinstance(node, cst.Arg):  # nor does `f(x=1)`
                stack.append(node.value)
            else:
                stack.extend(reversed(node.children))

    # ----- statements ------------------------------------------------------------------------
    def block(self, statements) -> None:
        for s in statements:
            self.statement(s)

    def statement(self, s) -> None:
        self._statement = None  # a compound statement's header is not a small statement
        if isinstance(s, cst.BaseSmallStatement):
            self.small(s)
        elif isinstance(s, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            for small in s.body:
                self.small(small)
        elif isinstance(s, cst.If):
            self.expr_drop(s.test)
            before = dict(self.state)
            self.block(s.body.body)
            after_body, self.state = self.state, before
            if isinstance(s.orelse, cst.If):
                self.statement(s.orelse)
            elif isinstance(s.orelse, cst.Else):
                self.block(s.orelse.body.body)
            self.state = _meet(after_body, self.state)
        elif isinstance(s, (cst.For, cst.While)):
            self._loop(s)
        elif isinstance(s, cst.With):
            for item in s.items:
                self.escape(self.expr(item.item))
                if item.asname is not None:
                    self.store_unknown(item.asname.name)
            self.block(s.body.body)
        elif isinstance(s, (cst.FunctionDef, cst.ClassDef)):
            self.state.pop(s.name.value, None)
        else:  # try, match, anything else: analyse the parts from nothing, forget afterwards
            self.try_depth += 1
            for child in s.children:
                self.state = {}
                if isinstance(child, cst.BaseSuite):
                    self.block(child.body)
                elif isinstance(child, (cst.ExceptHandler, cst.Else, cst.Finally)) or type(child).__name__ in ("MatchCase", "ExceptStarHandler"):
                    self.block(child.body.body)
                elif isinstance(child, cst.BaseExpression):
                    self.expr_drop(child)
            self.try_depth -= 1
            self.state = {}

    def _loop(self, s) -> None:
        self.loop_depth += 1
        try:
            self._loop_body(s)
        finally:
            self.loop_depth -= 1

    def _loop_body(self, s) -> None:
        if isinstance(s, cst.For):
            self.escape(self.expr(s.iter))
        entry = dict(self.state)
        head = dict(entry)
        for _ in range(len(entry) + 8):
            self.state = dict(head)
            if isinstance(s, cst.For):
                self.store_unknown(s.target)
            else:
                self.expr_drop(s.test)
            self.loops.append(_Loop())
            self.block(s.body.body)
            loop = self.loops.pop()
            new_head = _meet(entry, self.state, *loop.continues)
            if new_head == head:
                break
            head = new_head
        self.state = dict(head)
        if s.orelse is not None:
            self.block(s.orelse.body.body)
        self.state = _meet(self.state, *loop.breaks)

    def small(self, s) -> None:
        self._statement = s
        if isinstance(s, (cst.Assign, cst.AnnAssign)) and s.value is not None:
            targets = [t.target for t in s.targets] if isinstance(s, cst.Assign) else [s.target]
            single = targets[0] if len(targets) == 1 and isinstance(targets[0], cst.Name) else None
            if single is not None:
                self._context = (id(s.value), f"rebind:{single.value}")
            fresh, aliases = self.expr(s.value)
            if single is not None:
                name = single.value
                self.escape((False, aliases - {name}))
                self.assigned.add(name)
                if fresh and aliases <= {name} and name not in self.pinned:
                    self.state[name] = True
                else:
                    self.state.pop(name, None)
                return
            self.escape((fresh, aliases))
            for t in targets:
                self.store_unknown(t)
        elif isinstance(s, cst.AugAssign):
            value = self.expr(s.value)
            if not isinstance(s.target, cst.Name):
                self.escape(value)  # tensors keep their identity under `x += v`
                self.expr_drop(s.target)
        elif isinstance(s, cst.Expr):
            self._context = (id(s.value), "discard")
            self.expr_drop(s.value)
        elif isinstance(s, cst.Return):
            if s.value is not None:
                self._context = (id(s.value), "return" if not self.try_depth else None)
                self.expr_drop(s.value)
        elif isinstance(s, cst.Del):
            self.store_unknown(s.target)
        elif isinstance(s, (cst.Global, cst.Nonlocal)):
            for n in s.names:
                self.pinned.add(n.name.value)
                self.state.pop(n.name.value, None)
        elif isinstance(s, cst.Break) and self.loops:
            self.loops[-1].breaks.append(dict(self.state))
        elif isinstance(s, cst.Continue) and self.loops:
            self.loops[-1].continues.append(dict(self.state))
        elif isinstance(s, (cst.Import, cst.ImportFrom)):
            self.state.clear()
        else:
            for child in s.children:
                if isinstance(child, cst.BaseExpression):
                    self.escape(self.expr(child))

    def store_unknown(self, target) -> None:
        if isinstance(target, cst.Name):
            self.state.pop(target.value, None)
            self.assigned.add(target.value)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                self.store_unknown(el.value)
        elif isinstance(target, cst.StarredElement):
            self.store_unknown(target.value)
        elif isinstance(target, (cst.Subscript, cst.Attribute)):
            self.expr_drop(target)

    # ----- expressions -----------------------------------------------------------------------
    def escape(self, value: Value) -> None:
        """Another reference may now hold these names' tensors."""
        for name in value[1]:
            self.state.pop(name, None)

    def expr_drop(self, node) -> None:
        self.expr(node)

    def expr(self, node) -> Value:
        if isinstance(node, cst.Name):
            if node.value in ("True", "False", "None"):
                return _NEW
            return (self.state.get(node.value, False), frozenset({node.value}))
        if isinstance(node, (cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString, cst.ConcatenatedString, cst.Ellipsis)):
            return _NEW
        if isinstance(node, (cst.BinaryOperation, cst.Comparison)):
            for child in node.children:
                if isinstance(child, cst.BaseExpression):
                    self.expr(child)
            if isinstance(node, cst.Comparison):
                for c in node.comparisons:
                    self.expr(c.comparator)
            return _NEW
        if isinstance(node, cst.UnaryOperation):
            value = self.expr(node.expression)
            return value if isinstance(node.operator, cst.Plus) else _NEW  # +x is x in torch
        if isinstance(node, (cst.BooleanOperation, cst.IfExp)):
            parts = [node.left, node.right] if isinstance(node, cst.BooleanOperation) else [node.body, node.orelse]
            if isinstance(node, cst.IfExp):
                self.expr(node.test)
            values = [self.expr(p) for p in parts]
            return (all(v[0] for v in values), frozenset().union(*[v[1] for v in values]))
        if isinstance(node, cst.Attribute):
            value = self.expr(node.value)
            return _NEW if node.attr.value in SCALAR_ATTRS else (False, value[1])
        if isinstance(node, cst.Subscript):
            value = self.expr(node.value)
            for el in node.slice:
                for child in el.slice.children:
                    if isinstance(child, cst.BaseExpression):
                        self.escape(self.expr(child))
            return value  # a view of the same storage
        if isinstance(node, cst.Call):
            return self.call(node)
        if isinstance(node, cst.FormattedString):
            for part in node.parts:
                if isinstance(part, cst.FormattedStringExpression):
                    self.expr(part.expression)
            return _NEW
        if isinstance(node, cst.NamedExpr):
            self.escape(self.expr(node.value))
            self.store_unknown(node.target)
            return _UNKNOWN
        # containers, comprehensions, lambdas, await, yield: whatever is inside may be kept
        for child in node.children:
            if isinstance(child, cst.BaseExpression):
                self.escape(self.expr(child))
            elif isinstance(child, cst.CSTNode):
                self._escape_names_in(child)
        return _UNKNOWN

    def _escape_names_in(self, node: cst.CSTNode) -> None:
        for child in node.children:
            if isinstance(child, cst.BaseExpression):
                self.escape(self.expr(child))
            else:
                self._escape_names_in(child)

    def call(self, node: cst.Call) -> Value:
        callee = self.classify(node)
        context = self._context[1] if self._context[0] == id(node) else None
        if callee.kind == "act":
            for a in node.args:
                if a.value is not callee.arg:
                    arg_value = self.expr(a.value)
                    if callee.method:  # `x.add_(y)` on an object that may not be a tensor: it may keep `y`
                        self.escape(arg_value)
            value = self.expr(callee.arg)
            dead = self._decide(callee.key, node, callee.arg, value, context, callee.method)
            if callee.unknown_output:
                self.escape(value)
                return _UNKNOWN
            return _NEW if callee.fresh_output or dead else value
        if callee.kind == "pass":
            values = [self.expr(a.value) for a in node.args]
            # `torch.flatten(x, 1)` and a module holder are not receivers: only `x.view(...)` passes its receiver on
            if callee.receiver and isinstance(node.func, cst.Attribute):
                values.append(self.expr(node.func.value))
            return (all(v[0] for v in values), frozenset().union(*[v[1] for v in values]))
        if callee.kind == "method" and isinstance(node.func, cst.Attribute):
            for a in node.args:
                self.escape(self.expr(a.value))
            return (False, self.expr(node.func.value)[1])
        if callee.kind == "fresh":
            for a in node.args:
                self.expr(a.value)
            if isinstance(node.func, cst.Attribute):
                self.expr(node.func.value)
            return _NEW
        self.escape(self.expr(node.func))
        for a in node.args:
            self.escape(self.expr(a.value))
        return _UNKNOWN

    def _decide(self, key: int, node: cst.Call, arg, value: Value, context: Optional[str], method: bool = False) -> bool:
        """Record why (None: exact) at an in-place call; True when the argument is a name read nowhere after it."""
        fresh, aliases = value
        why = None
        dead = False
        if not fresh:
            named = sorted(aliases)
            if any(n in self.params and n not in self.assigned for n in named):
                n = next(n for n in named if n in self.params and n not in self.assigned)
                why = f"`{n}` is a parameter: the caller would see the mutation"
            elif named:
                why = f"`{named[0]}` may share its tensor with another reference, which torch's in-place update changes too"
            else:
                why = f"`{code_of(node)[:40]}` gets a tensor that may be shared with another reference"
        elif aliases and not method:
            name = next(iter(aliases))
            if context == "discard" and key == id(node) and isinstance(arg, cst.Name):
                self.discarded.add(id(node))
            elif context in (f"rebind:{name}", "return"):
                pass
            elif self._dead_after(arg):
                dead = True
            else:
                why = f"`{name}` still refers to the updated tensor after the call (assign the result back to `{name}`)"
        self.decisions.setdefault(key, []).append(why)
        return dead

    def _dead_after(self, arg) -> bool:
        """`arg` is a name that nothing reads after this use: outside loops, its only occurrence in the
        statement (`x + F.relu(x, inplace=True)` reads the updated x), and the last one in the function."""
        if not isinstance(arg, cst.Name) or self.loop_depth or self._statement is None or arg.value in self.pinned:
            return False
        if id(arg) not in self._position or self._last.get(arg.value) != self._position[id(arg)]:
            return False
        count = 0
        stack = [self._statement]
        while stack:
            n = stack.pop()
            count += isinstance(n, cst.Name) and n.value == arg.value
            stack.extend([n.value] if isinstance(n, (cst.Attribute, cst.Arg)) else n.children)
        return count == 1


def _meet(*states: dict) -> dict:
    first, *rest = states
    return {n: True for n in first if all(s.get(n) for s in rest)}
