"""nn.Sequential, nn.ModuleList and nn.ModuleDict: the rule handlers named in rules/nn_layers.yaml.

**What it does**: `nn.Sequential(a, b)` and `nn.Sequential(*layers)` stay `nn.Sequential(...)`
(MLX's takes the same positional modules); `nn.ModuleList([...])` becomes the plain list
and `nn.ModuleDict({...})` the plain dict, which MLX modules hold as submodule trees.

**Why handlers**: the table binds arguments to a signature and refuses `*args`, but
`nn.Sequential(*layers)` is the most common way to build one.

**Names of weights**: MLX's Sequential keeps its layers in `.layers`, so torch's `seq.0.weight`
is `seq.layers.0.weight` in MLX; `load_torch_weights` maps that. Lists and dicts keep torch's
names (`blocks.0.attn.weight`, `heads.cls.weight`).

**Left in place when**: `nn.Sequential(OrderedDict(...))` (MLX numbers its layers, so the
names would change and `seq.name` would break), keyword arguments.

Registered here, rather than in torch2mlx/handlers/, so that the whole nn.Module translation
lives in one feature package (transforms/module/); the handler registry walks the transforms
package on its first run, which registers them.
"""
from __future__ import annotations

import ast

import libcst as cst

from torch2mlx.binding import Flag, code_of
from torch2mlx.handlers import register
from torch2mlx.template import sentinel

_NN = frozenset({"nn"})


def _nn_call(name: str, args) -> cst.Call:
    return cst.Call(func=cst.Attribute(cst.Name(sentinel("nn")), cst.Name(name)), args=args)


def _no_keywords(call: cst.Call, what: str) -> None:
    for arg in call.args:
        if arg.keyword is not None:
            raise Flag(f"{what} takes no keyword argument {arg.keyword.value!r} in MLX")


@register("nn_sequential")
def nn_sequential(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    _no_keywords(call, "nn.Sequential")
    for orig in original.args:
        func = orig.value.func if isinstance(orig.value, cst.Call) else None
        named = func is not None and (rewriter.qualified_name(func) or "").endswith("OrderedDict")
        named = named or (func is not None and code_of(func).endswith("OrderedDict"))
        named = named or (isinstance(orig.value, cst.Name) and _bound_to_a_dict(rewriter, orig.value.value))
        if named or isinstance(orig.value, (cst.Dict, cst.DictComp)):
            raise Flag("nn.Sequential(OrderedDict(...)) names its layers; MLX's nn.Sequential numbers them "
                       "(layers.0, ...): pass the layers positionally or keep them as attributes", "no-equivalent")
    return _nn_call("Sequential", [a.with_changes(comma=cst.MaybeSentinel.DEFAULT, whitespace_after_arg=cst.SimpleWhitespace("")) for a in call.args]), _NN


def _bound_to_a_dict(rewriter, name: str) -> bool:
    """`name` is assigned a dict / OrderedDict in the innermost scope (torchvision's ViT: `heads_layers =
    OrderedDict()`, items set, then `nn.Sequential(heads_layers)`): MLX's Sequential would hold the dict as one layer."""
    scope = rewriter.scopes[-1].node if rewriter.scopes else None
    if scope is None:
        return False
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if not any(isinstance(t, ast.Name) and t.id == name for t in targets):
            continue
        func = value.func if isinstance(value, ast.Call) else None
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if isinstance(value, (ast.Dict, ast.DictComp)) or called in ("OrderedDict", "dict"):
            return True
    return False


def _container(call: cst.Call, what: str, empty: cst.BaseExpression, literal_types: tuple, convert: str):
    args = list(call.args)
    if len(args) > 1 or any(a.star for a in args):
        raise Flag(f"{what} takes one iterable of modules")
    if args and args[0].keyword is not None and args[0].keyword.value != "modules":
        raise Flag(f"unknown argument {args[0].keyword.value!r} for {what}")
    if not args or (isinstance(args[0].value, cst.Name) and args[0].value.value == "None"):
        return empty, frozenset()
    value = args[0].value
    if isinstance(value, literal_types):
        return value, frozenset()
    if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value == convert:
        return value, frozenset()  # nn.ModuleDict(dict(a=...)) -> dict(a=...)
    return cst.Call(func=cst.Name(convert), args=[cst.Arg(value)]), frozenset()


@register("nn_module_list")
def nn_module_list(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    return _container(call, "nn.ModuleList", cst.List([]), (cst.List, cst.ListComp), "list")


@register("nn_module_dict")
def nn_module_dict(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    return _container(call, "nn.ModuleDict", cst.Dict([]), (cst.Dict, cst.DictComp), "dict")
