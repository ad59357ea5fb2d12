"""Which expressions are known to be torch tensors (for methods like `.sum` that other types have too).

Flow-insensitive enough to be cheap, conservative enough to be safe: a name is a tensor
when it is a parameter annotated `torch.Tensor` (or one every in-file call passes a tensor
for: value_facts), or when its latest assignment in the current function was a tensor
expression. What the file's own functions return and its classes' `self.x` attributes
hold are read off value_facts.py too (`tensor_functions`, `submodules`, `attributes`).
"""
from __future__ import annotations

import ast
from typing import Callable, Optional

import libcst as cst

from torch2mlx.array_facts import MX_NON_ARRAY_FUNCTIONS
from torch2mlx.table.index import RuleIndex
from torch2mlx.torch_facts import MODULE_TENSOR_METHODS

TENSOR_TYPES = frozenset({"torch.Tensor"} | {f"torch.{t}Tensor" for t in (
    "Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")})
TORCH_KEYWORDS = frozenset({"dim", "keepdim"})  # no builtin or numpy method takes these
_TENSOR_ATTRS = frozenset({"T", "mT", "data", "grad"})


def attribute_chain(node) -> Optional[list]:
    """['torch', 'nn', 'functional', 'relu'] for torch.nn.functional.relu (a libcst or an `ast` node); None if not a plain chain."""
    parts: list = []
    while isinstance(node, (cst.Attribute, ast.Attribute)):
        parts.append(node.attr if isinstance(node, ast.Attribute) else node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        parts.append(node.value)
    elif isinstance(node, ast.Name):
        parts.append(node.id)
    else:
        return None
    parts.reverse()
    return parts


_STR_METHODS = frozenset({"lower", "upper", "strip", "lstrip", "rstrip", "replace", "casefold", "title", "capitalize",
                          "swapcase", "format", "zfill", "center", "ljust", "rjust", "removeprefix", "removesuffix",
                          "expandtabs", "format_map", "join"})  # str methods returning a str (as scalar_facts)


def is_str(node: cst.BaseExpression, names: frozenset) -> bool:
    """Whether `node` is a Python str (never a tensor): a string literal, an f-string, `str(x)`, a name every binding
    of which in the scope is a str (`names`: `names.Scope.str_names`), a str method returning a str on one
    (`s.replace("_", "").lower()`), `+` of two, `%` on one, an index or slice of one."""
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)):
        return not (isinstance(node, cst.SimpleString) and "b" in node.prefix.lower())
    if isinstance(node, cst.Name):
        return node.value in names
    if isinstance(node, cst.BinaryOperation):
        if isinstance(node.operator, cst.Add):
            return is_str(node.left, names) and is_str(node.right, names)
        return isinstance(node.operator, cst.Modulo) and is_str(node.left, names)
    if isinstance(node, cst.Subscript):
        return is_str(node.value, names)
    if isinstance(node, cst.Call):
        func = node.func
        if isinstance(func, cst.Name):
            return func.value == "str" and "str()" in names and len(node.args) <= 1 and all(a.keyword is None and not a.star for a in node.args)
        return isinstance(func, cst.Attribute) and func.attr.value in _STR_METHODS and is_str(func.value, names)
    return False


def alias_key(name: str) -> tuple:
    """The key of a function alias (value_facts.py: a name every binding of which in the file is one of the
    file's functions) in the module's `tensor_tuples` / `tensor_functions`: it holds wherever the name is bound
    locally, where a module-level function's own entry holds only where no local binding shadows it."""
    return ("alias", name)


def _python_bool_test(node: cst.Comparison) -> bool:
    """`x is None`, `x is not y`, `i in x`, `i not in x`: a Python bool even on tensors."""
    return any(isinstance(c.operator, (cst.Is, cst.IsNot, cst.In, cst.NotIn)) for c in node.comparisons)


def _is_ast_self_attribute(node) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"


class TensorFacts:
    def __init__(self, index: RuleIndex, resolve: Callable[[cst.BaseExpression], Optional[str]],
                 tensor_functions: frozenset = frozenset(), is_local: Callable[[str], bool] = lambda name: False):
        self.index = index
        self.tensor_functions = tensor_functions  # module-level `def f(...) -> torch.Tensor`
        self.submodules: frozenset = frozenset()  # `self.x = nn.Linear(...)` in the current class
        self.attributes: frozenset = frozenset()  # `self.x` always a tensor in the current class (value_facts)
        self.tuple_functions: dict = {}  # module-level function -> (element i of the tuple it returns a tensor, ...)
        self.tuple_methods: dict = {}    # the same for `self.m(...)` in the current class
        self.is_local = is_local
        self.is_mlx_core: Callable[[str], bool] = lambda name: False
        self.is_plain_receiver: Callable[[cst.BaseExpression], bool] = lambda node: False
        self.resolve = resolve  # qualified torch name of an expression, or None
        self.stack: list[set] = [set()]
        self.bools: list[set] = [set()]
        # `m.weight` inside `if isinstance(m, nn.Linear):` (transforms/facts/layer_checks.py pushes and pops them)
        self.narrowed: list = []
        self.narrowed_ints: list = []  # `m.num_positions` inside `if isinstance(m, C):`, C a class of the file

    def push(self) -> None:
        self.stack.append(set())
        self.bools.append(set())

    def pop(self) -> None:
        self.stack.pop()
        self.bools.pop()

    def mark(self, name: str, is_tensor: bool, is_bool: bool = False) -> None:
        if is_tensor:
            self.stack[-1].add(name)
        else:
            self.stack[-1].discard(name)
        if is_bool:
            self.bools[-1].add(name)
        else:
            self.bools[-1].discard(name)

    def save(self, names) -> dict:
        """What the current scope knows of `names` (for `restore`): a comprehension or lambda binds its own names
        under the same spelling, and the enclosing scope's facts hold again after it."""
        return {name: (name in self.stack[-1], name in self.bools[-1]) for name in names}

    def restore(self, saved: dict) -> None:
        for name, (is_tensor, is_bool) in saved.items():
            self.mark(name, is_tensor, is_bool)

    def forget_assignments(self, stmt) -> None:
        """An `ast` statement the pass skips (no torch in it): keep what its assignments tell."""
        for node in ast.walk(stmt):
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                value_is_tensor = isinstance(node, ast.AugAssign) or (node.value is not None and self._ast_tensor(node.value))
                value_is_bool = isinstance(node.value, ast.Compare) and value_is_tensor
                for t in targets:
                    if isinstance(t, ast.Name):
                        if isinstance(node, ast.AugAssign):
                            continue
                        self.mark(t.id, value_is_tensor, value_is_bool)
                    elif isinstance(t, (ast.Tuple, ast.List)) and isinstance(node, ast.Assign):
                        self._forget_unpacked(t, node.value, value_is_tensor)
                    else:
                        for n in ast.walk(t):
                            if isinstance(n, ast.Name):
                                self.mark(n.id, False)
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.NamedExpr, ast.withitem)):  # (a comprehension's targets
                target = node.optional_vars if isinstance(node, ast.withitem) else node.target  # are its own)
                for n in ast.walk(target) if target is not None else ():
                    if isinstance(n, ast.Name):
                        self.mark(n.id, False)

    def _forget_unpacked(self, target, value, value_is_tensor: bool) -> None:
        """`a, b = <tensor>` or `a, b = f(x)` with f returning (tensor, ...), as leave_Assign reads them."""
        elts = target.elts
        starred = any(isinstance(e, ast.Starred) for e in elts)
        returned = None if starred else self._ast_tuple_elements(value)
        if returned is not None and len(returned) != len(elts):
            returned = None
        for i, el in enumerate(elts):
            if isinstance(el, ast.Name):
                self.mark(el.id, value_is_tensor or (returned is not None and returned[i]))
            else:
                for n in ast.walk(el):
                    if isinstance(n, ast.Name):
                        self.mark(n.id, False)

    def _ast_tuple_elements(self, node) -> Optional[tuple]:
        if isinstance(node, ast.ListComp):  # as _comprehension_elements reads the libcst node
            gen = node.generators
            iterable = gen[0].iter if len(gen) == 1 else None
            if (len(gen) != 1 or gen[0].ifs or gen[0].is_async or not isinstance(gen[0].target, ast.Name)
                    or not isinstance(iterable, (ast.Tuple, ast.List)) or not iterable.elts
                    or not all(not isinstance(e, ast.Starred) and self._ast_tensor(e) for e in iterable.elts)):
                return None
            saved = self.save([gen[0].target.id])
            self.mark(gen[0].target.id, True)
            try:
                element = self._ast_tensor(node.elt)
            finally:
                self.restore(saved)
            return (True,) * len(iterable.elts) if element else None
        if not isinstance(node, ast.Call):
            return None
        if isinstance(node.func, ast.Name):
            return self._function_facts(self.tuple_functions, node.func.id)
        if _is_ast_self_attribute(node.func):
            return self.tuple_methods.get(node.func.attr)
        return None

    def _ast_tensor(self, node) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.stack[-1]
        if isinstance(node, ast.Call):  # the file's own tensor-returning functions, layers and methods (value_facts)
            if isinstance(node.func, ast.Name):
                return bool(self._function_facts(self.tensor_functions, node.func.id))
            return _is_ast_self_attribute(node.func) and node.func.attr in self.submodules
        if isinstance(node, ast.Attribute):
            if self._ast_cached_layer(node):
                return True
            return _is_ast_self_attribute(node) and node.attr in self.attributes
        if isinstance(node, ast.BinOp):
            return self._ast_tensor(node.left) or self._ast_tensor(node.right)
        if isinstance(node, ast.UnaryOp):
            return self._ast_tensor(node.operand)
        if isinstance(node, ast.Compare):
            if any(isinstance(op, (ast.Is, ast.IsNot, ast.In, ast.NotIn)) for op in node.ops):
                return False  # `x is None`, `i in x`: a Python bool
            return self._ast_tensor(node.left) or any(self._ast_tensor(c) for c in node.comparators)
        if isinstance(node, ast.Subscript):
            return self._ast_tensor(node.value)
        return False

    def _ast_cached_layer(self, node) -> bool:
        """`cache.layers[i].keys` / `.values` of a hub cache (value_facts.cached_layer)."""
        value = node.value
        return (node.attr in ("keys", "values") and isinstance(value, ast.Subscript) and not isinstance(value.slice, ast.Slice)
                and isinstance(value.value, ast.Attribute) and value.value.attr == "layers"
                and isinstance(value.value.value, ast.Name) and ("cache", value.value.value.id) in self.tuple_functions)

    def _cached_layer(self, node: cst.Attribute) -> bool:
        value = node.value
        return (node.attr.value in ("keys", "values") and isinstance(value, cst.Subscript) and len(value.slice) == 1
                and isinstance(value.slice[0].slice, cst.Index) and isinstance(value.value, cst.Attribute)
                and value.value.attr.value == "layers" and isinstance(value.value.value, cst.Name)
                and ("cache", value.value.value.value) in self.tuple_functions)

    def tuple_elements(self, node: cst.BaseExpression) -> Optional[tuple]:
        """(element i a tensor, ...) of `f(...)` / `self.m(...)` returning tuples (value_facts), or of a list
        comprehension over a display of tensors (`[s.view(shape) for s in (q, k, v)]`), or None."""
        if isinstance(node, cst.ListComp):
            return self._comprehension_elements(node)
        if not isinstance(node, cst.Call):
            return None
        func = node.func
        if (isinstance(func, cst.Attribute) and func.attr.value == "update" and isinstance(func.value, cst.Name)
                and ("cache", func.value.value) in self.tuple_functions and len(node.args) >= 2
                and all(a.keyword is None and not a.star and self.is_tensor(a.value) for a in node.args[:2])):
            return (True, True)  # `k, v = past_key_values.update(k, v, self.layer_idx)`: a hub cache (value_facts)
        if isinstance(node.func, cst.Name):
            return self._function_facts(self.tuple_functions, node.func.value)
        if isinstance(node.func, cst.Attribute) and isinstance(node.func.value, cst.Name) and node.func.value.value == "self":
            return self.tuple_methods.get(node.func.attr.value)
        return None

    def _comprehension_elements(self, node: cst.ListComp) -> Optional[tuple]:
        """`[<elt> for s in (a, b, c)]` (one `for`, no `if`), a, b, c tensors: three elements, each a tensor when
        `<elt>` is one with `s` a tensor (as transforms/facts/comprehension_names.py marks it inside)."""
        comp = node.for_in
        iterable = comp.iter
        if (comp.inner_for_in is not None or comp.ifs or comp.asynchronous is not None or not isinstance(comp.target, cst.Name)
                or not isinstance(iterable, (cst.Tuple, cst.List)) or not iterable.elements
                or not all(isinstance(e, cst.Element) and self.is_tensor(e.value) for e in iterable.elements)):
            return None
        name = comp.target.value
        saved = self.save([name])
        self.mark(name, True)
        try:
            element = self.is_tensor(node.elt)
        finally:
            self.restore(saved)
        return (True,) * len(iterable.elements) if element else None

    def _function_facts(self, facts, name: str):
        """What `facts` (tuple facts: a dict; tensor-returning functions: a set) say of calling `name`: a module-level
        function's entry where no local binding shadows it, a function alias' where it is bound locally."""
        if self.is_local(name):
            key = alias_key(name)
            return facts.get(key) if isinstance(facts, dict) else key in facts
        return facts.get(name) if isinstance(facts, dict) else name in facts

    def is_bool(self, node: cst.BaseExpression) -> bool:
        """A boolean tensor: a comparison involving a tensor, `.bool()`, or a name assigned one."""
        if isinstance(node, cst.Name):
            return node.value in self.bools[-1]
        if isinstance(node, cst.Comparison):
            if _python_bool_test(node):
                return False
            return self.is_tensor(node.left) or any(self.is_tensor(c.comparator) for c in node.comparisons)
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "bool":
            return self.is_tensor(node.func.value)
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.BitInvert):
            return self.is_bool(node.expression)
        return False

    def is_tensor_annotation(self, annotation: Optional[cst.Annotation]) -> bool:
        """`torch.Tensor`, `torch.FloatTensor` & co, `Optional[...]` or `... | None` of them."""
        return annotation is not None and self._is_tensor_type(annotation.annotation)

    def _is_tensor_type(self, node: cst.BaseExpression) -> bool:
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.BitOr):
            sides = [node.left, node.right]
            return any(self._is_tensor_type(s) for s in sides) and all(
                self._is_tensor_type(s) or (isinstance(s, cst.Name) and s.value == "None") for s in sides)
        if isinstance(node, cst.Subscript) and len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index):
            chain = attribute_chain(node.value)
            if chain and chain[-1] == "Optional":
                return self._is_tensor_type(node.slice[0].slice.value)
            return False
        if self.resolve(node) in TENSOR_TYPES:
            return True
        chain = attribute_chain(node)  # `mx.array`, as found when converting converted code again
        return chain is not None and len(chain) == 2 and chain[1] == "array" and self.is_mlx_core(chain[0])

    def is_tensor(self, node: cst.BaseExpression) -> bool:
        if isinstance(node, cst.Name):
            return node.value in self.stack[-1]
        if isinstance(node, cst.Call):
            chain = attribute_chain(node.func)
            if chain is not None and len(chain) >= 2 and self.is_mlx_core(chain[0]):
                return chain[-1] not in MX_NON_ARRAY_FUNCTIONS  # mx.* returns arrays (converted code, second pass)
            qual = self.resolve(node.func)
            if qual is not None:
                rule = self.index.function(qual)
                return rule is not None and rule.returns == "tensor"
            if isinstance(node.func, cst.Name) and self._function_facts(self.tensor_functions, node.func.value):
                return True
            if (isinstance(node.func, cst.Attribute) and isinstance(node.func.value, cst.Name)
                    and node.func.value.value == "self" and node.func.attr.value in self.submodules):
                return True  # a torch.nn layer of this class, called on its input
            if isinstance(node.func, cst.Attribute):
                rule = self.index.method(node.func.attr.value)
                if rule is None or rule.returns != "tensor":
                    return False
                if self.is_tensor(node.func.value):
                    return True
                if any(a.keyword is not None and a.keyword.value in TORCH_KEYWORDS for a in node.args):
                    return self.is_plain_receiver(node.func.value)  # `dim=` proves a tensor method
                # a torch-only method name is rewritten on any receiver that is not a module or
                # a literal, so its result is taken as a tensor too (keeps a second pass identical)
                return (not rule.ambiguous_method and node.func.attr.value not in MODULE_TENSOR_METHODS
                        and self.is_plain_receiver(node.func.value))
            return False
        if isinstance(node, cst.BinaryOperation):
            return self.is_tensor(node.left) or self.is_tensor(node.right)
        if isinstance(node, cst.Comparison):
            if _python_bool_test(node):
                return False
            return self.is_tensor(node.left) or any(self.is_tensor(c.comparator) for c in node.comparisons)
        if isinstance(node, cst.UnaryOperation):
            return self.is_tensor(node.expression)
        if isinstance(node, cst.Subscript):
            return self.is_tensor(node.value)
        if isinstance(node, cst.Attribute):
            if isinstance(node.value, cst.Call) and node.attr.value in ("values", "indices"):
                qual = self.resolve(node.value.func)  # torch.max(x, 1).values
                rule = self.index.function(qual) if qual is not None else None
                return rule is not None and node.attr.value in rule.namedtuple
            if isinstance(node.value, cst.Name) and node.value.value == "self" and node.attr.value in self.attributes:
                return True
            if self._cached_layer(node):
                return True  # `past_key_values.layers[i].keys` of a hub cache (value_facts)
            if self.narrowed and isinstance(node.value, cst.Name) and any(
                    f"{node.value.value}.{node.attr.value}" in names for names in self.narrowed):
                return True
            return node.attr.value in _TENSOR_ATTRS and self.is_tensor(node.value)
        return False
