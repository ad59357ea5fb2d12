"""nn.Sequential, nn.ModuleList and nn.ModuleDict: the rule handlers named in rules/nn_layers.yaml.

**What it does**: `nn.Sequential(a, b)` and `nn.Sequential(*layers)` stay `nn.Sequential(...)`
(MLX's takes the same positional modules); `nn.ModuleList([...])` becomes the plain list
and `nn.ModuleDict({...})` the plain dict, which MLX modules hold as submodule trees.

**Why handlers**: the table binds arguments to a signature and refuses `*args`, but
`nn.Sequential(*layers)` is the most common way to build one.

**Names of weights**: MLX's Sequential keeps its layers in `.layers`, so torch's `seq.0.weight`
is `seq.layers.0.weight` in MLX; `load_torch_weights` maps that. Lists and dicts keep torch's
names (`blocks.0.attn.weight`, `heads.cls.weight`).

`nn.Sequential(OrderedDict(...))` (or a name assigned a dict / OrderedDict) becomes `TorchSequential(...)`
(layer_bases.py): MLX's Sequential numbers its layers, so the names would change and `seq.name` would break;
the helper keeps the dict's keys as member names and calls the members in order. Only where every layer is
seen and none takes channels-last data in MLX (no torch spatial layer, no class of the file building one, no
factory or parameter call): nn-layout follows MLX's nn.Sequential, not the helper's calls (torchvision's ViT
encoder and heads convert; DenseNet's features, of convolutions, stay flagged). In the torch-layout build
(layout/torch_layout.py: every layer takes torch's layout) no layer takes channels-last data, so any such dict
becomes TorchSequential (torchvision's DenseNet features, RegNet trunk, MaxViT's stem).

A Sequential that the same function grows after building it (`stem = nn.Sequential()` then
`stem.add_module(name, m)`, `self.blocks.append(m)`: timm's cspnet) becomes TorchSequential in the torch-layout
build and in a file building no channels-last layer (torch's names and order for what is added); in the
channels-last build it is flagged with the container
mark (nn-layout reads the constructor's layers only), which makes layout "auto" choose the torch-layout build.

**Left in place when**: keyword arguments; a dict with other arguments; an `OrderedDict` not imported from
collections; a layer that may take channels-last data, or one that cannot be seen; a Sequential grown after
it is built, in the channels-last build.

Registered here, rather than in torch2mlx/handlers/, so that the whole nn.Module translation
lives in one feature package (transforms/module/); the handler registry walks the transforms
package on its first run, which registers them.
"""
from __future__ import annotations

import ast

import libcst as cst

from torch2mlx.binding import Flag
from torch2mlx.handlers import register
from torch2mlx.layout_facts import CONTAINER_LAYOUT_MARK
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
        # `OrderedDict(...)` / `collections.OrderedDict(...)` under any import (qualified_name resolves torch names only)
        named = named or (isinstance(func, cst.Name) and func.value.endswith("OrderedDict")) \
            or (isinstance(func, cst.Attribute) and func.attr.value.endswith("OrderedDict"))
        named = named or (isinstance(orig.value, cst.Name) and _bound_to_a_dict(rewriter, orig.value.value))
        if named or isinstance(orig.value, (cst.Dict, cst.DictComp)):
            if _known_mapping(rewriter, orig.value):
                why = _layout_risk(rewriter, _dict_values(rewriter, orig.value))
                if why is not None:
                    # the mark makes a file of such a Sequential one built in torch's layout (api: layout "auto")
                    raise Flag(f"nn.Sequential(OrderedDict(...)): {why}; the layers are kept by name "
                               "(TorchSequential) only where none of them takes channels-last data in MLX "
                               f"({CONTAINER_LAYOUT_MARK}: the calls it makes)", "no-equivalent")
                return _named_sequential(rewriter, original, call)
            raise Flag("nn.Sequential(OrderedDict(...)) names its layers; MLX's nn.Sequential numbers them "
                       "(layers.0, ...), and this OrderedDict is not known to be collections' (imported from "
                       "collections in this file): pass the layers positionally or keep them as attributes",
                       "no-equivalent")
    if _grown_later(rewriter, original):
        layout = rewriter.transform("nn-layout")  # absent: the file builds no channels-last layer
        if layout is None or getattr(layout, "builds_torch_layout", False):
            return _torch_sequential(rewriter, call)
        # the mark makes the file one built in torch's layout (api: layout "auto"), where this becomes TorchSequential
        raise Flag("nn.Sequential grown after it is built (X.add_module(name, m) / X.append(m)): torch runs the added "
                   f"modules too, under their names; {CONTAINER_LAYOUT_MARK} (it reads the layers passed to the "
                   "constructor only), so they are kept (TorchSequential) in the torch-layout build only",
                   "no-equivalent")
    return _nn_call("Sequential", [a.with_changes(comma=cst.MaybeSentinel.DEFAULT, whitespace_after_arg=cst.SimpleWhitespace("")) for a in call.args]), _NN


_GROWERS = frozenset({"add_module", "append"})


def _grown_later(rewriter, original: cst.Call) -> bool:
    """The Sequential is assigned to a name or attribute (`stem = nn.Sequential()`, `self.blocks = ...`) that the
    same function (or module) grows by `.add_module(...)` / `.append(...)` (timm cspnet's stem and blocks)."""
    stmt = rewriter.statement
    small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
    target = None
    if isinstance(small, cst.Assign) and len(small.targets) == 1 and small.value is original:
        target = small.targets[0].target
    elif isinstance(small, cst.AnnAssign) and small.value is original:
        target = small.target
    if not isinstance(target, (cst.Name, cst.Attribute)) or not rewriter.scopes:
        return False
    try:
        text = ast.unparse(ast.parse(cst.Module([]).code_for_node(target), mode="eval").body)
    except SyntaxError:
        return False
    grown = bound = 0
    for node in ast.walk(rewriter.scopes[-1].node):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _GROWERS:
            grown += ast.unparse(node.func.value) == text
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.For, ast.With, ast.NamedExpr)):
            targets = node.targets if isinstance(node, ast.Assign) else [
                node.target if not isinstance(node, ast.With) else item.optional_vars
                for item in (node.items if isinstance(node, ast.With) else [None])]
            bound += sum(1 for t in targets if t is not None for n in ast.walk(t)
                         if isinstance(n, (ast.Name, ast.Attribute)) and ast.unparse(n) == text)
    # bound once (this Sequential): `layers = []; layers.append(m); layers = nn.Sequential(*layers)` grows the list
    return grown > 0 and bound == 1


def _torch_sequential(rewriter, call: cst.Call):
    """`nn.Sequential(a, b)` -> `TorchSequential(a, b)` (layer_bases.py): members "0", "1", ..., then what
    add_module / append add, under their names, run in that order (torch's names and order)."""
    from torch2mlx.transforms.codegen import add_helpers
    from torch2mlx.transforms.module.layer_bases import BASE_CODE

    helper = add_helpers(rewriter, ["TorchSequential"], BASE_CODE)["TorchSequential"]
    return cst.Call(func=cst.Name(helper), args=list(call.args)), frozenset()


def _named_sequential(rewriter, original: cst.Call, call: cst.Call):
    """`nn.Sequential(OrderedDict(...))` -> `TorchSequential(OrderedDict(...))` (layer_bases.py): the layers are
    the module's members under the dict's keys, torch's state_dict names (`features.conv0.weight`) and
    attributes (`self.features.conv0`), called in the dict's order as torch's Sequential calls them. MLX's
    nn.Sequential would number them (`layers.0`). One argument only (torch takes the dict alone)."""
    from torch2mlx.transforms.codegen import add_helpers
    from torch2mlx.transforms.module.layer_bases import BASE_CODE

    if len(call.args) != 1 or call.args[0].star:
        raise Flag("nn.Sequential takes an OrderedDict as its only argument", "no-equivalent")
    helper = add_helpers(rewriter, ["TorchSequential"], BASE_CODE)["TorchSequential"]
    return cst.Call(func=cst.Name(helper), args=[call.args[0].with_changes(comma=cst.MaybeSentinel.DEFAULT)]), frozenset()


def _dict_makers(rewriter) -> "tuple[set, set]":
    """(names bound to collections.OrderedDict by `from collections import OrderedDict [as X]`, names bound to
    the collections module by `import collections [as c]`) at module level."""
    module = rewriter.scopes[0].node if rewriter.scopes else None
    names: set = set()
    modules: set = set()
    for node in getattr(module, "body", ()):
        if isinstance(node, ast.ImportFrom) and node.module == "collections" and not node.level:
            names |= {a.asname or a.name for a in node.names if a.name == "OrderedDict"}
        elif isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "collections"}
    return names, modules


def _makes_a_dict(rewriter, func, names: set, modules: set) -> bool:
    """`func` (an ast or libcst callee) is collections.OrderedDict or the builtin dict."""
    if isinstance(func, (ast.Name, cst.Name)):
        name = func.id if isinstance(func, ast.Name) else func.value
        return name in names or (name == "dict" and not rewriter.name_taken("dict"))
    if isinstance(func, ast.Attribute):
        return func.attr == "OrderedDict" and isinstance(func.value, ast.Name) and func.value.id in modules
    if isinstance(func, cst.Attribute):
        return (func.attr.value == "OrderedDict" and isinstance(func.value, cst.Name) and func.value.value in modules)
    return False


def _known_mapping(rewriter, value: cst.BaseExpression) -> bool:
    """The argument is a dict whose keys name the layers: a dict literal or comprehension, a call of
    collections.OrderedDict or dict, or a name every assignment of which in the scope is one of those."""
    names, modules = _dict_makers(rewriter)
    if isinstance(value, (cst.Dict, cst.DictComp)):
        return True
    if isinstance(value, cst.Call):
        return _makes_a_dict(rewriter, value.func, names, modules)
    if not isinstance(value, cst.Name) or not rewriter.scopes:
        return False
    values = []
    for node in ast.walk(rewriter.scopes[-1].node):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == value.value for t in node.targets):
            values.append(node.value)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name) \
                and node.target.id == value.value:
            values.append(node.value)
        elif isinstance(node, (ast.For, ast.With, ast.NamedExpr)) and any(
                isinstance(n, ast.Name) and n.id == value.value and isinstance(n.ctx, ast.Store) for n in ast.walk(
                    node.target if isinstance(node, (ast.For, ast.NamedExpr)) else node)):
            return False  # bound another way: not followed
    return bool(values) and all(isinstance(v, (ast.Dict, ast.DictComp))
                                or (isinstance(v, ast.Call) and _makes_a_dict(rewriter, v.func, names, modules))
                                for v in values)


def _dict_values(rewriter, value: cst.BaseExpression) -> "list | None":
    """The layer expressions a dict argument holds (ast nodes or libcst nodes): the values of a dict literal, of
    `OrderedDict([(key, layer), ...])`, or of `name[key] = layer` statements for a name assigned an empty dict
    (torchvision's ViT heads); None where they cannot all be seen."""
    if isinstance(value, cst.Dict):
        return [e.value for e in value.elements if isinstance(e, cst.DictElement)] \
            if all(isinstance(e, cst.DictElement) for e in value.elements) else None
    if isinstance(value, cst.Call):
        if not value.args:
            return []
        pairs = value.args[0].value if len(value.args) == 1 and not value.args[0].star else None
        if isinstance(pairs, (cst.List, cst.Tuple)) and all(
                isinstance(e, cst.Element) and isinstance(e.value, cst.Tuple) and len(e.value.elements) == 2
                for e in pairs.elements):
            return [e.value.elements[1].value for e in pairs.elements]
        return None
    if not isinstance(value, cst.Name) or not rewriter.scopes:
        return None
    found: list = []
    for node in ast.walk(rewriter.scopes[-1].node):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id == value.value:
                if not (isinstance(node.value, ast.Dict) and not node.value.keys) and not (
                        isinstance(node.value, ast.Call) and not node.value.args and not node.value.keywords):
                    return None  # only an empty dict, then items set one by one
            elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) \
                    and target.value.id == value.value:
                found.append(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == value.value:
            if not (isinstance(node.value, ast.Call) and not node.value.args and not node.value.keywords):
                return None
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == value.value:
            return None  # `layers.update(...)`, `layers.setdefault(...)`: items not seen
    return found


# torch layers whose MLX counterpart takes channels-last data (layout_facts.py) and, by their name, other
# spatial ones: a Sequential of them needs the layout analysis, which follows MLX's nn.Sequential only
_SPATIAL_SUFFIXES = ("1d", "2d", "3d")


def _layout_risk(rewriter, values) -> "str | None":
    """Why a layer of `values` may take channels-last data in MLX (None: none does): a torch spatial layer, a
    class of this file that builds one (its calls are given NHWC data where nn-layout sees them), or anything
    the analysis cannot see (a factory, a parameter, an imported class)."""
    from torch2mlx.layout_facts import ADAPTIVE, KEEP, SPATIAL

    layout = rewriter.transform("nn-layout")
    if getattr(layout, "builds_torch_layout", False):
        return None  # the torch-layout build (layout/torch_layout.py): every layer takes torch's layout
    if values is None:
        return "its layers cannot all be seen"
    for value in values:
        func = value.func if isinstance(value, (cst.Call, ast.Call)) else None
        if func is None:
            return "a layer is not a constructor call"
        if isinstance(func, ast.AST):
            try:
                func = cst.parse_expression(ast.unparse(func))
            except cst.ParserSyntaxError:
                return "a layer is not a constructor call"
        qual = rewriter.qualified_name(func)
        if qual is not None:
            short = qual.rsplit(".", 1)[-1]
            if not qual.startswith("torch.nn.") or short in SPATIAL or short in KEEP or short in ADAPTIVE \
                    or short.endswith(_SPATIAL_SUFFIXES):
                return f"{short} takes channels-last data in MLX"
            continue
        name = func.value if isinstance(func, cst.Name) else None
        defs = getattr(layout, "class_defs", None) or {}
        if name is None or name not in defs:
            return f"`{cst.Module([]).code_for_node(func)}(...)` is not a class of this file"
        # nn-layout's own reading of the class (channels-last layers built in __init__, or a class it follows as
        # channels-last); unknown when that transform is absent or reads classes another way
        class_layers = getattr(layout, "_class_layers", None)
        if class_layers is None or name in (getattr(layout, "own", None) or {}) \
                or class_layers(rewriter, defs[name]) is not None:
            return f"{name} builds layers that take channels-last data in MLX (or nn-layout cannot tell)"
    return None


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
