"""Module-level torch runtime plumbing an MLX program has no use for (rules/runtime_registrations.yaml).

**What it does**
- `fx_wrap`: `torch.fx.wrap("name")` / `torch.fx.wrap(fn)` at the top level of a module -> its argument
  (a bare `"name"` statement left is dropped). fx.wrap only tells torch.fx's symbolic tracer to keep calls
  of the function as leaves, and returns its argument; MLX code is never fx-traced.
- `torch_registration`: `torch.library.register_autograd(op, backward, ...)` -> nothing (the statement goes;
  as a value, `None`, which is what torch returns). It registers a backward formula for a torch custom
  operator (`torch.ops.<ns>.<op>`) with torch's dispatcher; an MLX program has no dispatcher, and every call
  of such an operator stays flagged where it is made. An info diagnostic says the registration went.
- `torch_registration` also removes `torch.onnx.register_custom_op_symbolic(name, fn, opset)`: it registers an
  ONNX export symbolic in torch.onnx's registry, read by nothing but torch.onnx.export.
- `onnx_parse_args`: `@parse_args("v", "i")` (torch.onnx.symbolic_helper, on ONNX symbolic functions that
  torchvision defines at import) -> the local decorator factory `onnx_parse_args("v", "i")`. PyTorch's wrapper
  converts torch._C.Value arguments (ONNX graph values) to Python values and passes all others unchanged; an
  MLX program holds no torch._C.Value, so the local one checks the arguments as PyTorch's does, sets
  `fn._arg_descriptors`, and passes them on.
- `runtime_helper`: the rule's template, plus the local helper classes it names (`TorchLibrary`: a
  `torch.library.Library` whose `define`/`impl`/`fallback` register nothing and return what torch's do;
  `hub_load_state_dict_from_url`, which downloads and reads a torch checkpoint without torch:
  handlers/torch_checkpoint_files.py).
- `signature_twin`: the call as written, of a local helper with torch's whole signature
  (`torch.hub.load_state_dict_from_url(...)` -> `hub_load_state_dict_from_url(...)`, *args/**kwargs included).
- `stdlib_template`: the rule's template, which reads standard-library modules (`os`): they are imported
  when the file does not bind the name (`torch.hub._get_torch_home()` -> torch's own expression of it).

**Exactness**: each returns what torch's function returns; the effects removed are registrations with
torch's dispatcher or tracer, observable only through torch APIs that stay flagged.

**Left in place (flagged) when** `torch.fx.wrap` is called below module level (torch raises there) or with
something other than a name or a string; a registration's arguments could have effects (a call) and its
value is used; a standard module's name is bound to something else in the file (a helper whose name the file
uses takes a fresh one: `onnx_parse_args_1`).
"""
from __future__ import annotations

import ast
import re

import libcst as cst

from torch2mlx.binding import Flag, bind
from torch2mlx.handlers import register
from torch2mlx.handlers.local_helpers import expand_with_helpers, helper_names
from torch2mlx.handlers.torch_checkpoint_files import DEPENDS
from torch2mlx.handlers.torch_checkpoint_files import HELPERS as CHECKPOINT_HELPERS
from torch2mlx.template import choose_template, expand, normalize, template_roots

HELPERS = {
    "TorchLibrary": '''
class TorchLibrary:
    """PyTorch's library.Library without its dispatcher: MLX has no operator registry, so define / impl /
    fallback register nothing (each returns what PyTorch's does). The calls of the operators such a
    registration serves stay flagged where they are made."""

    def __init__(self, ns, kind, dispatch_key=""):
        if kind not in ("IMPL", "DEF", "FRAGMENT"):
            raise ValueError("Unsupported kind: ", kind)
        self.ns = ns
        self.kind = kind
        self.dispatch_key = dispatch_key

    def define(self, schema, alias_analysis="", *, tags=()):
        if alias_analysis not in ("", "FROM_SCHEMA", "CONSERVATIVE"):
            raise RuntimeError(f"Invalid alias_analysis type {alias_analysis}")
        return schema.partition("(")[0]

    def impl(self, op_name, fn, dispatch_key="", *, with_keyset=False, allow_override=True):
        return None

    def fallback(self, fn, dispatch_key="", *, with_keyset=False):
        return None
''',
    "onnx_parse_args": '''
def onnx_parse_args(*arg_descriptors):
    """PyTorch's torch.onnx.symbolic_helper.parse_args without torch.onnx: the decorated ONNX symbolic function
    keeps its descriptors (`fn._arg_descriptors`), its name and PyTorch's argument checks. PyTorch's wrapper
    converts only torch._C.Value arguments (graph values during torch.onnx.export), which an MLX program never
    holds; every other argument reaches the function unchanged, as here."""
    import functools
    import inspect

    def decorator(fn):
        fn._arg_descriptors = arg_descriptors

        @functools.wraps(fn)
        def wrapper(g, *args, **kwargs):
            if len(arg_descriptors) < len(args):
                raise AssertionError(
                    f"A mismatch between the number of arguments ({len(args)}) and their descriptors "
                    f"({len(arg_descriptors)}) was found at symbolic function '{fn.__name__}'.")
            try:
                named = len(list(inspect.signature(fn).parameters)[1:])
            except Exception:
                named = len(args)
            args = args[:min(len(args), len(arg_descriptors), named)]  # PyTorch zips them with the descriptors
            if len(kwargs) > 1 or (kwargs and "_outputs" not in kwargs):
                raise AssertionError(f"Symbolic function {fn.__name__}'s '**kwargs' can only contain '_outputs' key.")
            return fn(g, *args, **kwargs)

        return wrapper

    return decorator
''',
    **CHECKPOINT_HELPERS,  # torch.hub.load_state_dict_from_url's (handlers/torch_checkpoint_files.py)
}

# standard-library modules a template may read (`os.getenv(...)`), imported when the file leaves the name free
STDLIB_ROOTS = ("os", "typing")


def _pure(node: cst.BaseExpression) -> bool:
    """An argument whose evaluation has no effect to keep: a literal, a name, an attribute chain, a lambda."""
    if isinstance(node, (cst.SimpleString, cst.Integer, cst.Float, cst.Name, cst.Lambda)):
        return True
    if isinstance(node, cst.Attribute):
        return _pure(node.value)
    if isinstance(node, cst.ConcatenatedString):
        return _pure(node.left) and _pure(node.right)
    return False


def _whole_statement(rw, original: cst.Call) -> bool:
    """The call is an expression statement of its own (`register(...)` on its line)."""
    stmt = rw.statement
    return (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1
            and isinstance(stmt.body[0], cst.Expr) and stmt.body[0].value is original)


@register("fx_wrap")
def fx_wrap(rule, original, call, receiver, rw):
    """`torch.fx.wrap(x)` at the top level of a module -> `x`."""
    if len(rw.scopes) != 1:
        raise Flag("torch.fx.wrap raises NotImplementedError below the top level of a module", "semantics-differ")
    bound = bind(call.args, rule.signature, receiver)
    value = bound.get("fn_or_name")
    if not isinstance(value, (cst.SimpleString, cst.ConcatenatedString, cst.Name, cst.Attribute)):
        raise Flag("torch.fx.wrap takes a function or its name (it raises on anything else)", "semantics-differ")
    rw.mark_identity(value)
    return value, frozenset()


def _removed_note(rule_id: str) -> str:
    if rule_id.startswith("torch.onnx."):
        return (f"{rule_id} removed: it registers an ONNX export symbolic with torch.onnx, which only "
                "torch.onnx.export reads (an MLX program exports nothing through it)")
    return (f"{rule_id} removed: it registers with torch's dispatcher, which an MLX program does not have "
            "(calls of the torch.ops operators it serves stay flagged)")


@register("torch_registration")
def torch_registration(rule, original, call, receiver, rw):
    """A registration with torch's dispatcher -> removed (its effectful arguments kept, in order)."""
    bound = bind(call.args, rule.signature, receiver)
    kept = []
    for arg in call.args:
        if not _pure(arg.value):
            kept.append(arg.value)
    whole = _whole_statement(rw, original)
    if kept and not whole:
        raise Flag("an argument is a call (its effects must stay) and the registration's value is used: "
                   "translate by hand", "no-equivalent")
    del bound  # bound only to flag calls torch itself would reject (unknown keywords, too many arguments)
    # reported, not flagged: a statement left empty is dropped with the flags it holds (an info flag writes no comment)
    rw.report(original, rule.id, "needs-review", _removed_note(rule.id), "info", statement=rw.statement)
    if not kept:
        result = cst.Name("None")
        rw.mark_identity(result)  # a bare `None` statement left is dropped
        return result, frozenset()
    if len(kept) == 1:
        return kept[0], frozenset()
    return cst.Tuple([cst.Element(v) for v in kept]), frozenset()


@register("fake_registration")
def fake_registration(rule, original, call, receiver, rw):
    """`torch.library.register_fake(op, func)` -> `func`, which torch returns after registering it as the operator's
    fake (meta) kernel with its dispatcher. Without func it makes a decorator: flagged here; the runtime-values
    transform removes it where it decorates a module-level function."""
    bound = bind(call.args, rule.signature, receiver)
    func = bound.get("func")
    if func is None:
        raise Flag("register_fake(op) makes a registering decorator: removed where it decorates a module-level "
                   "function; translate other uses by hand", "no-equivalent")
    if any(not _pure(arg.value) for arg in call.args if arg.value is not func):
        raise Flag("an argument other than the function is a call (its effects would have to stay): translate by hand",
                   "no-equivalent")
    rw.flag(original, rule.id, "needs-review",
            f"{rule.id} removed: it registers with torch's dispatcher, which an MLX program does not have "
            "(calls of the torch.ops operators it serves stay flagged)", "info")
    rw.mark_identity(func)
    return func, frozenset()


@register("onnx_parse_args")
def onnx_parse_args(rule, original, call, receiver, rw):
    """`parse_args("v", "f")` (a decorator factory of torch.onnx.symbolic_helper) -> `onnx_parse_args("v", "f")`,
    the local helper of HELPERS: the same decorator for every argument an MLX program can pass."""
    bind(call.args, rule.signature, receiver)  # starred arguments and keywords are flagged there
    name = helper_names(rw, "onnx_parse_args()", HELPERS)["onnx_parse_args"]  # a fresh name beside the file's own
    return call.with_changes(func=cst.Name(name)), frozenset()


@register("runtime_helper")
def runtime_helper(rule, original, call, receiver, rw):
    """The rule's template; the helper classes of HELPERS it calls are written into the file once."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    template = choose_template(rule, bound)
    return expand_with_helpers(rw, template, rule, bound, HELPERS, DEPENDS), template_roots(template)


@register("signature_twin")
def signature_twin(rule, original, call, receiver, rw):
    """The call as written, of the local helper of the rule's template, which takes torch's whole signature (same
    names, order and defaults: `hub_load_state_dict_from_url`): exact for any arguments, `*args` / `**kwargs`
    passed on included. Arguments torch would reject are flagged (bound where nothing is starred)."""
    if not any(arg.star for arg in call.args):
        bind(call.args, rule.signature, receiver)
    helper = cst.parse_expression(rule.mlx.replace("{", "__t2m_").replace("}", "")).func.value
    name = helper_names(rw, f"{helper}()", HELPERS, DEPENDS)[helper]  # a fresh name beside the file's own
    return call.with_changes(func=cst.Name(name)), frozenset()


def ensure_stdlib_import(rw, name: str) -> None:
    """`name` (a standard-library module, e.g. `os`) is usable at module level: the file imports it as
    `import name`, or binds the name nowhere (then `import name` is added). Flag otherwise."""
    module = rw.scopes[0].node
    if not isinstance(module, ast.Module):
        raise Flag(f"cannot tell whether `{name}` is the {name} module in this file", "no-equivalent")
    imported = other = False
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                if bound == name:
                    if alias.asname is None and alias.name.split(".")[0] == name:
                        imported = True
                    else:
                        other = True
        elif isinstance(node, ast.ImportFrom):
            other |= any((alias.asname or alias.name) == name for alias in node.names)
        elif isinstance(node, ast.Name) and node.id == name and not isinstance(node.ctx, ast.Load):
            other = True
        elif isinstance(node, ast.arg) and node.arg == name:
            other = True
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            other = True
    if other:
        raise Flag(f"the name `{name}` is bound to something other than the {name} module in this file", "no-equivalent")
    if imported:
        top = any(isinstance(s, ast.Import) and any(a.name.split(".")[0] == name and a.asname is None for a in s.names)
                  for s in module.body)
        if top:
            return
        raise Flag(f"`{name}` is imported below module level only in this file", "no-equivalent")
    rw.add_helper(f"import {name}", [cst.parse_statement(f"import {name}\n")])


def stdlib_roots(template: str) -> list:
    """The standard-library modules of STDLIB_ROOTS a template reads (`os.getenv(...)` -> ['os'])."""
    return [r for r in STDLIB_ROOTS if re.search(rf"(?<![\w.]){r}\.", template)]


@register("stdlib_template")
def stdlib_template(rule, original, call, receiver, rw):
    """The rule's template, which reads standard-library modules (imported when the file leaves them free)."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    template = choose_template(rule, bound)
    for name in stdlib_roots(template):
        ensure_stdlib_import(rw, name)
    return expand(template, rule, bound), template_roots(template)
