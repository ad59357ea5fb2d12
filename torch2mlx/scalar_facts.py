"""Which names of a scope always hold a Python int: read off the stdlib `ast`, flow-insensitively.

torch infers int64 from Python ints and MLX int32, so `torch.arange(n)` needs `dtype=mx.int64`
exactly when `n` is an int (a float gives float32 in both). A name counts as an int here only when
*every* binding of it in the scope gives an int, whatever the order the code runs in: a parameter
annotated `int`, an int literal, `len(...)`, `int(...)`, `round(x)`, `math.floor/ceil(...)`,
`x.shape[i]`, `x.size(i)`, `x.ndim`, `x.numel()`, `x.dim()`, a target unpacked from `x.shape` or
`x.size()`, a loop variable over `range(...)`, and `+ - * // %` / unary minus / `a if c else b`
of such values. Any other binding (a parameter without that annotation, `global`, `del`, a
`with ... as`, an import, a name read from an enclosing function) makes the name unknown, never
guessed. Names bound in nested functions, classes, lambdas and comprehensions belong to those.

A name every binding of which is a sequence of ints (a parameter annotated `tuple[int, ...]`,
`tuple[int, int]`, `list[int]`, `Sequence[int]`, optionally `| None`, or a tuple display of ints), never
stored into (`n[i] = ...`, `del n[i]`) nor the receiver of a method call (`n.append(...)`), gives the entry
`n[]`: `n[i]` (an index, not a slice) is an int (swin's `torch.arange(window_size[0])`).

`tuple_names` reads the names that always hold a tuple the same way (`torch.rand(shape)` with
`shape = (n,) + (1,) * k` is a shape, never one int).
"""
from __future__ import annotations

import ast
from typing import Optional, Union

_INT_OPS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)
_INT_BUILTINS = frozenset({"len", "int"})
_INT_METHODS = frozenset({"numel", "dim", "ndimension", "nelement", "element_size"})
_INT_MATH = frozenset({"floor", "ceil"})
_OWN_SCOPE = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda,
              ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)

Scope = Union[ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef]


SHADOWABLE = frozenset({"len", "int", "round", "math", "tuple", "str", "isinstance"})  # what `is_int` trusts to be the builtin / the module


def int_names(scope: Scope, shadowed_outside: frozenset = frozenset()) -> tuple[frozenset, frozenset]:
    """The names of `scope` (a module, function or class body) every binding of which is an int, and the
    names of SHADOWABLE this scope binds to something else (for its nested scopes). `shadowed_outside`:
    those of the enclosing scopes (a user's own `len`, `math`)."""
    bindings: dict = {}  # name -> [value expression, "int" (known int), ("aug", name, value), or None (unknown)]
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = scope.args
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            is_int = isinstance(a.annotation, ast.Name) and a.annotation.id == "int"
            bindings.setdefault(a.arg, []).append(
                "int" if is_int else _INT_SEQUENCE if is_int_sequence_annotation(a.annotation) else None)
        for a in (args.vararg, args.kwarg):
            if a is not None:
                bindings.setdefault(a.arg, []).append(None)
    shadowed: set = set(shadowed_outside)
    for stmt in scope.body:
        _collect(stmt, bindings, shadowed)
    known: set = set()
    changed = True
    while changed:  # least fixed point; a name may use itself (`n = n + 1`, `n += 1`) once grounded elsewhere
        changed = False
        for name, found in bindings.items():
            if name in known or name in shadowed:
                continue
            trial = known | {name}
            grounded = any(not isinstance(b, tuple) and _binding_is_int(b, known, shadowed) for b in found)
            if grounded and all(_binding_is_int(b, trial, shadowed) for b in found):
                known.add(name)
                changed = True
    known |= _int_sequences(scope, bindings, known, shadowed)
    return frozenset(known), frozenset(shadowed & SHADOWABLE)


_INT_SEQUENCE = "int sequence"  # a parameter annotated as a sequence of ints (a binding marker of int_names)
_SEQUENCE_TYPES = frozenset({"tuple", "list", "Tuple", "List", "Sequence"})


def is_int_sequence_annotation(node) -> bool:
    """`tuple[int, ...]`, `tuple[int, int]`, `list[int]`, `Sequence[int]` (`typing.` ones too), or one `| None` /
    `Optional[...]` of them: indexing the value (when it is not None) gives an int."""
    if node is None:
        return False
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        sides = [node.left, node.right]
        nones = [isinstance(s, ast.Constant) and s.value is None for s in sides]
        return sum(nones) == 1 and all(n or is_int_sequence_annotation(s) for s, n in zip(sides, nones))
    if not isinstance(node, ast.Subscript):
        return False
    head = node.value.attr if isinstance(node.value, ast.Attribute) else node.value.id if isinstance(node.value, ast.Name) else None
    if head == "Optional":
        return is_int_sequence_annotation(node.slice)
    if head not in _SEQUENCE_TYPES:
        return False
    args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    if head in ("tuple", "Tuple") and len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is Ellipsis:
        args = args[:1]
    elif head not in ("tuple", "Tuple") and len(args) != 1:
        return False
    return bool(args) and all(isinstance(a, ast.Name) and a.id == "int" for a in args)


def _int_sequences(scope: Scope, bindings: dict, ints: set, shadowed: set) -> set:
    """`n[]` for the names every binding of which is a sequence of ints that nothing in the scope changes."""
    changed = set()
    for node in ast.walk(scope):
        if isinstance(node, ast.Subscript) and not isinstance(node.ctx, ast.Load) and isinstance(node.value, ast.Name):
            changed.add(node.value.id)  # `n[i] = v`, `del n[i]`
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            changed.add(node.func.value.id)  # `n.append(v)`, `n.extend(...)`, ...
    found = set()
    for name, found_bindings in bindings.items():
        if name in changed or name in shadowed:
            continue
        if found_bindings and all(b == _INT_SEQUENCE or (isinstance(b, ast.Tuple) and is_int_sequence(b, ints, frozenset(shadowed)))
                                  for b in found_bindings):
            found.add(f"{name}[]")
    return found


def is_int_sequence(node: ast.AST, names: set, shadowed: frozenset = frozenset()) -> bool:
    """A tuple display of ints, or a name / `a.b` every element of which is an int (its `n[]` entry in `names`)."""
    if isinstance(node, ast.Tuple):
        return bool(node.elts) and all(not isinstance(e, ast.Starred) and is_int(e, names, shadowed) for e in node.elts)
    return _sequence_key(node) in names


def _collect(node: ast.AST, bindings: dict, shadowed: set) -> None:
    """Every binding of a name in this scope, with the value it gets (or None: unknown)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        bindings.setdefault(node.name, []).append(None)
        shadowed.add(node.name)
        return
    if isinstance(node, _OWN_SCOPE):
        # a walrus in a comprehension binds in this scope; a lambda's parameters and a comprehension's targets
        # are other names under the same spelling (the pass sees them in this scope): neither is known
        for n in ast.walk(node):
            if isinstance(n, ast.NamedExpr) and isinstance(n.target, ast.Name):
                bindings.setdefault(n.target.id, []).append(None)
            elif isinstance(n, ast.comprehension):
                _bind_unknown(n.target, bindings)
            elif isinstance(n, ast.arg):
                bindings.setdefault(n.arg, []).append(None)
        return
    if not _assignment(node, bindings):
        _other_binding(node, bindings, shadowed)
    for child in ast.iter_child_nodes(node):
        _collect(child, bindings, shadowed)


def _assignment(node: ast.AST, bindings: dict) -> bool:
    """Bindings of an assignment, loop or `with` (True when `node` is one)."""
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)):
        for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
            if node.value is not None:
                _bind_target(target, node.value, bindings)
    elif isinstance(node, ast.AugAssign):
        if isinstance(node.target, ast.Name):
            bindings.setdefault(node.target.id, []).append(
                ("aug", node.target.id, node.value) if isinstance(node.op, _INT_OPS) else None)
    elif isinstance(node, (ast.For, ast.AsyncFor)):
        is_range = (isinstance(node.iter, ast.Call) and isinstance(node.iter.func, ast.Name)
                    and node.iter.func.id == "range")
        if isinstance(node.target, ast.Name) and is_range:
            bindings.setdefault(node.target.id, []).append("int")
        else:
            _bind_unknown(node.target, bindings)
    elif isinstance(node, (ast.With, ast.AsyncWith)):
        for item in node.items:
            if item.optional_vars is not None:
                _bind_unknown(item.optional_vars, bindings)
    else:
        return False
    return True


def _other_binding(node: ast.AST, bindings: dict, shadowed: set) -> None:
    """Names bound by an import, `global`, `del`, `except ... as`, a `match` pattern: never known ints."""
    names: list = []
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        for alias in node.names:
            name = (alias.asname or alias.name).split(".")[0]
            names.append(name)
            if not (isinstance(node, ast.Import) and alias.name == name):  # `import math` is math
                shadowed.add(name)
    elif isinstance(node, (ast.Global, ast.Nonlocal)):
        names = list(node.names)
    elif isinstance(node, ast.Delete):
        names = [n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
        names = [node.name]
    elif isinstance(node, ast.MatchMapping) and node.rest:
        names = [node.rest]
    for name in names:
        bindings.setdefault(name, []).append(None)


def _bind_target(target: ast.AST, value: ast.AST, bindings: dict) -> None:
    if isinstance(target, ast.Name):
        bindings.setdefault(target.id, []).append(value)
    elif isinstance(target, (ast.Tuple, ast.List)):
        if any(isinstance(el, ast.Starred) for el in target.elts):
            _bind_unknown(target, bindings)
        elif isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
            for el, v in zip(target.elts, value.elts):
                _bind_target(el, v, bindings)
        elif _is_shape(value):
            for el in target.elts:
                _bind_target(el, "int", bindings) if isinstance(el, ast.Name) else _bind_unknown(el, bindings)
        else:
            _bind_unknown(target, bindings)
    elif isinstance(target, ast.Starred):
        _bind_unknown(target.value, bindings)
    # `a.b = ...`, `a[i] = ...` bind no name


def _bind_unknown(target: ast.AST, bindings: dict) -> None:
    for n in ast.walk(target):
        if isinstance(n, ast.Name):
            bindings.setdefault(n.id, []).append(None)


def _is_shape(node: ast.AST) -> bool:
    """`x.shape`, `x.size()`, or a slice of either: a tuple of ints."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
        return _is_shape(node.value)
    if isinstance(node, ast.Attribute) and node.attr == "shape":
        return True
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "size"
            and not node.args and not node.keywords)


def _binding_is_int(binding, names: set, shadowed: set) -> bool:
    if binding is None:
        return False
    if binding == "int":
        return True
    if isinstance(binding, tuple):  # `n += <value>`: int when the value is (n itself is checked as a name)
        return is_int(binding[2], names, shadowed)
    return is_int(binding, names, shadowed)


def is_int(node: ast.AST, names: Optional[set] = None, shadowed: frozenset = frozenset()) -> bool:
    """Whether the value of expression `node` is a Python int, given the names known to hold ints."""
    names = names or set()
    if isinstance(node, ast.Constant):
        return type(node.value) is int
    if isinstance(node, ast.Name):
        return node.id in names
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):  # an int to a non-negative int literal power (a negative one gives a float)
            right = node.right
            return (isinstance(right, ast.Constant) and type(right.value) is int and right.value >= 0
                    and int_or_raises(node.left, names, shadowed))
        if isinstance(node.op, _RAISING_OPS):  # `image_size // patch_size`, either maybe a list: an int or a raise
            return int_or_raises(node.left, names, shadowed) and int_or_raises(node.right, names, shadowed)
        return isinstance(node.op, _INT_OPS) and is_int(node.left, names, shadowed) and is_int(node.right, names, shadowed)
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, (ast.USub, ast.UAdd, ast.Invert)) and int_or_raises(node.operand, names, shadowed)
    if isinstance(node, ast.IfExp):
        return is_int(node.body, names, shadowed) and is_int(node.orelse, names, shadowed)
    if isinstance(node, ast.Subscript):
        index = node.slice
        if isinstance(index, ast.Slice):
            return False
        if _sequence_key(node.value) in names:
            return True  # an element of a sequence of ints (`window_size[0]`)
        return _is_shape(node.value) and is_int(index, names, shadowed)
    if isinstance(node, ast.Attribute):  # `config.n` / `self.n` / `self.emb.num_embeddings` known to hold ints
        return node.attr == "ndim" or _dotted(node) in names  # (names.Scope.int_names)
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in shadowed:
                return False
            if func.id in _INT_BUILTINS and len(node.args) == 1 and not node.keywords:
                return True
            return func.id == "round" and len(node.args) == 1 and not node.keywords
        if isinstance(func, ast.Attribute):
            if func.attr in _INT_METHODS and not node.args and not node.keywords:
                return True
            if func.attr == "size" and len(node.args) == 1 and not node.keywords:
                return is_int(node.args[0], names, shadowed)
            return (func.attr in _INT_MATH and isinstance(func.value, ast.Name) and func.value.id == "math"
                    and "math" not in shadowed and len(node.args) == 1)
    return False


def _dotted(node) -> Optional[str]:
    """`a.b` / `a.b.c` of names, as written; None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) and len(parts) <= 2 else None


_RAISING_OPS = (ast.Sub, ast.FloorDiv, ast.Mod)  # raise on a list, a tuple or None (`+` and `*` do not)


def int_or_raises(node, names, shadowed=frozenset()) -> bool:
    """An int, or a name / `a.b` whose `?` entry says: an int, or a list, tuple or None (`//`, `-`, `%`, `**` and a
    unary minus raise on those, so where they give a value it is an int: CLIP's `(image_size // patch_size) ** 2`)."""
    if is_int(node, names, shadowed):
        return True
    if isinstance(node, ast.Name):
        return f"{node.id}?" in names
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and f"{node.value.id}.{node.attr}?" in names


def _sequence_key(node) -> Optional[str]:
    """`n[]` / `a.b[]`: the entry of `int_names` saying every element of `n` / `a.b` is an int."""
    if isinstance(node, ast.Name):
        return f"{node.id}[]"
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}[]"
    return None


def tuple_names(scope: Scope, shadowed_outside: frozenset = frozenset(), ints: Optional[frozenset] = None) -> frozenset:
    """The names of `scope` every binding of which is a tuple (a tuple display, `x.shape`, `x.size()`,
    `tuple(...)`, a slice of one, `+` of two, `*` by an int, `a if c else b` of two), whatever the
    order the code runs in: `shape = (x.shape[0],) + (1,) * (x.ndim - 1)` (the drop_path of timm and
    transformers) is a shape, never one int. Bindings are read as by `int_names`."""
    bindings: dict = {}
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = scope.args
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if a is not None:
                bindings.setdefault(a.arg, []).append(None)
    shadowed: set = set(shadowed_outside)
    for stmt in scope.body:
        _collect(stmt, bindings, shadowed)
    if ints is None:
        ints = int_names(scope, shadowed_outside)[0]
    known: set = set()
    changed = True
    while changed:  # least fixed point, as int_names (`s = s + (1,)` once grounded elsewhere)
        changed = False
        for name, found in bindings.items():
            if name in known or name in shadowed:
                continue
            trial = known | {name}
            plain = [b for b in found if not isinstance(b, (tuple, str)) and b is not None]
            if len(plain) != len(found):
                continue  # an augmented assignment, a loop target, an int from a shape, unknown
            if any(is_tuple(b, known, ints, shadowed) for b in plain) and all(is_tuple(b, trial, ints, shadowed) for b in plain):
                known.add(name)
                changed = True
    return frozenset(known)


def is_tuple(node: ast.AST, names: set, ints: frozenset = frozenset(), shadowed=frozenset()) -> bool:
    """Whether the value of expression `node` is a tuple, given the names known to hold tuples and ints."""
    if isinstance(node, ast.Tuple):
        return True
    if isinstance(node, ast.Name):
        return node.id in names
    if _is_shape(node):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id == "tuple" and "tuple" not in shadowed and len(node.args) <= 1 and not node.keywords
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
        return is_tuple(node.value, names, ints, shadowed)
    if isinstance(node, ast.IfExp):
        return is_tuple(node.body, names, ints, shadowed) and is_tuple(node.orelse, names, ints, shadowed)
    if isinstance(node, ast.BinOp):
        left, right = node.left, node.right
        if isinstance(node.op, ast.Add):
            return is_tuple(left, names, ints, shadowed) and is_tuple(right, names, ints, shadowed)
        if isinstance(node.op, ast.Mult):
            return ((is_tuple(left, names, ints, shadowed) and is_int(right, set(ints), shadowed))
                    or (is_int(left, set(ints), shadowed) and is_tuple(right, names, ints, shadowed)))
    return False


# ----- str values ------------------------------------------------------------------------------------------
# A str is never a tensor: `name.split(".", 1)` on one is str.split and stays as written. A name counts as a str
# only when every binding of it in the scope is one, flow-insensitively as `int_names` reads ints:
# a str literal, an f-string, `str(...)`, a str-only method of a str (`s.lower()`, `s.replace(a, b)`), `+` of two
# strs, `%` on a str, an index or slice of a str, a parameter annotated `str` (not one merely defaulting to a str
# literal: a caller may pass anything), a def whose first statement mentioning a parameter is
# `assert isinstance(p, str)` and which never rebinds it, and (at module level) a loop or comprehension target
# over the keys of a dict literal with str keys bound once at module level and only read
# (`for name, cfg in _SOURCE_CFGS.items()`: timm's deepseek_vit / qwen3_vit default_cfgs).
# A narrowing `if isinstance(x, str):` is not followed (the pass reads facts per name, not per place).

_STR_METHODS = frozenset({"lower", "upper", "strip", "lstrip", "rstrip", "replace", "casefold", "title", "capitalize",
                          "swapcase", "format", "zfill", "center", "ljust", "rjust", "removeprefix", "removesuffix",
                          "expandtabs", "format_map", "join"})  # methods of str returning a str
_STR_KEY_READS = frozenset({"items", "keys", "values", "get"})


def is_str(node: ast.AST, names: frozenset, shadowed: frozenset = frozenset()) -> bool:
    """Whether the value of expression `node` is a Python str, given the names known to hold strs."""
    if isinstance(node, ast.Constant):
        return type(node.value) is str
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.Name):
        return node.id in names
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Add):
            return is_str(node.left, names, shadowed) and is_str(node.right, names, shadowed)
        return isinstance(node.op, ast.Mod) and is_str(node.left, names, shadowed)
    if isinstance(node, ast.IfExp):
        return is_str(node.body, names, shadowed) and is_str(node.orelse, names, shadowed)
    if isinstance(node, ast.Subscript):
        return is_str(node.value, names, shadowed)
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id == "str" and "str" not in shadowed and len(node.args) <= 1 and not node.keywords
        return (isinstance(func, ast.Attribute) and func.attr in _STR_METHODS
                and is_str(func.value, names, shadowed))
    return False


def str_key_dicts(tree: ast.Module) -> frozenset:
    """Module-level names bound once, at module level, to a dict literal whose keys are all str literals, and
    read only: every other mention is `D.items()` / `.keys()` / `.values()` / `.get(...)`, `D[k]`, or `k in D`."""
    bound: dict = {}
    for stmt in tree.body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                and isinstance(stmt.value, ast.Dict) and stmt.value.keys and all(
                    isinstance(k, ast.Constant) and type(k.value) is str for k in stmt.value.keys)):
            bound.setdefault(stmt.targets[0].id, []).append(stmt.targets[0])
    if not bound:
        return frozenset()
    allowed: set = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _STR_KEY_READS:
            allowed.add(id(node.func.value))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            allowed.add(id(node.value))
        elif isinstance(node, ast.Compare) and all(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            allowed.update(id(c) for c in node.comparators)
    counts: dict = {}  # every binding of a name anywhere in the file
    for node in ast.walk(tree):
        names: list = []
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names = [node.id]
        elif isinstance(node, ast.Name) and id(node) not in allowed:
            names = [node.id]  # a read other than those: the dict may be passed on, and changed there
        elif isinstance(node, ast.arg):
            names = [node.arg]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [(a.asname or a.name).split(".")[0] for a in node.names]
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names = list(node.names)
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    return frozenset(name for name, targets in bound.items() if len(targets) == 1 and counts.get(name) == 1)


def _str_key_target(target, iterable, dicts: frozenset) -> list:
    """The names a loop / comprehension target over a str-keyed dict binds to its keys."""
    if not (isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Attribute) and not iterable.args
            and isinstance(iterable.func.value, ast.Name) and iterable.func.value.id in dicts) and not (
            isinstance(iterable, ast.Name) and iterable.id in dicts):
        return []
    method = iterable.func.attr if isinstance(iterable, ast.Call) else "keys"
    if method == "keys" and isinstance(target, ast.Name):
        return [target.id]
    if (method == "items" and isinstance(target, (ast.Tuple, ast.List)) and len(target.elts) == 2
            and isinstance(target.elts[0], ast.Name)):
        return [target.elts[0].id]
    return []


def str_names(scope: Scope, shadowed_outside: frozenset = frozenset(), dicts: frozenset = frozenset()) -> frozenset:
    """The names of `scope` every binding of which is a str (see above). `dicts`: `str_key_dicts` of the module,
    read at module level only (there the loop runs at import, before any other code can change the dict)."""
    bindings: dict = {}
    shadowed: set = set(shadowed_outside)
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = scope.args
        asserted = _asserted_strs(scope, frozenset(shadowed_outside))
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            is_s = (isinstance(a.annotation, ast.Name) and a.annotation.id == "str") or a.arg in asserted
            bindings.setdefault(a.arg, []).append("str" if is_s else None)
        for a in (args.vararg, args.kwarg):
            if a is not None:
                bindings.setdefault(a.arg, []).append(None)
    keys: dict = {}  # id(loop / comprehension target Name) -> True: a key of a str-keyed dict
    if isinstance(scope, ast.Module) and dicts:
        for node in ast.walk(scope):
            if isinstance(node, (ast.For, ast.comprehension)):
                for name in _str_key_target(node.target, node.iter, dicts):
                    keys.setdefault(name, 0)
                    keys[name] += 1
    for stmt in scope.body:
        _collect(stmt, bindings, shadowed)
    for name, count in keys.items():  # `_collect` bound each such target unknown (None): those are strs
        found = bindings.get(name, [])
        nones = [i for i, b in enumerate(found) if b is None]
        if len(nones) == count and _binds_only_as_targets(scope, name, count):
            for i in nones:
                found[i] = "str"
    known: set = set()
    changed = True
    while changed:
        changed = False
        for name, found in bindings.items():
            if name in known or name in shadowed or not found:
                continue
            trial = frozenset(known | {name})
            plain = [b for b in found if b != "str"]
            grounded = len(plain) < len(found) or any(
                b is not None and not isinstance(b, (tuple, str)) and is_str(b, frozenset(known), frozenset(shadowed)) for b in plain)
            if grounded and all(b is not None and not isinstance(b, (tuple, str)) and is_str(b, trial, frozenset(shadowed))
                                for b in plain):
                known.add(name)
                changed = True
    if "str" not in shadowed and "str" not in bindings:
        known.add("str()")  # `str(...)` here is the builtin (tensors.is_str)
    return frozenset(known)


def _binds_only_as_targets(scope, name: str, count: int) -> bool:
    """The unknown bindings of `name` are exactly its `count` str-key loop / comprehension targets: no other loop,
    comprehension, `with`, import, `del`, ... binds it (those are unknown bindings too)."""
    loops = 0
    for node in ast.walk(scope):
        if isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            loops += sum(1 for n in ast.walk(node.target) if isinstance(n, ast.Name) and n.id == name)
    return loops == count


def _asserted_strs(fn, shadowed: frozenset = frozenset()) -> frozenset:
    """Parameters whose first mention in the def is a top-level `assert isinstance(p, str)` (after a docstring),
    never rebound in the def: every read of them comes after the assert."""
    found = set()
    params = {a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]}
    for i, stmt in enumerate(fn.body):
        test = stmt.test if isinstance(stmt, ast.Assert) else None
        if not (isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id == "isinstance"
                and len(test.args) == 2 and not test.keywords and isinstance(test.args[0], ast.Name)
                and isinstance(test.args[1], ast.Name) and test.args[1].id == "str"):
            continue
        name = test.args[0].id
        if name not in params or any(name in {n.id for n in ast.walk(s) if isinstance(n, ast.Name)} for s in fn.body[:i]):
            continue
        if any(isinstance(n, ast.Name) and n.id == name and not isinstance(n.ctx, ast.Load) for n in ast.walk(fn)) or any(
                isinstance(n, (ast.Global, ast.Nonlocal)) and name in n.names for n in ast.walk(fn)):
            continue
        if any(isinstance(n, ast.Name) and n.id in ("isinstance", "str") and not isinstance(n.ctx, ast.Load)
               for n in ast.walk(fn)) or {"isinstance", "str"} & shadowed:
            continue
        found.add(name)
    return frozenset(found)
