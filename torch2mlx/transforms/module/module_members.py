"""torch's module-tree walks and registration on MLX modules: `named_children()`, `children()`, `add_module()`
(id `module-members`).

What it does
    `X.named_children()` -> `module_named_children(X)`, `X.children()` -> `module_children(X)`,
    `X.add_module(name, m)` -> `module_add_module(X, name, m)`: local helpers (written once per file) that do on
    the converted model what torch's methods do on the torch model. timm walks the tree with
    `for child_name, child_module in module.named_children():` (named_apply, named_modules: weight init at build)
    and builds stages with `self.add_module(name, block)` (resnet, regnet, cspnet, byobnet); torchvision's regnet
    too; timm's RegStage runs its blocks with `for block in self.children(): x = block(x)`.
Names and order
    The children are what the converted model holds, under torch's names, in the order torch registered them:
    an MLX module keeps its members in a dict in the order they were set (torch's `_modules` order: a member
    replaced keeps its place in both); MLX's nn.Sequential holds its layers in `.layers`, which are torch's
    children "0", "1", ... (the names `load_torch_weights` maps `seq.layers.0` to); a list or dict of modules (what
    nn.ModuleList / nn.ModuleDict become) is one child, whose own children are its elements under "0", "1", ... or
    its keys. The torch-exact bases of layer_bases.py (TorchSequential, TorchModuleDict) hold their modules as
    members under torch's names. Each child comes once (torch's memo); None members are no children (torch skips
    them too).
add_module
    As torch's: a module (or None) under a string name without ".", else TypeError / KeyError as torch raises;
    a name taken by another kind of attribute raises KeyError. It sets the attribute, which MLX registers in
    order. On an MLX nn.Sequential it raises NotImplementedError: a Sequential the function that builds it grows
    (`self.blocks = nn.Sequential()` then `self.blocks.add_module(str(i), block)`, timm's cspnet) is a
    TorchSequential in the torch-layout build and flagged in the channels-last one (containers.py), so only one
    grown elsewhere gets here (the layout analysis did not see what is added). A receiver whose
    class defines the method itself (TorchSequential, TorchModuleDict, or any object that is no MLX module)
    gets its own method.
Raises (NotImplementedError) rather than guess
    an empty list or dict member (torch lists an empty ModuleList / ModuleDict as a child but not a plain
    empty list: the converted model cannot tell them apart); a module member of an MLX nn.Sequential other
    than its layers (torch's position of it among the layers is unknown); add_module on an MLX nn.Sequential.
    add_module of a name that is an attribute of the MLX class (`update`, `layers`, ...: the attribute would hide
    the module) raises KeyError, as torch does for its own attributes.
Left flagged (torch-module-member, closed_world.py)
    `super().add_module(...)` and the like (the helper would be handed the proxy); calls with arguments of
    named_children / children (no torch method of those names takes any).
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.transforms import Transform
from torch2mlx.transforms.codegen import add_helpers

RULE = "module-members"

_NAMED_CHILDREN = '''
def module_named_children(self):
    """PyTorch's Module.named_children() on a converted model: (name, child) for each direct child, under
    PyTorch's names, in PyTorch's order, each once. MLX's nn.Sequential's layers are its children "0", "1", ...;
    a list or dict of modules (a converted nn.ModuleList / nn.ModuleDict) is a child, its elements its children."""

    def is_child(name, value):  # a module, or a non-empty list / dict of modules (a converted container)
        if isinstance(value, nn.Module):
            return True
        if not isinstance(value, (list, dict)):
            return False
        elements = list(value.values()) if isinstance(value, dict) else value
        if not elements:
            raise NotImplementedError(f"member {name!r} is an empty {type(value).__name__}: PyTorch lists an empty "
                                      "ModuleList / ModuleDict as a child but not a plain one, which MLX cannot tell apart")
        return all(isinstance(e, (nn.Module, list, dict)) and is_child(name, e) for e in elements)

    def walk(items):
        memo = set()
        for name, value in items:
            if is_child(name, value) and id(value) not in memo:
                memo.add(id(value))
                yield name, value

    own = getattr(type(self), "named_children", None)
    if own is not None:
        return own(self)
    if isinstance(self, nn.Sequential):
        extra = [k for k, v in self.items() if k != "layers" and is_child(k, v)]
        if extra:
            raise NotImplementedError(f"{type(self).__name__}: modules set on an MLX nn.Sequential besides its layers "
                                      f"({', '.join(extra)}): PyTorch's order of them among the layers is not known")
        return walk([(str(i), v) for i, v in enumerate(self.layers)])
    if isinstance(self, list):
        return walk([(str(i), v) for i, v in enumerate(self)])
    if isinstance(self, dict):  # an MLX module is a dict of its members
        return walk(list(self.items()))
    raise AttributeError(f"'{type(self).__name__}' object has no attribute 'named_children'")
'''

_CHILDREN = '''
def module_named_children(self):
    """PyTorch's Module.named_children() on a converted model: (name, child) for each direct child, under
    PyTorch's names, in PyTorch's order. MLX's nn.Sequential's layers are its children "0", "1", ...; a list or
    dict of modules (a converted nn.ModuleList / nn.ModuleDict) is a child, its elements its children."""
    own = getattr(type(self), "named_children", None)
    if own is not None:
        return own(self)
    if isinstance(self, nn.Sequential):
        extra = [k for k, v in self.items() if k != "layers" and _module_child(k, v)]
        if extra:
            raise NotImplementedError(f"{type(self).__name__}: modules set on an MLX nn.Sequential besides its layers "
                                      f"({', '.join(extra)}): PyTorch's order of them among the layers is not known")
        items = [(str(i), v) for i, v in enumerate(self.layers)]
    elif isinstance(self, list):
        items = [(str(i), v) for i, v in enumerate(self)]
    elif isinstance(self, (dict, nn.Module)):
        items = list(self.items())
    else:
        raise AttributeError(f"'{type(self).__name__}' object has no attribute 'named_children'")
    return _named_children(items)


def _module_child(name, value):
    """value is a child in PyTorch: a module, or a non-empty list / dict of modules (a converted container)."""
    if isinstance(value, nn.Module):
        return True
    if not isinstance(value, (list, dict)):
        return False
    elements = list(value.values()) if isinstance(value, dict) else value
    if not elements:
        raise NotImplementedError(f"member {name!r} is an empty {type(value).__name__}: PyTorch lists an empty "
                                  "ModuleList / ModuleDict as a child but not a plain one, which MLX cannot tell apart")
    return all(isinstance(e, nn.Module) or (isinstance(e, (list, dict)) and e and _module_child(name, e))
               for e in elements)


def _named_children(items):
    memo = set()
    for name, value in items:
        if _module_child(name, value) and id(value) not in memo:
            memo.add(id(value))
            yield name, value
'''

_CHILDREN = '''
def module_children(self):
    """PyTorch's Module.children() on a converted model: the direct children in PyTorch's order
    (module_named_children); an object with a children() of its own gets that one."""
    own = getattr(type(self), "children", None)
    if own is not None and own is not nn.Module.children:
        return own(self)
    return (child for _, child in module_named_children(self))
'''

_ADD_MODULE = '''
def module_add_module(self, name, module):
    """PyTorch's Module.add_module(name, module) on an MLX module: the attribute set (MLX registers members in the
    order they are set)."""
    own = getattr(type(self), "add_module", None)
    if own is not None:
        return own(self, name, module)
    if not isinstance(self, nn.Module):
        raise AttributeError(f"'{type(self).__name__}' object has no attribute 'add_module'")
    if module is not None and not isinstance(module, nn.Module):
        raise TypeError(f"{type(module).__name__} is not a Module subclass")
    if not isinstance(name, str):
        raise TypeError(f"module name should be a string. Got {type(name).__name__}")
    if "." in name:
        raise KeyError(f'module name can\\'t contain ".", got: {name}')
    if name == "":
        raise KeyError('module name can\\'t be empty string ""')
    if isinstance(self, nn.Sequential):  # (one grown in the function that builds it is a TorchSequential)
        raise NotImplementedError(f"add_module({name!r}) on an MLX nn.Sequential: it runs the layers passed to its "
                                  "constructor, numbered; build a TorchSequential to add modules by name")
    if hasattr(type(self), name) or name in self.__dict__ or (name in self and not isinstance(self[name], nn.Module)):
        raise KeyError(f"attribute '{name}' already exists")
    setattr(self, name, module)
'''

HELPERS = {"module_named_children": _NAMED_CHILDREN, "module_children": _CHILDREN, "module_add_module": _ADD_MODULE}
# helper -> the helpers it calls (written before it)
_NEEDS = {"module_named_children": ("module_named_children",),
          "module_children": ("module_named_children", "module_children"),
          "module_add_module": ("module_add_module",)}
_METHODS = {"named_children": "module_named_children", "children": "module_children",
            "add_module": "module_add_module"}


class ModuleMembers(Transform):
    id = RULE
    description = "X.named_children() / X.children() / X.add_module(name, m) -> local helpers with torch's names and order"
    hot_attributes = frozenset(_METHODS)
    text_decides = True

    def applies_to(self, text: str) -> bool:
        return any(f".{name}(" in text for name in _METHODS)

    def leave_Call(self, rw, original: cst.Call, updated):
        func = original.func
        if not (isinstance(func, cst.Attribute) and func.attr.value in _METHODS and isinstance(updated, cst.Call)
                and isinstance(updated.func, cst.Attribute)):
            return updated
        method = func.attr.value
        if _METHODS[method] != "module_add_module" and original.args:
            return updated  # torch's take no argument: some other object's method
        if rw.qualified_name(func.value) is not None or rw.tensors.is_tensor(func.value):
            return updated  # a torch name (`torch.nn.Module.children`) or a tensor: not a module instance
        if isinstance(func.value, cst.Call) and isinstance(func.value.func, cst.Name) and func.value.func.value == "super":
            return updated  # `super().add_module(...)`: the helper would get the proxy, not the module (left flagged)
        names = add_helpers(rw, _NEEDS[_METHODS[method]], HELPERS)
        rw.count_conversion()
        receiver = updated.func.value
        args = [cst.Arg(receiver), *(a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in updated.args)]
        if len(args) > 1:
            args = [a.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))) for a in args[:-1]] + args[-1:]
        return cst.Call(func=cst.Name(names[_METHODS[method]]), args=args)
