"""Value facts across a file's own functions: which parameters, returns and `self.x` attributes are tensors.

Read off the stdlib `ast` once per file (after `names.analyze`), to a least fixed point over the
file's functions and classes; the pass reads the results through `Scope` (`tensor_params`,
`tensor_attributes`, `submodules`, the module's `tensor_functions`) and `TensorFacts`.

- **Attributes**: `self.x` is a tensor in a class's methods when every store of `x` in the class and
  in the file's classes related to it by inheritance is a tensor (`nn.Parameter(...)`, a tensor-returning
  torch call, `self.register_buffer("x", <tensor>)`, ...), there is at least one, and no other
  receiver's `.x` is stored anywhere in the file. A store of None, of anything unknown, `del self.x`,
  `setattr(self, "x", ...)` or a class-level `x = ...` makes it unknown.
- **Returns**: a function or method every `return` of which is a tensor, with no bare `return`, no
  fall-through and no `yield`, returns a tensor: `f(x)` (module-level `f`) and `self.m(x)` (a method of
  the class not overridden by a related class to return anything else) are tensors. `self.sub(x)` is a
  tensor when every store of `self.sub` constructs a class of this file whose `forward` returns a
  tensor (and that defines no `__call__`), or a tensor-returning torch.nn layer.
- **Parameters**: a module-level function (or a method referenced only as `self.m(...)`) every in-file
  call site of which passes a tensor for a parameter has that parameter known as a tensor, if it has
  at least one call site and is never referenced other than by calling it; a call omitting it (its
  default) or passing `*args` / `**kwargs` that may cover it makes it unknown. Decorated functions,
  `forward` and dunder methods get no parameter facts (forward's are the nn-module transform's).

- **Function aliases**: a name every binding of which in the file is an assignment, inside a def, of a
  module-level function of the file (`attention_interface = eager_attention_forward`) or, with the
  transformers hub, of `ALL_ATTENTION_FUNCTIONS.get_interface(impl, f)` (the stand-in returns `f` or raises)
  or `ALL_ATTENTION_FUNCTIONS[impl]` (the stand-in raises: no value), holds one of those functions
  wherever it is read: calling it returns a tensor, or a tuple with a tensor at element i, when every
  function it may hold does. Any other binding of the name anywhere (a parameter, a loop, an import, module
  level, a class body, ...) makes it no alias.

Inside one function a name is a tensor when every binding of it is a tensor given the names known so
far (greatest fixed point: sound by induction on execution, the first binding reads no earlier value
of the name); any other binding (a loop target, `with ... as`, `global`, `del`, a walrus, a `nonlocal`
rebinding in a nested def, ...) makes it unknown. A name read in a top-level statement of a def's body
(a returned value, a call's argument, a stored value) is also a tensor when the binding that reaches
that statement is one: the last earlier top-level statement binding it is a plain assignment of a
tensor (or none binds it and it is a tensor parameter), and the statement itself does not bind it.
Top-level statements run in order, so `freq = torch.cat(...); return freq` returns a tensor whatever
`freq` was passed. Where two paths disagree the fact is unknown, never guessed.

A decorated method's first parameter is the instance when it is named `self` and no decorator names
staticmethod / classmethod (the pass reads `self.x` that way in every method); decorated methods still
get no parameter facts (a decorator may call the body with other arguments).
"""
from __future__ import annotations

import ast
from typing import Optional

from torch2mlx import scalar_facts
from torch2mlx.array_facts import MX_NON_ARRAY_FUNCTIONS
from torch2mlx.binding import bind_ast, signature_of
from torch2mlx.tensors import TENSOR_TYPES, TORCH_KEYWORDS, alias_key, attribute_chain
from torch2mlx.torch_facts import (GRAD_CONTEXTS, JIT_MARKERS, LAYER_INT_ATTRIBUTES, MODULE_BASES, MODULE_TENSOR_METHODS,
                                   NON_TENSOR_MODULES, SCRIPT_IF_TRACING, TUPLE_RETURNING_LAYERS)

_FN = (ast.FunctionDef, ast.AsyncFunctionDef)
_OPAQUE = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_TENSOR_ATTRS = frozenset({"T", "mT", "data", "grad"})
_TENSOR_CONSTRUCTORS = frozenset({"torch.nn.Parameter", "torch.nn.Buffer", "torch.nn.parameter.Parameter"})
_MAX_ROUNDS = 8
_PYTHON_BOOL_TESTS = (ast.Is, ast.IsNot, ast.In, ast.NotIn)
_UNKNOWN = None  # a binding that is never a tensor fact


class _Fn:
    """One def: its bindings, returns and calls, collected once."""

    def __init__(self, node, scope, cls: Optional["_Cls"], module_level: bool):
        self.node = node
        self.scope = scope
        self.cls = cls  # the class it is a method of (directly), or None
        self.module_level = module_level
        args = node.args
        self.positional = [a.arg for a in args.posonlyargs + args.args]
        self.kwonly = [a.arg for a in args.kwonlyargs]
        self.self_name = self.positional[0] if cls is not None and self.positional and _keeps_self(node) else None
        self.bindings: dict = {}  # name -> list of ("value"/"assign", expr) | ("unpack", expr, i, n) | ("param", name) | None
        self.returns: list = []
        self.bare_return = False
        self.generator = False
        self.calls: list = []  # (ast.Call, opaque): opaque when inside a lambda / comprehension
        self.locals: frozenset = frozenset()
        annotated = set()
        for a in args.posonlyargs + args.args + args.kwonlyargs:
            self.bindings.setdefault(a.arg, []).append(("param", a.arg))
            if a.annotation is not None and _is_tensor_annotation(a.annotation, scope):
                annotated.add(a.arg)
        for a in (args.vararg, args.kwarg):
            if a is not None:
                self.bindings.setdefault(a.arg, []).append(_UNKNOWN)
        self.annotated = frozenset(annotated)
        defaults = [None] * (len(self.positional) - len(args.defaults)) + list(args.defaults)
        self.has_default = {name for name, d in zip(self.positional, defaults) if d is not None}
        self.has_default |= {a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None}
        self.assumed = frozenset()  # forward of a module class: arguments without a default (nn-module transform)
        self.falls_through = not _terminates(node.body)
        self.nonlocals: set = set()  # names this def rebinds in an enclosing def (`nonlocal`)
        self.top = 0         # the index in the body of the top-level statement being collected
        self.top_of: dict = {}  # id(return value, call, stored value) -> index of its top-level statement
        self._bound_in: Optional[list] = None  # names bound in each top-level statement (on first use)
        self._escaping: Optional[frozenset] = None  # names a `global` / `nonlocal` in the def may rebind elsewhere

    def reaching(self, name: str, at: int):
        """The binding of `name` that reaches top-level statement `at` of the body, when the code shows it:
        the last earlier top-level statement that binds `name` is a plain assignment of it (then
        (binding, index)), or none does and `name` is a parameter ((param binding, 0)); else None. The
        statement `at` itself must not bind it. Top-level statements run in order, so this is the value
        `name` has there, whatever the other bindings of `name` in the def are."""
        if self._bound_in is None:
            self._bound_in = [_bound_names(stmt) for stmt in self.node.body]
            self._escaping = frozenset(n for node in ast.walk(self.node) if isinstance(node, (ast.Global, ast.Nonlocal))
                                       for n in node.names)
        if name in self._escaping or at >= len(self._bound_in) or (name in self._bound_in[at] and not _rebinds_one_name(self.node.body[at])):
            return None
        for j in range(at - 1, -1, -1):
            if name not in self._bound_in[j]:
                continue
            binding = _plain_binding(self.node.body[j], name)
            return None if binding is None else (binding, j)
        return (("param", name), 0) if name in self.positional or name in self.kwonly else None

    def _bind(self, name: str, binding) -> None:
        self.bindings.setdefault(name, []).append(binding)

    def _unknown_targets(self, target) -> None:
        for n in ast.walk(target):
            if isinstance(n, ast.Name):
                self._bind(n.id, _UNKNOWN)

    def _target(self, target, value) -> None:
        if isinstance(target, ast.Name):
            self._bind(target.id, ("value", value))
        elif isinstance(target, (ast.Tuple, ast.List)):
            elts = target.elts
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(elts) and not any(
                    isinstance(e, ast.Starred) for e in elts + value.elts):
                for t, v in zip(elts, value.elts):
                    self._target(t, v)
                return
            starred = any(isinstance(e, ast.Starred) for e in elts)
            for i, t in enumerate(elts):
                if isinstance(t, ast.Name):  # an element of a tensor is a tensor; of a call returning a tuple, its element
                    self._bind(t.id, ("unpack", value, None if starred else i, len(elts)))
                else:
                    self._unknown_targets(t)
        elif isinstance(target, ast.Starred):
            self._unknown_targets(target)

    def collect(self, node, opaque: bool) -> None:
        """What one node of the def's own code binds, returns or calls (its children are visited by the walk)."""
        kind = type(node)
        if kind is ast.Call:
            self.calls.append((node, opaque))
            self.top_of[id(node)] = self.top
        elif kind is ast.Assign:
            for t in node.targets:
                if isinstance(t, ast.Name):
                    self._bind(t.id, ("assign", node.value))  # as `value`; `y = self.layer(x)` also as nn-module takes it
                else:
                    self._target(t, node.value)
        elif kind is ast.AnnAssign:
            if node.value is not None:
                self._target(node.target, node.value)
        elif kind in _BINDERS:  # (`x += y` keeps a tensor a tensor: no constraint on a name already one)
            for name in _unknown_bindings(node):
                self._bind(name, _UNKNOWN)
            if kind is ast.Nonlocal:
                self.nonlocals.update(node.names)
        elif kind is ast.Return:
            if node.value is None:
                self.bare_return = True
            elif not opaque:
                self.returns.append(node.value)
                self.top_of[id(node.value)] = self.top
        elif kind in (ast.Yield, ast.YieldFrom, ast.Await) and not opaque:
            self.generator = True


def _names(target) -> list:
    return [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]


def _rebinds_one_name(stmt) -> bool:
    """`x = x.view(...)`, `q, k = [f(s) for s in (q, k)]`: one target of names assigned a value with no walrus, so
    every read of the value runs before the binding and sees the earlier one."""
    if isinstance(stmt, ast.Assign):
        targets, value = stmt.targets, stmt.value
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        targets, value = [stmt.target], stmt.value
    else:
        return False
    target = targets[0] if len(targets) == 1 else None
    plain = isinstance(target, ast.Name) or (isinstance(target, (ast.Tuple, ast.List)) and target.elts
                                             and all(isinstance(e, ast.Name) for e in target.elts))
    return plain and not any(isinstance(n, ast.NamedExpr) for n in ast.walk(value))


def _bound_names(stmt) -> frozenset:
    """Every name a statement may bind, nested blocks included (a superset: comprehension targets count)."""
    found = set()
    todo = [stmt]
    while todo:
        node = todo.pop()
        if isinstance(node, _FN):  # its body binds its own names (a `nonlocal` there: `_Fn.reaching`)
            found.add(node.name)
            todo.extend(node.decorator_list + node.args.defaults + [d for d in node.args.kw_defaults if d is not None])
            continue
        if isinstance(node, ast.Lambda):
            todo.extend(node.args.defaults + [d for d in node.args.kw_defaults if d is not None])
            continue
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            found.add(node.id)
        else:
            found.update(_unknown_bindings(node))
        todo.extend(ast.iter_child_nodes(node))
    return frozenset(found)


def _plain_binding(stmt, name: str):
    """The binding of `name` by a top-level `name = value` / `name: T = value` / `a, name = value`, as
    `_Fn.collect` records it; None for any other statement (an `if`, a loop, `name += ...`, ...)."""
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
        return ("value", stmt.value)
    if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
        return None
    target, value = stmt.targets[0], stmt.value
    if isinstance(target, ast.Name):
        return ("assign", value)
    if (isinstance(target, (ast.Tuple, ast.List)) and not any(isinstance(e, ast.Starred) for e in target.elts)
            and not isinstance(value, (ast.Tuple, ast.List))):
        spots = [i for i, e in enumerate(target.elts) if isinstance(e, ast.Name) and e.id == name]
        if len(spots) == 1 and all(isinstance(e, ast.Name) for e in target.elts):
            return ("unpack", value, spots[0], len(target.elts))
    return None


_BINDERS = frozenset({ast.For, ast.AsyncFor, ast.NamedExpr, ast.With, ast.AsyncWith, ast.Delete, ast.Global, ast.Nonlocal,
                      ast.Import, ast.ImportFrom, ast.ExceptHandler, ast.MatchAs, ast.MatchStar, ast.MatchMapping})


def _unknown_bindings(node) -> list:
    """Names a node binds to something not followed: loop targets, `with ... as`, `del`, imports, ..."""
    if isinstance(node, (ast.For, ast.AsyncFor, ast.NamedExpr)):
        return _names(node.target)
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return [n for item in node.items if item.optional_vars is not None for n in _names(item.optional_vars)]
    if isinstance(node, ast.Delete):
        return [n for t in node.targets for n in _names(t)]
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        return list(node.names)
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    if isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)):
        return [node.name] if node.name else []
    if isinstance(node, ast.MatchMapping):
        return [node.rest] if node.rest else []
    return []


class _Cls:
    def __init__(self, node: ast.ClassDef, scope):
        self.node = node
        self.scope = scope
        self.methods: dict = {}  # name -> _Fn (the last def of that name)
        self.bases: list = []    # in-file _Cls
        self.opaque_base = False  # a base outside the file other than torch.nn.Module itself
        self.module = False      # an nn.Module subclass (a torch.nn base, in-file or project one)
        self.stores: dict = {}   # attr -> list of (expr or None, _Fn or None)
        self.dynamic = False     # setattr / register_buffer with a computed name
        self.layers: frozenset = frozenset()  # what the nn-module transform takes `y = self.<attr>(x)` to give a tensor for
        self.family: list = []


def _keeps_self(node) -> bool:
    """Whether a method's first parameter is the instance: undecorated, or decorated (`@torch.no_grad()`,
    `@can_return_tuple`, ...) with the parameter named `self` and no decorator that names
    staticmethod / classmethod (the pass reads `self.x` in any method as the instance's, so a decorated
    method with a `self` is read the same way here)."""
    if not node.decorator_list:
        return True
    first = (node.args.posonlyargs + node.args.args)[0].arg
    return first == "self" and not any(
        isinstance(n, (ast.Name, ast.Attribute)) and (n.id if isinstance(n, ast.Name) else n.attr) in ("staticmethod", "classmethod")
        for d in node.decorator_list for n in ast.walk(d))


def _terminates(body: list) -> bool:
    if not body:
        return False
    last = body[-1]
    if isinstance(last, (ast.Return, ast.Raise)):
        return True
    if isinstance(last, ast.If):
        return _terminates(last.body) and _terminates(last.orelse)
    if isinstance(last, (ast.With, ast.AsyncWith)):
        return _terminates(last.body)
    return False


def _is_tensor_annotation(node, scope) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        sides = [node.left, node.right]
        is_none = [isinstance(s, ast.Constant) and s.value is None for s in sides]
        return all(n or _is_tensor_annotation(s, scope) for s, n in zip(sides, is_none)) and not all(is_none)
    if isinstance(node, ast.Subscript):
        chain = attribute_chain(node.value)
        return bool(chain) and chain[-1] == "Optional" and _is_tensor_annotation(node.slice, scope)
    chain = attribute_chain(node)
    if chain is None:
        return False
    if len(chain) == 2 and chain[1] == "array" and any(chain[0] in s.mlx_core for s in _scopes(scope)):
        return True
    root = scope.resolve(chain[0])
    return root is not None and ".".join([root, *chain[1:]]) in TENSOR_TYPES


class _Analysis:
    def __init__(self, index, module_scope, scopes):
        self.index = index
        self.module = module_scope
        self.scope_of = {id(s.node): s for s in scopes}
        self.fns: list = []
        self.fn_of: dict = {}       # id(function scope) -> _Fn
        self.module_fns: dict = {}  # name -> _Fn (a module-level def bound once)
        self.classes: dict = {}     # name -> _Cls (a module-level class bound once)
        self.all_classes: list = []
        self.other_stores: set = set()  # attrs stored on a receiver other than a method's self
        self.refs: dict = {}            # name -> count of loads not as a call's func
        self.attr_refs: dict = {}       # attr -> count of references other than `self.attr(...)` in a method
        self.any_attribute = False      # a `setattr` with a computed name on another receiver: no attribute facts
        self.call_funcs: set = set()
        self.counts: dict = {}          # module-level name -> bindings at module level
        self._counts_all: Optional[dict] = None  # every binding of each name in the file (`_all_counts`)
        tree = module_scope.node
        for stmt in tree.body:
            self._walk(stmt, None, False, module_level=True)
        by_scope: dict = {}
        for scope in scopes:  # pre-order: a class before its methods
            self._unit(scope, by_scope)
        for cls in self.all_classes:
            self._link(cls)
        for cls in self.all_classes:
            cls.family = self._family(cls)
            cls.layers = self._layers(cls)
        # facts
        self.params: dict = {}        # id(_Fn) -> frozenset
        self.returning: set = set()   # id(_Fn)
        self.attributes: dict = {}    # id(_Cls) -> frozenset
        self.callables: dict = {}     # id(_Cls) -> frozenset (self.<name>(...) is a tensor)
        self.tuples: dict = {}        # id(_Fn) -> (element i a tensor, ...) of the tuples it returns
        self.tuple_methods: dict = {} # id(_Cls) -> {method: (element i a tensor, ...)}
        self.alias_refs: dict = {}    # function name -> its references that are values of aliases only called
        self.aliases: dict = self._function_aliases()  # name -> the module-level _Fn it may hold (a tuple of them)
        self.caches: frozenset = self._cache_names()    # names always holding a hub key/value cache (or None)

    # ----- collection: one walk of each def's and class's own code ------------------------------
    def _unit(self, scope, by_scope: dict) -> None:
        node, parent = scope.node, scope.parent
        direct = parent is not None and parent.node is not None and node in getattr(parent.node, "body", ())
        module_level = direct and parent.kind == "module"
        if isinstance(node, ast.ClassDef):
            cls = by_scope[id(scope)] = _Cls(node, scope)
            self.all_classes.append(cls)
            if module_level and self.counts.get(node.name) == 1:
                self.classes[node.name] = cls
            for stmt in node.body:
                if isinstance(stmt, (ast.Assign, ast.AnnAssign)):  # a class-level `x = ...`
                    for t in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]):
                        for name in _names(t):
                            cls.stores.setdefault(name, []).append((None, None))
                self._walk(stmt, None, False)
            return
        owner = by_scope.get(id(parent)) if direct and parent.kind == "class" else None
        fn = _Fn(node, scope, owner, module_level)
        self.fns.append(fn)
        if owner is not None:
            owner.methods[node.name] = fn
        if module_level and self.counts.get(node.name) == 1:
            self.module_fns[node.name] = fn
        for i, stmt in enumerate(node.body):
            fn.top = i
            self._walk(stmt, fn, False)
        self.fn_of[id(scope)] = fn
        outer = scope.parent
        while fn.nonlocals and outer is not None and outer.kind == "function":  # `nonlocal t; t = ...` in a nested def
            for name in fn.nonlocals:                                          # rebinds t of the enclosing def(s)
                if id(outer) in self.fn_of:
                    self.fn_of[id(outer)]._bind(name, _UNKNOWN)
            outer = outer.parent

    def _walk(self, node, fn: Optional[_Fn], opaque: bool, module_level: bool = False) -> None:
        """Record what `node` and its children (not nested defs' bodies) bind, store, call and reference."""
        if isinstance(node, _FN + (ast.ClassDef,)):
            if fn is not None:
                fn._bind(node.name, _UNKNOWN)
            if module_level:
                self.counts[node.name] = self.counts.get(node.name, 0) + 1
            header = list(node.decorator_list)
            if isinstance(node, ast.ClassDef):
                header += node.bases + [k.value for k in node.keywords]
            else:
                header += node.args.defaults + [d for d in node.args.kw_defaults if d is not None]
            for h in header:
                self._walk(h, fn, opaque, module_level)
            return
        if fn is not None:
            fn.collect(node, opaque)
        self_name = fn.self_name if fn is not None else None
        if isinstance(node, ast.Call):
            self.call_funcs.add(id(node.func))
            if fn is None and isinstance(node.func, ast.Name):
                self.refs[node.func.id] = self.refs.get(node.func.id, 0) + 1  # a call outside any def: not followed
            self._store_call(node, fn)
        elif isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load) and id(node) not in self.call_funcs:
                self.refs[node.id] = self.refs.get(node.id, 0) + 1
            elif module_level and not isinstance(node.ctx, ast.Load):
                self.counts[node.id] = self.counts.get(node.id, 0) + 1
        elif isinstance(node, ast.Attribute):
            on_self = self_name is not None and isinstance(node.value, ast.Name) and node.value.id == self_name
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                if not on_self:
                    self.other_stores.add(node.attr)  # `obj.x = ...`, a closure's or a decorated method's store
            elif not on_self or id(node) not in self.call_funcs:
                self.attr_refs[node.attr] = self.attr_refs.get(node.attr, 0) + 1
        elif self_name is not None and isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Delete)):
            self._store(node, fn)
        elif (module_level and isinstance(node, (ast.Import, ast.ImportFrom))) or isinstance(node, ast.Global):
            for name in _unknown_bindings(node):  # `global f` in a def: f may be rebound there
                self.counts[name] = self.counts.get(name, 0) + 1
        if isinstance(node, _OPAQUE):  # a comprehension over displays (`[f(x) for x in (q, k)]`): its calls' sites
            inner = _display_comprehension(node) if not opaque else True  # are read with x a tensor (_param_facts)
        else:
            inner = opaque
        for child in ast.iter_child_nodes(node):
            self._walk(child, fn, inner, module_level)

    def _link(self, cls: _Cls) -> None:
        for base in cls.node.bases:
            chain = attribute_chain(base)
            if chain is not None and len(chain) == 1 and chain[0] in self.classes:
                cls.bases.append(self.classes[chain[0]])
                continue
            root = cls.scope.parent.resolve(chain[0]) if chain else None
            qual = ".".join([root, *chain[1:]]) if root is not None else None
            cls.opaque_base = cls.opaque_base or qual not in MODULE_BASES
            if qual is not None and qual.startswith("torch.nn."):
                cls.module = True
            if chain is not None and chain[0] in self.module.project_classes:
                cls.module = True
        cls.module = cls.module or any(self._is_module(b) for b in cls.bases)
        if cls.module and "forward" in cls.methods:
            fwd = cls.methods["forward"]
            # as the nn-module transform: forward's arguments without a default or an annotation
            fwd.assumed = frozenset(a.arg for a in fwd.node.args.args[1:] if a.arg not in fwd.has_default and a.annotation is None)

    def _is_module(self, cls: _Cls, seen=()) -> bool:
        if cls.module or id(cls) in seen:
            return cls.module
        return any(self._is_module(b, seen + (id(cls),)) for b in cls.bases)

    def _setattr_elsewhere(self, name) -> None:
        """`setattr(obj, name, v)` on another receiver than a method's self: that attribute, or any, is unknown."""
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            self.other_stores.add(name.value)
        else:
            self.any_attribute = True

    @staticmethod
    def _store(node, fn: _Fn) -> None:
        targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
        direct = isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == fn.self_name:
                    fn.cls.stores.setdefault(n.attr, []).append((node.value if direct and n is t else None, fn))
                    if direct and n is t:
                        fn.top_of[id(node.value)] = fn.top

    def _store_call(self, node: ast.Call, fn: Optional[_Fn]) -> None:
        """`self.register_buffer("x", t)`, `setattr(self, "x", v)` (unknown), `setattr(obj, name, v)`, ..."""
        func = node.func
        self_name = fn.self_name if fn is not None else None

        def is_self(n) -> bool:
            return self_name is not None and isinstance(n, ast.Name) and n.id == self_name

        on_self = isinstance(func, ast.Attribute) and is_self(func.value)
        name = func.id if isinstance(func, ast.Name) else func.attr if on_self else None
        registers = name in ("register_buffer", "register_parameter")
        if name == "setattr":
            if not (node.args and is_self(node.args[0])):
                if len(node.args) > 1:
                    self._setattr_elsewhere(node.args[1])
                return
            args = node.args[1:]
        elif registers or name == "__setattr__":
            args = node.args
        else:
            return
        if not args or not (isinstance(args[0], ast.Constant) and isinstance(args[0].value, str)):
            fn.cls.dynamic = True
            return
        value = None
        if registers:
            value = args[1] if len(args) > 1 else next((k.value for k in node.keywords if k.arg in ("tensor", "param")), None)
            if value is not None:
                fn.top_of[id(value)] = fn.top
        fn.cls.stores.setdefault(args[0].value, []).append((value, fn))

    def _layers(self, cls: _Cls) -> frozenset:
        """As the nn-module transform's submodules: `self.x = <torch.nn layer or module class defined above>(...)`."""
        if not self._is_module(cls):
            return frozenset()
        earlier = {c.node.name for c in self.all_classes if c.node.lineno < cls.node.lineno and self._is_module(c)}
        earlier |= self.module.project_classes
        found = set()
        for attr, stores in cls.stores.items():
            for value, fn in stores:
                if fn is None or not isinstance(value, ast.Call):
                    continue
                chain = attribute_chain(value.func)
                if chain is None:
                    continue
                root = fn.scope.resolve(chain[0])
                qual = ".".join([root, *chain[1:]]) if root is not None else ""
                layer = (qual.startswith("torch.nn.") and not qual.startswith("torch.nn.functional")) or (
                    len(chain) == 1 and chain[0] in earlier)
                if layer and qual.rsplit(".", 1)[-1] not in TUPLE_RETURNING_LAYERS:
                    found.add(attr)
        # an attribute the class itself never stores, stored by its in-file relatives (GPTJFlashAttention2's
        # `self.q_proj`, built in GPTJAttention.__init__): a layer when every one of those stores builds a torch.nn one
        for attr in {n for c in cls.family for n in c.stores} - set(cls.stores) - self.other_stores:
            stores = [st for c in cls.family for st in c.stores.get(attr, ())]
            if stores and all(self._constructed(v, f, set(), NON_TENSOR_MODULES) is False for v, f in stores):
                found.add(attr)
        return frozenset(found)

    def _family(self, cls: _Cls) -> list:
        """The class, its in-file ancestors and descendants."""
        up, todo = [], [cls]
        while todo:
            c = todo.pop()
            if c not in up:
                up.append(c)
                todo.extend(c.bases)
        down, todo = [], [cls]
        while todo:
            c = todo.pop()
            if c not in down:
                down.append(c)
                todo.extend(d for d in self.all_classes if c in d.bases)
        return up + [c for c in down if c not in up]

    # ----- evaluation ------------------------------------------------------------------------
    def tensor(self, node, fn: _Fn, local: frozenset, at: Optional[int] = None) -> bool:
        """Whether `node` is a tensor in `fn`, given the names `local` known to be. `at`: the index of the
        top-level statement of fn's body `node` is in (then `local` is `fn.locals`): a name is then also
        a tensor when the binding that reaches that statement is one (`_Fn.reaching`)."""
        if isinstance(node, ast.Name):
            return node.id in local or (at is not None and self._reaches_tensor(node.id, fn, at))
        if isinstance(node, ast.Call):
            func = node.func
            chain = attribute_chain(func)
            if chain is not None and len(chain) >= 2 and any(chain[0] in s.mlx_core for s in _scopes(fn.scope)):
                return chain[-1] not in MX_NON_ARRAY_FUNCTIONS  # converted code (a second pass), as TensorFacts
            if chain is not None:
                root = fn.scope.resolve(chain[0])
                if root is not None:
                    qual = ".".join([root, *chain[1:]])
                    if qual in _TENSOR_CONSTRUCTORS:
                        return True
                    rule = self.index.function(qual)
                    return rule is not None and rule.returns == "tensor"
            if isinstance(func, ast.Name):
                if func.id in self.aliases and _bound_between(fn.scope, func.id):  # (read where it is bound)
                    return all(id(f) in self.returning for f in self.aliases[func.id])
                target = self.module_fns.get(func.id)
                known = target is not None and id(target) in self.returning or func.id in self.module.tensor_functions
                return known and not _bound_between(fn.scope, func.id)
            if isinstance(func, ast.Attribute):
                if fn.self_name is not None and isinstance(func.value, ast.Name) and func.value.id == fn.self_name:
                    return func.attr in self.callables.get(id(fn.cls), ()) or func.attr in fn.cls.scope.submodules
                rule = self.index.method(func.attr)
                if rule is None or rule.returns != "tensor":
                    return False
                if self.tensor(func.value, fn, local, at):
                    return True
                # as the pass reads it (tensors.TensorFacts.is_tensor): `dim=` / `keepdim=`, or a torch-only
                # method name, on a plain receiver is rewritten, so its result is an array once translated
                if func.attr in MODULE_TENSOR_METHODS:
                    return False  # `model.to(device)`, `.half()`: nn.Module has them too (and returns the module)
                if any(k.arg in TORCH_KEYWORDS for k in node.keywords) or not rule.ambiguous_method:
                    return _plain_receiver(func.value, fn)
                return False
            return False
        if isinstance(node, ast.BinOp):
            return self.tensor(node.left, fn, local, at) or self.tensor(node.right, fn, local, at)
        if isinstance(node, ast.UnaryOp):
            return not isinstance(node.op, ast.Not) and self.tensor(node.operand, fn, local, at)
        if isinstance(node, ast.Compare):
            if any(isinstance(op, _PYTHON_BOOL_TESTS) for op in node.ops):
                return False  # `x is None`, `i in x`: a Python bool
            return self.tensor(node.left, fn, local, at) or any(self.tensor(c, fn, local, at) for c in node.comparators)
        if isinstance(node, ast.Subscript):
            return self.tensor(node.value, fn, local, at)
        if isinstance(node, ast.IfExp):
            return self.tensor(node.body, fn, local, at) and self.tensor(node.orelse, fn, local, at)
        if isinstance(node, ast.Attribute):
            if fn.self_name is not None and isinstance(node.value, ast.Name) and node.value.id == fn.self_name:
                return node.attr in self.attributes.get(id(fn.cls), ())
            if cached_layer(node, self.caches):
                return True
            return node.attr in _TENSOR_ATTRS and self.tensor(node.value, fn, local, at)
        return False

    def _binding(self, binding, fn: _Fn, local: frozenset, at: Optional[int] = None) -> bool:
        if binding is None:
            return False
        kind, what = binding[0], binding[1]
        if kind == "unpack" and binding[2] is not None and self._element(what, binding[2], binding[3], fn, local, at):
            return True
        if kind == "param":
            return what in fn.annotated or what in fn.assumed or what in self.params.get(id(fn), ())
        if (kind == "assign" and fn.self_name is not None and isinstance(what, ast.Call) and isinstance(what.func, ast.Attribute)
                and isinstance(what.func.value, ast.Name) and what.func.value.id == fn.self_name and what.func.attr in fn.cls.layers):
            return True
        return self.tensor(what, fn, local, at)

    def _reaches_tensor(self, name: str, fn: _Fn, at: int) -> bool:
        """The binding of `name` reaching top-level statement `at` of fn is a tensor (memoised per round:
        the answer depends on this round's facts and `fn.locals` only)."""
        key = (id(fn), name, at)
        if key not in self._reach_memo:
            self._reach_memo[key] = False  # a cycle cannot arise (the binding is earlier), but stay safe
            found = fn.reaching(name, at)
            self._reach_memo[key] = found is not None and self._binding(found[0], fn, fn.locals, found[1])
        return self._reach_memo[key]

    def _element(self, value, i: int, count: int, fn: _Fn, local: frozenset = frozenset(), at: Optional[int] = None) -> bool:
        """Element `i` of `f(...)` / `self.m(...)` unpacked into `count` names, every return of which is a tuple
        whose element `i` is a tensor."""
        if isinstance(value, ast.ListComp):  # `q, k = [s.view(shape) for s in (q, k)]` (tensors.TensorFacts reads it so)
            gen = value.generators
            iterable = gen[0].iter if len(gen) == 1 else None
            return (len(gen) == 1 and not gen[0].ifs and not gen[0].is_async and isinstance(gen[0].target, ast.Name)
                    and isinstance(iterable, (ast.Tuple, ast.List)) and len(iterable.elts) == count
                    and all(not isinstance(e, ast.Starred) and self.tensor(e, fn, local, at) for e in iterable.elts)
                    and self.tensor(value.elt, fn, local | {gen[0].target.id}, None))
        if not isinstance(value, ast.Call):
            return False
        if self._cache_update(value, fn, local, at):
            return count == 2
        func, facts = value.func, None
        if isinstance(func, ast.Name) and func.id in self.aliases and _bound_between(fn.scope, func.id):
            facts = _common(self.tuples.get(id(f)) for f in self.aliases[func.id])
        elif isinstance(func, ast.Name) and func.id in self.module_fns and not _bound_between(fn.scope, func.id):
            facts = self.tuples.get(id(self.module_fns[func.id]))
        elif (fn.self_name is not None and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
              and func.value.id == fn.self_name):
            facts = self.tuple_methods.get(id(fn.cls), {}).get(func.attr)
        return facts is not None and len(facts) == count and facts[i]

    def _all_counts(self) -> dict:
        """`_binding_counts` of the file, read once (several facts and every round's `_param_facts` ask)."""
        if self._counts_all is None:
            self._counts_all = _binding_counts(self.module.node)
        return self._counts_all

    def _cache_update(self, call: ast.Call, fn: _Fn, local: frozenset, at: Optional[int]) -> bool:
        """`cache.update(k, v, ...)` of a hub cache (`_cache_names`) given two tensors: the stand-in returns them,
        or them concatenated after the cached ones, so both elements of the pair it returns are tensors."""
        func = call.func
        return (isinstance(func, ast.Attribute) and func.attr == "update" and isinstance(func.value, ast.Name)
                and func.value.id in self.caches and len(call.args) >= 2
                and not any(isinstance(a, ast.Starred) for a in call.args[:2])
                and all(self.tensor(a, fn, local, at) for a in call.args[:2]))

    def _cache_names(self) -> frozenset:
        """Names every binding of which anywhere in the file is a hub key/value cache (`--hub transformers`: the
        stand-ins of Cache, DynamicCache, EncoderDecoderCache, hub/transformers) or None: a parameter annotated with
        one of those classes (`past_key_values: Cache | None = None`), `name = None`, `name = DynamicCache(...)`, or
        `name = other.self_attention_cache` / `.cross_attention_cache`, another such name, or `a if c else b` of
        those. Their `update(k, v, ...)`
        returns a pair of tensors given two (`_cache_update`); tensors.TensorFacts reads it from the module's
        `tensor_tuples` (key ("cache", name))."""
        counts = self._all_counts()
        classes = frozenset(n for n, stand_in in self.module.hub_names.items()
                            if stand_in in ("Cache", "DynamicCache", "EncoderDecoderCache") and counts.get(n) == 1)
        if not classes:
            return frozenset()

        def cache_type(ann) -> bool:
            if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
                sides = [ann.left, ann.right]
                nones = [isinstance(x, ast.Constant) and x.value is None for x in sides]
                return not all(nones) and all(n or cache_type(x) for x, n in zip(sides, nones))
            if isinstance(ann, ast.Subscript) and isinstance(ann.value, ast.Name) and ann.value.id == "Optional":
                return cache_type(ann.slice)
            return isinstance(ann, ast.Name) and ann.id in classes

        bindings: dict = {}  # name -> [ast node bound, or None: unknown]
        for node in ast.walk(self.module.node):
            if isinstance(node, ast.arg):
                bindings.setdefault(node.arg, []).append(("type",) if cache_type(node.annotation) else None)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        bindings.setdefault(t.id, []).append(("value", node.value))
        found = {name for name, found in bindings.items() if found and counts.get(name) == len(found)}

        def is_cache(value, names) -> bool:
            if isinstance(value, ast.Constant) and value.value is None:
                return True
            if isinstance(value, ast.Name):
                return value.id in names  # `curr_past_key_values = past_key_values`
            if isinstance(value, ast.IfExp):  # `past_key_values if use_cache else None`
                return is_cache(value.body, names) and is_cache(value.orelse, names)
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in classes:
                return True
            return (isinstance(value, ast.Attribute) and value.attr in ("self_attention_cache", "cross_attention_cache")
                    and isinstance(value.value, ast.Name) and value.value.id in names)

        while True:  # greatest fixed point: every binding a cache given the names kept
            keep = {name for name in found if all(b is not None and (b[0] == "type" or is_cache(b[1], found))
                                                  for b in bindings[name])}
            if keep == found:
                break
            found = keep
        return frozenset(name for name in found if any(b[0] == "type" or not (
            isinstance(b[1], ast.Constant)) for b in bindings[name]))

    def _tuple_facts(self, fn: _Fn) -> Optional[tuple]:
        """(is element i a tensor, ...) when every return is a tuple display of one length (no bare return,
        no fall-through, no yield), if any element is."""
        if (not fn.returns or fn.bare_return or fn.falls_through or fn.generator or isinstance(fn.node, ast.AsyncFunctionDef)
                or not all(isinstance(r, ast.Tuple) and not any(isinstance(e, ast.Starred) for e in r.elts) for r in fn.returns)):
            return None
        count = len(fn.returns[0].elts)
        if any(len(r.elts) != count for r in fn.returns):
            return None
        facts = tuple(all(self.tensor(r.elts[i], fn, fn.locals, fn.top_of.get(id(r))) for r in fn.returns)
                      for i in range(count))
        return facts if any(facts) else None

    def _locals(self, fn: _Fn) -> frozenset:
        local = frozenset(name for name, bs in fn.bindings.items() if all(b is not None for b in bs))
        while True:
            keep = frozenset(name for name in local if all(self._binding(b, fn, local) for b in fn.bindings[name]))
            if keep == local:
                return local
            local = keep

    def _round(self) -> tuple:
        self._reach_memo = {}
        for fn in self.fns:
            fn.locals = self._locals(fn)
        returning = {id(fn) for fn in self.fns if fn.returns and not fn.bare_return and not fn.falls_through
                     and not fn.generator and not isinstance(fn.node, ast.AsyncFunctionDef)
                     and all(self.tensor(r, fn, fn.locals, fn.top_of.get(id(r))) for r in fn.returns)}
        params = self._param_facts()
        tuples = {}
        for fn in self.fns:
            facts = self._tuple_facts(fn)
            if facts is not None:
                tuples[id(fn)] = facts
        tuple_methods = {}
        for cls in self.all_classes:
            found = {}
            for name, fn in cls.methods.items():
                overrides = [tuples.get(id(c.methods[name])) for c in cls.family if name in c.methods]
                if fn.self_name is None or any(name in c.stores for c in cls.family) or None in overrides:
                    continue
                if len({len(o) for o in overrides}) == 1:
                    found[name] = tuple(all(o[i] for o in overrides) for i in range(len(overrides[0])))
            found.update(self._tuple_submodules(cls, tuples, found))
            tuple_methods[id(cls)] = found
        attributes = {}
        for cls in self.all_classes:
            if self.any_attribute or any(c.dynamic for c in cls.family):
                continue
            names = set()
            for c in cls.family:
                names.update(c.stores)
            known = set()
            for name in names:
                if name in self.other_stores:
                    continue
                stores = [s for c in cls.family for s in c.stores.get(name, ())]
                if stores and all(v is not None and f is not None and self.tensor(v, f, f.locals, f.top_of.get(id(v)))
                                  for v, f in stores):
                    known.add(name)
            attributes[id(cls)] = frozenset(known)
        callables = {}
        for cls in self.all_classes:
            found = set()
            for name, fn in cls.methods.items():
                overrides = [c.methods[name] for c in cls.family if name in c.methods]
                stored = any(name in c.stores for c in cls.family)
                if fn.self_name is not None and not stored and all(id(f) in returning for f in overrides):
                    found.add(name)
            found.update(self._tensor_submodule_attrs(cls, returning))
            callables[id(cls)] = frozenset(found)
        return params, returning, attributes, callables, tuples, tuple_methods

    def _optional_attributes(self, cls: _Cls) -> frozenset:
        """Attributes every store of which in the class family is a tensor or None (`nn.Parameter(...) if c else None`,
        `self.x = None`), at least one a tensor: `self.x` is a tensor wherever it is not None (timm ConvNeXt's
        `self.gamma`, read under `if self.gamma is not None:`; transforms/facts/none_checks.py)."""
        if self.any_attribute or any(c.dynamic for c in cls.family):
            return frozenset()
        known = self.attributes.get(id(cls), frozenset())
        found = set()
        for name in {n for c in cls.family for n in c.stores} - self.other_stores - known:
            stores = [st for c in cls.family for st in c.stores.get(name, ())]
            kinds = [self._tensor_or_none(v, f, None if f is None else f.top_of.get(id(v))) for v, f in stores]
            if kinds and all(k is not None for k in kinds) and any(kinds):
                found.add(name)
        return frozenset(found)

    def _tensor_or_none(self, value, fn, at: Optional[int]) -> Optional[bool]:
        """True: a tensor; False: None; None: anything else (or either, unknown). `at`: the top-level statement."""
        if value is None or fn is None:
            return None
        if isinstance(value, ast.Constant) and value.value is None:
            return False
        if isinstance(value, ast.IfExp):
            a, b = self._tensor_or_none(value.body, fn, at), self._tensor_or_none(value.orelse, fn, at)
            return None if a is None or b is None else a or b
        return True if self.tensor(value, fn, fn.locals, at) else None

    def _tuple_submodules(self, cls: _Cls, tuples: dict, methods: dict) -> dict:
        """`a, b = self.sub(x)`: every store of `self.sub` in the class family constructs a module class of this file
        whose forward (no decorator but transformers' `auto_docstring`, which returns it as it is; no `__call__`)
        returns tuples (`tuples`): element i is a tensor when it is in every such forward (fnet's
        `prediction_scores, seq_relationship_score = self.cls(sequence_output, pooled_output)`)."""
        found = {}
        for name in {n for c in cls.family for n in c.stores} - set(methods) - self.other_stores:
            if any(name in c.methods for c in cls.family):
                continue
            facts = []
            for value, fn in (st for c in cls.family for st in c.stores.get(name, ())):
                forward = None
                if (fn is not None and isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                        and value.func.id in self.classes and not _bound_between(fn.scope, value.func.id)):
                    sub = self.classes[value.func.id]
                    forward = self._lookup(sub, "forward")
                    if (forward is None or not self._is_module(sub) or "__call__" in {n for c in sub.family for n in c.methods}
                            or not all(_decorator_name(d) == "auto_docstring" for d in forward.node.decorator_list)):
                        forward = None
                facts.append(tuples.get(id(forward)) if forward is not None else None)
            common = _common(facts)
            if common is not None:
                found[name] = common
        return found

    def _tensor_submodule_attrs(self, cls: _Cls, returning: set) -> set:
        """`self.sub = Cls(...)`, a class of this file whose forward returns a tensor, at every store."""
        found = set()
        names = {n for c in cls.family for n in c.stores}
        for name in names:
            if name in self.other_stores:
                continue
            stores = [s for c in cls.family for s in c.stores.get(name, ())]
            ok, own = bool(stores), False
            for value, fn in stores:
                kinds = self._constructed(value, fn, returning, NON_TENSOR_MODULES)
                if kinds is None:
                    ok = False
                    break
                own = own or kinds
            if ok and (own or not set(cls.stores).intersection([name])):
                found.add(name)  # (torch.nn layers stored by the class itself: names.Scope.submodules has them)
        return found

    def _constructed(self, value, fn, returning, non_tensor) -> Optional[bool]:
        """True: a tensor-forward class of this file; False: a tensor torch.nn layer; None: anything else."""
        if value is None or fn is None:
            return None
        if isinstance(value, ast.IfExp):
            a = self._constructed(value.body, fn, returning, non_tensor)
            b = self._constructed(value.orelse, fn, returning, non_tensor)
            return None if a is None or b is None else a or b
        if not isinstance(value, ast.Call):
            return None
        chain = attribute_chain(value.func)
        if chain is None:
            return None
        if len(chain) == 1 and chain[0] in self.classes and not _bound_between(fn.scope, chain[0]):
            cls = self.classes[chain[0]]
            forward = self._lookup(cls, "forward")
            if forward is None or "__call__" in {n for c in cls.family for n in c.methods} or not self._is_module(cls):
                return None
            return True if id(forward) in returning else None
        root = fn.scope.resolve(chain[0])
        qual = ".".join([root, *chain[1:]]) if root is not None else None
        if qual is not None and qual.startswith("torch.nn.") and qual not in non_tensor and not qual.startswith("torch.nn.functional"):
            return False if qual not in _TENSOR_CONSTRUCTORS and "." not in qual[len("torch.nn."):] else None
        return None

    def _lookup(self, cls: _Cls, name: str, seen: tuple = ()) -> Optional[_Fn]:
        """`name` in the class or its in-file bases (depth first); None if not found, or if a base outside
        the file (other than torch.nn.Module) may define it."""
        if name in cls.methods:
            return cls.methods[name]
        if cls.opaque_base or id(cls) in seen:
            return None
        for base in cls.bases:
            found = self._lookup(base, name, seen + (id(cls),))
            if found is not None:
                return found
        return None

    def _param_facts(self) -> dict:
        sites: dict = {}  # id(_Fn) -> list of (call, caller _Fn, opaque)
        targets = {}
        for name, fn in self.module_fns.items():
            # referenced only by calls, and as the value of function aliases (whose calls are its call sites)
            if not _kept_decorators(fn) and self.refs.get(name, 0) == self.alias_refs.get(name, 0):
                targets[id(fn)] = fn
        static = self.counts.get("staticmethod") is None and not self._all_counts().get("staticmethod")
        for cls in self.all_classes:
            for name, fn in cls.methods.items():
                # an undecorated method, or a @staticmethod (the builtin: it passes the call's arguments as they are)
                plain = fn.self_name is not None and not _kept_decorators(fn)
                plain = plain or (static and fn.self_name is None and len(fn.node.decorator_list) == 1
                                  and isinstance(fn.node.decorator_list[0], ast.Name)
                                  and fn.node.decorator_list[0].id == "staticmethod")
                if (plain and name != "forward" and not name.startswith("__")
                        and not self.attr_refs.get(name) and not any(name in c.methods for c in cls.family if c is not cls)):
                    targets[id(fn)] = fn
        unresolved: set = set()
        for caller in self.fns:
            for call, opaque in caller.calls:
                func = call.func
                target = None
                if isinstance(func, ast.Name) and func.id in self.module_fns and not _bound_between(caller.scope, func.id):
                    target = self.module_fns[func.id]
                elif (isinstance(func, ast.Attribute) and caller.self_name is not None and isinstance(func.value, ast.Name)
                      and func.value.id == caller.self_name):
                    target = self._lookup(caller.cls, func.attr)
                    if target is None:  # a base outside the file first: this call may reach any method of that name
                        unresolved.add(func.attr)
                if target is not None and id(target) in targets:
                    sites.setdefault(id(target), []).append((call, caller, opaque))
                elif isinstance(func, ast.Name) and func.id in self.aliases and _bound_between(caller.scope, func.id):
                    for held in self.aliases[func.id]:  # `attention_interface(self, q, k, v, ...)`: a call of each
                        sites.setdefault(id(held), []).append((call, caller, opaque))
        params = {}
        for key, fn in targets.items():
            calls = sites.get(key)
            if not calls or (fn.cls is not None and fn.node.name in unresolved):
                continue
            names = fn.positional[1:] if fn.cls is not None and fn.self_name is not None else fn.positional
            known = set(names) | set(fn.kwonly)
            signature = signature_of(names, fn.kwonly, optional=True)
            for call, caller, opaque in calls:
                # keywords the function does not name go to its **kwargs (or fail in Python): not a parameter fact
                bound = bind_ast(_without_double_star(call), signature, other_keywords=True)
                if bound is None:
                    known = set()
                    break
                at = caller.top_of.get(id(call))
                passed = bound.values
                local = caller.locals
                if isinstance(opaque, tuple):  # in a comprehension over displays of tensors: its targets are tensors
                    targets = self._display_targets(opaque, call, caller, at)
                    opaque = targets is None
                    local = local | (targets or frozenset())
                known = {p for p in known if p in passed and not opaque and self.tensor(passed[p], caller, local, at)}
                if not known:
                    break
            if known:
                params[key] = frozenset(known)
        return params

    def _display_targets(self, comp: tuple, call: ast.Call, caller: _Fn, at: Optional[int]) -> Optional[frozenset]:
        """The targets of a comprehension every `for` of which iterates a display of tensors (`_display_comprehension`),
        for a call in it; the empty set for a call in its first iterable (run in the enclosing scope); else None."""
        node, first_iter = comp
        if id(call) in first_iter:
            return frozenset()
        names = set()
        for gen in node.generators:  # a later `for`'s display may read an earlier target
            if not all(self.tensor(e, caller, caller.locals | names, None if names else at) for e in gen.iter.elts):
                return None
            names.add(gen.target.id)
        return frozenset(names)

    def run(self) -> None:
        for _ in range(_MAX_ROUNDS):
            facts = self._round()
            if facts == (self.params, self.returning, self.attributes, self.callables, self.tuples, self.tuple_methods):
                break
            self.params, self.returning, self.attributes, self.callables, self.tuples, self.tuple_methods = facts
        for fn in self.fns:
            fn.scope.tensor_params = self.params.get(id(fn), frozenset())
        for cls in self.all_classes:
            cls.scope.tensor_attributes = self.attributes.get(id(cls), frozenset())
            cls.scope.optional_attributes = self._optional_attributes(cls)
            cls.scope.submodules = cls.scope.submodules | self.callables.get(id(cls), frozenset())
            cls.scope.tensor_tuples = self.tuple_methods.get(id(cls), {})
        self.module.tensor_tuples = {name: self.tuples[id(fn)] for name, fn in self.module_fns.items() if id(fn) in self.tuples}
        self.module.tensor_functions = self.module.tensor_functions | frozenset(
            name for name, fn in self.module_fns.items() if id(fn) in self.returning)
        for name in self.caches:  # `k, v = cache.update(k, v, i)` (tensors.TensorFacts.tuple_elements)
            self.module.tensor_tuples[("cache", name)] = (True, True)
        self._config_params()
        self._int_attributes()
        for name, targets in self.aliases.items():  # read by TensorFacts wherever the name is bound (alias_key)
            facts = _common(self.tuples.get(id(f)) for f in targets)
            if facts is not None:
                self.module.tensor_tuples[alias_key(name)] = facts
            if all(id(f) in self.returning for f in targets):
                self.module.tensor_functions = self.module.tensor_functions | {alias_key(name)}

    def _config_params(self) -> None:
        """Parameters that hold a strict transformers config (`names.Scope.config_ints`): annotated with its class,
        or `__init__`'s parameter of a class of the file only ever constructed in the file's defs, every such call
        passing one for it (`BertEmbeddings(config)` in `BertModel.__init__(self, config: BertConfig)`). Never
        rebound in the def. The scopes' `config_params` (names.Scope.int_names reads their int fields)."""
        configs = self.module.config_ints
        if not configs:
            return
        counts = self._all_counts()
        known: dict = {}  # id(_Fn) -> {parameter: config class}
        for fn in self.fns:
            args = fn.node.args
            for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                ann = a.annotation
                if isinstance(ann, ast.Name) and ann.id in configs and counts.get(ann.id) == 1 and _only_param(fn, a.arg):
                    known.setdefault(id(fn), {})[a.arg] = ann.id
        sites = self._construction_sites(counts)
        for _ in range(_MAX_ROUNDS):
            changed = False
            for key, (init, calls) in sites.items():
                signature = signature_of(init.positional[1:], init.kwonly, optional=True)
                found = None
                for call, caller in calls:
                    bound = bind_ast(_without_double_star(call), signature, other_keywords=True)
                    passed = bound.values if bound is not None else {}
                    here = {p: known[id(caller)][v.id] for p, v in passed.items()
                            if isinstance(v, ast.Name) and v.id in known.get(id(caller), {})}
                    found = here if found is None else {p: c for p, c in found.items() if here.get(p) == c}
                merged = {**{p: c for p, c in (found or {}).items() if _only_param(init, p)}, **known.get(key, {})}
                if merged != known.get(key, {}):
                    known[key], changed = merged, True
            if not changed:
                break
        for fn in self.fns:
            if id(fn) in known:
                fn.scope.config_params = known[id(fn)]

    def _int_attributes(self) -> None:
        """`self.x` always an int in a class's methods (or `x[]`: a sequence of ints, `scalar_facts.is_int_sequence`):
        every store of `x` in the class and its in-file relatives is an int (`scalar_facts.is_int` with the storing method's int names and the attributes found so far: a least
        fixed point), there is one, and no other receiver's `.x` is stored. The class scopes' `int_attributes`."""
        if self.any_attribute:
            return
        found: dict = {id(c): set(self._layer_ints(c)) for c in self.all_classes}
        called = {n.func.value.attr for n in ast.walk(self.module.node) if isinstance(n, ast.Call)
                  and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Attribute)}  # `o.x.append(v)`
        for _ in range(_MAX_ROUNDS):
            changed = False
            for cls in self.all_classes:
                if any(c.dynamic for c in cls.family):
                    continue
                known = set().union(*(found[id(c)] for c in cls.family))
                for name in {n for c in cls.family for n in c.stores} - known - self.other_stores:
                    stores = [st for c in cls.family for st in c.stores.get(name, ())]
                    if stores and all(v is not None and f is not None and f.self_name is not None and scalar_facts.is_int(
                            v, set(f.scope.own_int_names()) | {f"{f.self_name}.{a}" for a in known}) for v, f in stores):
                        found[id(cls)].add(name)
                        changed = True
                    elif f"{name}[]" not in known and name not in called and stores and all(
                            v is not None and f is not None and f.self_name is not None and scalar_facts.is_int_sequence(
                                v, set(f.scope.own_int_names()) | {f"{f.self_name}.{a}" for a in known}) for v, f in stores):
                        found[id(cls)].add(f"{name}[]")  # every element an int: `self.window_size[0]`
                        changed = True
                    elif f"{name}?" not in known and stores and all(
                            v is not None and f is not None and f.self_name is not None and isinstance(v, (ast.Name, ast.Attribute))
                            and scalar_facts.int_or_raises(v, set(f.scope.own_int_names()) | {f"{f.self_name}.{a}" for a in known})
                            for v, f in stores):
                        found[id(cls)].add(f"{name}?")  # an int or a list / tuple / None: `self.image_size = config.image_size`
                        changed = True
            if not changed:
                break
        for cls in self.all_classes:
            cls.scope.int_attributes = frozenset().union(*(found[id(c)] for c in cls.family))
        # `isinstance(m, C)` narrows m to C (transforms/facts/layer_checks.py): C's int attributes by its name
        self.module.class_ints = {name: cls.scope.int_attributes for name, cls in self.classes.items() if cls.scope.int_attributes}

    def _layer_ints(self, cls: _Cls) -> set:
        """`x.<attr>` for the int attributes of a torch.nn layer (torch_facts.LAYER_INT_ATTRIBUTES) where every store
        of `self.x` in the class family builds that layer, or a class of the file deriving from it (through in-file
        single bases) none of whose classes stores or defines that attribute (Whisper's `self.embed_positions =
        WhisperPositionalEmbedding(...)`, an nn.Embedding: `self.embed_positions.num_embeddings` is an int)."""
        if any(c.dynamic for c in cls.family):
            return set()
        found = set()
        for name in {n for c in cls.family for n in c.stores} - self.other_stores:
            stores = [st for c in cls.family for st in c.stores.get(name, ())]
            kinds = {self._built_layer(v, f) for v, f in stores}
            if len(kinds) != 1 or None in kinds:
                continue
            layer, owners = kinds.pop()
            found.update(f"{name}.{a}" for a in LAYER_INT_ATTRIBUTES[layer]  # (`m.e.num_embeddings = ...` anywhere:
                         if a not in self.other_stores                           # not the layer's own int)
                         and not any(a in c.stores or a in c.methods for c in owners))
        return found

    def _built_layer(self, value, fn) -> Optional[tuple]:
        """(torch.nn layer name, the file's classes in between) of `value`, a call building a layer of
        LAYER_INT_ATTRIBUTES or a class of the file deriving from one by single in-file bases; else None."""
        if fn is None or not isinstance(value, ast.Call):
            return None
        chain = attribute_chain(value.func)
        owners: tuple = ()
        seen, scope = 0, fn.scope
        while chain is not None and len(chain) == 1 and chain[0] in self.classes and seen < 16:
            if owners == () and _bound_between(fn.scope, chain[0]):
                return None
            cls = self.classes[chain[0]]
            if cls.dynamic or len(cls.node.bases) != 1 or cls.node.keywords:
                return None
            owners += (cls,)
            chain, seen, scope = attribute_chain(cls.node.bases[0]), seen + 1, cls.scope.parent
        if chain is None:
            return None
        root = scope.resolve(chain[0])
        qual = ".".join([root, *chain[1:]]) if root is not None else ""
        layer = qual[len("torch.nn."):] if qual.startswith("torch.nn.") else None
        return (layer, owners) if layer in LAYER_INT_ATTRIBUTES else None

    def _construction_sites(self, counts: dict) -> dict:
        """id(__init__) -> (its _Fn, [(call, caller)]) for the file's classes constructed only by calls in its defs
        (referenced otherwise only as isinstance's second argument, not subclassed in the file)."""
        checks: dict = {}  # class name -> its references as isinstance's second argument (they construct nothing)
        for node in ast.walk(self.module.node):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"
                    and counts.get("isinstance") is None and len(node.args) == 2):
                kinds = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
                for k in kinds:
                    if isinstance(k, ast.Name):
                        checks[k.id] = checks.get(k.id, 0) + 1
        inits = set()
        for name, cls in self.classes.items():
            init = cls.methods.get("__init__")
            if (init is not None and not init.node.decorator_list and self.refs.get(name, 0) == checks.get(name, 0)
                    and init.self_name is not None and not any(cls in c.bases for c in self.all_classes)):
                inits.add(id(init))
        sites: dict = {}
        for caller in self.fns:
            for call, _ in caller.calls:
                func = call.func
                if isinstance(func, ast.Name) and func.id in self.classes and not _bound_between(caller.scope, func.id):
                    init = self.classes[func.id].methods.get("__init__")
                    if init is not None and id(init) in inits:
                        sites.setdefault(id(init), (init, []))[1].append((call, caller))
        return sites

    def _function_aliases(self) -> dict:
        """Names every binding of which in the file is a function alias (module docstring), with the functions."""
        counts = self._all_counts()
        interfaces = frozenset(n for n, stand_in in self.module.hub_names.items()
                               if stand_in == "ALL_ATTENTION_FUNCTIONS" and counts.get(n) == 1)  # bound by the import only

        def function(node) -> Optional[_Fn]:
            if isinstance(node, ast.Name) and node.id in self.module_fns and counts.get(node.id) == 1:
                return self.module_fns[node.id]  # bound by its def only
            return None

        def held(value) -> Optional[list]:
            """The functions an assignment of `value` binds (an empty list: it raises), or None: no alias."""
            if function(value) is not None:
                return [function(value)]
            if isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name) and value.value.id in interfaces:
                return []
            if (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "get_interface"
                    and isinstance(value.func.value, ast.Name) and value.func.value.id in interfaces):
                bound = bind_ast(value, _GET_INTERFACE)
                default = bound.values.get("default") if bound is not None else None
                return [function(default)] if function(default) is not None else None
            return None

        targets: dict = {}  # name -> [_Fn]
        stores: dict = {}   # name -> alias assignments of it
        used: dict = {}     # name -> [functions' names read as alias values]
        for node in ast.walk(self.module.node):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target = node.target
            else:
                continue
            found = held(node.value) if isinstance(target, ast.Name) else None
            if found is not None:
                targets.setdefault(target.id, []).extend(found)
                stores[target.id] = stores.get(target.id, 0) + 1
                used.setdefault(target.id, []).extend(f.node.name for f in found)
        # every binding of the name anywhere in the file is one of those assignments, and one binds a function
        aliases = {name: tuple(dict.fromkeys(fns)) for name, fns in targets.items() if fns and counts.get(name) == stores[name]}
        for name in aliases:
            if not self.refs.get(name):  # the alias is only called: the functions it holds reach no other place
                for f in used[name]:
                    self.alias_refs[f] = self.alias_refs.get(f, 0) + 1
        return aliases


_GET_INTERFACE = signature_of(["attn_implementation", "default"], [])


def _only_param(fn: _Fn, name: str) -> bool:
    """`name` is bound in the def only as its parameter."""
    return all(b is not None and b[0] == "param" for b in fn.bindings.get(name, ()))


def _without_double_star(call: ast.Call) -> ast.Call:
    """The call without its `**kwargs`: those cannot give a parameter that a positional or keyword argument gives
    (Python raises), so what the rest binds stands; a parameter they may give is left unbound (unknown)."""
    if all(k.arg is not None for k in call.keywords):
        return call
    return ast.Call(call.func, call.args, [k for k in call.keywords if k.arg is not None])


def _binding_counts(tree) -> dict:
    """How many places of the file bind each name (any scope: assignments, parameters, defs, imports, ...)."""
    counts: dict = {}

    def add(name) -> None:
        counts[name] = counts.get(name, 0) + 1

    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            add(node.id)
        elif isinstance(node, ast.arg):
            add(node.arg)
        elif isinstance(node, (*_FN, ast.ClassDef)):
            add(node.name)
        else:
            for name in _unknown_bindings(node):
                if not isinstance(node, (ast.For, ast.AsyncFor, ast.NamedExpr, ast.With, ast.AsyncWith, ast.Delete)):
                    add(name)  # (the targets of those are Names in a Store / Del context: counted above)
    return counts


def _common(facts) -> Optional[tuple]:
    """Element i a tensor in every one of the tuples facts (all of one length), or None."""
    facts = list(facts)
    if not facts or any(f is None for f in facts) or len({len(f) for f in facts}) != 1:
        return None
    common = tuple(all(f[i] for f in facts) for i in range(len(facts[0])))
    return common if any(common) else None


def cached_layer(node, caches) -> bool:
    """`cache.layers[i].keys` / `.values` of a name always holding a hub cache (`_cache_names`): the tensors cached
    for layer i (gpt2's cross-attention reads them back)."""
    value = node.value
    return (node.attr in ("keys", "values") and isinstance(value, ast.Subscript) and not isinstance(value.slice, ast.Slice)
            and isinstance(value.value, ast.Attribute) and value.value.attr == "layers"
            and isinstance(value.value.value, ast.Name) and value.value.value.id in caches)


def _display_comprehension(node):
    """(node, ids of the nodes of its first iterable) for a comprehension every `for` of which has a name target and a
    tuple or list display to iterate, with no `if` and no `async`; else True (opaque: its calls are not followed)."""
    generators = getattr(node, "generators", None)
    if not generators or not all(isinstance(g.target, ast.Name) and isinstance(g.iter, (ast.Tuple, ast.List)) and g.iter.elts
                                 and not g.ifs and not g.is_async and not any(isinstance(e, ast.Starred) for e in g.iter.elts)
                                 for g in generators):
        return True
    return node, frozenset(id(n) for n in ast.walk(generators[0].iter))


def _scopes(scope):
    while scope is not None:
        yield scope
        scope = scope.parent


def _bound_between(scope, name: str) -> bool:
    """Whether `name` is bound in a function scope between `scope` and the module (shadowing a module-level def)."""
    while scope is not None and scope.kind != "module":
        if scope.kind == "function" and scope.is_bound_locally(name):
            return True
        scope = scope.parent
    return False


def analyze(index, module_scope, scopes) -> None:
    """Fill the scopes' value facts (see the module docstring)."""
    if module_scope.node is None:
        return
    _Analysis(index, module_scope, scopes).run()


_BUILTINS = frozenset({"list", "tuple", "dict", "set", "str", "int", "float", "bool", "slice", "range", "zip", "map", "enumerate",
                       "sorted", "reversed", "bytes", "frozenset", "iter", "filter", "super", "type", "object"})


def _plain_receiver(node, fn) -> bool:
    """Not a literal, self / cls, a builtin's value, MLX's `x.at[...]`, or a module (the pass's plain receiver)."""
    if isinstance(node, (ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.JoinedStr, ast.ListComp,
                         ast.DictComp, ast.SetComp, ast.GeneratorExp)):
        return False
    if isinstance(node, ast.Name) and node.id in ("self", "cls"):
        return False
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _BUILTINS:
        return False
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "at":
        return False
    chain = attribute_chain(node)
    if chain is not None:
        for scope in _scopes(fn.scope):
            if chain[0] in scope.modules or chain[0] in scope.imports or chain[0] in scope.mlx_core:
                return False
        if fn.scope.resolve(chain[0]) is not None:
            return False
    return True


def _decorator_name(node) -> Optional[str]:
    """`auto_docstring` for `@auto_docstring`, `@auto_docstring(...)` or `@utils.auto_docstring`."""
    chain = attribute_chain(node.func if isinstance(node, ast.Call) else node)
    return chain[-1] if chain else None


def _kept_decorators(fn) -> list:
    """fn's decorators other than those the conversion removes (TorchScript markers, grad modes: each returns the
    function itself in eager torch, so the converted def is undecorated and a second pass reads its parameter facts)."""
    kept = []
    for d in fn.node.decorator_list:
        chain = attribute_chain(d.func if isinstance(d, ast.Call) else d)
        root = fn.scope.resolve(chain[0]) if chain else None
        qual = ".".join([root, *chain[1:]]) if root else None
        bare = not isinstance(d, ast.Call) or not (d.args or d.keywords)
        if not bare or (qual not in JIT_MARKERS and qual not in SCRIPT_IF_TRACING and qual not in GRAD_CONTEXTS):
            kept.append(d)
    return kept

