"""The closed world, part two: after the pass, no unflagged reference to torch survives in the output.

The pass flags every torch call, value and tensor member it cannot translate (rewriter.py,
with the member lists of array_facts.py). What could still slip through is a torch name the
pass never looked at: one a transform kept, one bound ambiguously (`try: import torch` ...
`except ImportError: torch = None`), one in code a transform wrote. This audit reads the
finished output: when a torch import is still there, every use of the names it binds must sit
in a statement that already carries a `# torch2mlx:` flag; any other use gets a flag of its
own (rule id `torch-reference`), and so does a torch import that nothing uses. Exit 0 then
means what a user reads it to mean: the file no longer needs torch.

An import of a module built on torch (torchvision, timm, `einops.layers.torch`, ...) is
flagged the same way (rule id `torch-dependency`): what it provides still runs on torch.

A torch nn.Module (or optimizer) method that no MLX object has — `model.state_dict()`,
`m.load_state_dict(sd)`, `model.named_buffers()`, `register_forward_hook` — left in the output by
no rule or transform would raise AttributeError when the code runs, and iterating
`X.parameters()` / `X.children()` would walk an MLX dict's keys where torch yields tensors and
modules: both get a flag (rule id `torch-module-member`) unless the file defines that name itself.

An attribute of a torch layer read off the MLX layer it became (`self.conv1.stride[0]`, `fc.in_features`,
`conv.weight.shape[1]`) is translated where exact or flagged (rule id `torch-layer-attribute`): see
layer_attributes.py.
"""
from __future__ import annotations

import ast
import bisect
import difflib
import re
import sys
from dataclasses import dataclass
from typing import Optional

from torch2mlx import layer_attributes

RULE_ID = "torch-reference"
STAR_RULE_ID = "star-import"
DEPENDENCY_RULE_ID = "torch-dependency"
FLAG_PREFIX = "# torch2mlx:"

# Packages (or sub-modules) whose import pulls torch in: code using them still needs torch.
TORCH_BUILT_MODULES = frozenset({
    "torchvision", "torchaudio", "torchtext", "torchdata", "torchmetrics", "torchsummary", "torchinfo",
    "timm", "einops.layers.torch", "safetensors.torch", "transformers", "accelerate", "peft", "diffusers",
    "sentence_transformers", "open_clip", "pytorch_lightning", "lightning", "torch_geometric", "torch_scatter",
    "torch_sparse", "kornia", "segmentation_models_pytorch", "apex", "deepspeed", "xformers", "flash_attn",
    "bitsandbytes", "fvcore", "detectron2", "mmcv", "mmdet", "mmengine", "thop", "lpips", "pytorch_msssim",
    "torchdiffeq", "torchcrf", "ultralytics", "fairseq", "functorch", "triton",
})
_STAR_IMPORT_LINE = re.compile(r"^[ \t]*from[ \t]+\S+[ \t]+import[ \t]+\*", re.MULTILINE)
# star imports whose names are known without reading the module
_KNOWN_STAR_SOURCES = frozenset(sys.stdlib_module_names) | {"numpy", "mlx", "torch", "math"}
MODULE_MEMBER_RULE_ID = "torch-module-member"
# Members of torch.nn.Module (and of torch optimizers / schedulers: state_dict, load_state_dict, zero_grad)
# that mlx.nn.Module and MLX optimizers lack, with what to write instead.
_TORCH_ONLY_MODULE_MEMBERS = {
    "state_dict": "MLX modules have no state_dict(): `dict(tree_flatten(model.parameters()))` (mlx.utils), "
                  "or model.save_weights(path); an MLX optimizer's state is `optimizer.state`",
    "load_state_dict": "MLX modules have no load_state_dict(): `model.load_weights(list(weights.items()))`, or "
                       "torch2mlx.load_torch_weights for a torch checkpoint; an MLX optimizer's is `optimizer.state = ...`",
    "named_parameters": "MLX modules have no named_parameters(): `tree_flatten(model.parameters())` (mlx.utils) gives "
                        "(path, array) pairs",
    "named_buffers": "MLX modules have no buffers: frozen arrays are in `tree_flatten(model.parameters())`",
    "buffers": "MLX modules have no buffers: frozen arrays are in `tree_flatten(model.parameters())`",
    "named_children": "MLX modules have no named_children(): `model.children()` is a dict of the direct children",
    "register_buffer": "MLX modules have no register_buffer(): assign the array as an attribute and freeze it "
                       "(`self.freeze(keys=[name], recurse=False)`)",
    "register_parameter": "MLX modules have no register_parameter(): assign the array as an attribute",
    "register_module": "MLX modules have no register_module(): assign the module as an attribute (setattr)",
    "add_module": "MLX modules have no add_module(): assign the module as an attribute (setattr)",
    "get_submodule": "MLX modules have no get_submodule(): follow the attributes (or `dict(model.named_modules())`)",
    "get_parameter": "MLX modules have no get_parameter(): `dict(tree_flatten(model.parameters()))[name]`",
    "get_buffer": "MLX modules have no buffers: `dict(tree_flatten(model.parameters()))[name]`",
    "set_submodule": "MLX modules have no set_submodule(): assign the attribute",
    "register_forward_hook": "MLX modules have no hooks: call what the hook does after the module by hand",
    "register_forward_pre_hook": "MLX modules have no hooks: call what the hook does before the module by hand",
    "register_full_backward_hook": "MLX has no backward hooks: transform the gradients returned by mx.grad",
    "register_full_backward_pre_hook": "MLX has no backward hooks: transform the gradients returned by mx.grad",
    "register_backward_hook": "MLX has no backward hooks: transform the gradients returned by mx.grad",
    "requires_grad_": "MLX modules have no requires_grad_(): model.freeze() / model.unfreeze()",
    "zero_grad": "MLX has no accumulated gradients to clear: mx.grad returns fresh gradients each call; remove it",
    "share_memory": "MLX arrays need no share_memory(): remove it",
    "to_empty": "MLX modules have no to_empty()",
}
# Iterating these walks an MLX dict's keys (strings) where torch yields tensors / modules.
_DICT_IN_MLX = {
    "parameters": "`.parameters()` of an MLX module is a nested dict: iterating it yields its keys, where torch yields "
                  "the tensors; iterate `tree_flatten(X.parameters())` (mlx.utils: (path, array) pairs)",
    "children": "`.children()` of an MLX module is a dict of the direct children (a list of modules for a container): "
                "iterating it yields names, where torch yields the modules",
}
_ITERATING_CALLS = frozenset({"list", "tuple", "set", "sorted", "enumerate", "zip", "filter", "map", "iter", "next",
                              "sum", "any", "all", "reversed", "frozenset"})
_MODULE_MEMBER_USE = re.compile(r"\.(?:" + "|".join(sorted(_TORCH_ONLY_MODULE_MEMBERS) + sorted(_DICT_IN_MLX)) + r")\b")
_TORCH_IMPORT_LINE = re.compile(
    r"^[ \t]*(?:import|from)[ \t]+(?:torch\b|" + "|".join(sorted({m.split(".")[0] for m in TORCH_BUILT_MODULES})) + r")\b",
    re.MULTILINE)


def torch_built_module(dotted: str) -> Optional[str]:
    """The entry of TORCH_BUILT_MODULES that `dotted` (an imported module's name) is, or is inside."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in TORCH_BUILT_MODULES:
            return prefix
    return None


@dataclass(frozen=True)
class Leftover:
    """A torch reference in the output that no flag covers; line and column refer to the input."""

    rule_id: str
    line: int
    column: int
    message: str


def audit(code: str, original: str, own_packages: frozenset = frozenset(),
          single_file: bool = True) -> tuple[str, list[Leftover]]:
    """The output with a flag above each statement that still names torch unflagged, and those places.

    `own_packages`: top-level packages of the tree being converted (a directory run of timm itself
    imports `timm.layers`: that is the project, converted alongside, not a dependency).
    `single_file`: not a directory run, so a star import from the user's own modules is not followed."""
    code, layer_reads = layer_attributes.audit(code, original)  # torch layer attributes read off the MLX layers
    stars = single_file and _STAR_IMPORT_LINE.search(code) is not None
    members = _MODULE_MEMBER_USE.search(code) is not None
    if not stars and not members and not layer_reads and not _TORCH_IMPORT_LINE.search(code):
        return code, []  # no torch import left: no name can refer to torch (the common case, decided by regexes)
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code, []  # the emitter reports an output that does not parse
    lines = code.splitlines(keepends=True)
    imports, loads = _scan(tree)
    bound = _torch_bindings(imports)
    places: dict = {}  # first output line of a statement -> (statement, rule id, why, column)
    for stmt, col, why in layer_reads:
        if not _flags_above(lines, _first_line(stmt)) - {layer_attributes.RULE_ID} and not _suppressed(lines[stmt.lineno - 1]):
            places.setdefault(_first_line(stmt), (stmt, layer_attributes.RULE_ID, why, col))
    for stmt, node, why in _torch_module_members(tree) if members else ():
        if not _flags_above(lines, _first_line(stmt)) - {MODULE_MEMBER_RULE_ID} and not _suppressed(lines[stmt.lineno - 1]):
            places.setdefault(_first_line(stmt), (stmt, MODULE_MEMBER_RULE_ID, why, node.col_offset))
    for stmt in _unfollowed_star_imports(imports) if stars else ():
        if not _flags_above(lines, stmt.lineno) - {STAR_RULE_ID}:
            source = "." * stmt.level + (stmt.module or "")
            why = (f"the names `from {source} import *` brings in are not known when converting one file (torch "
                   "aliases or nn.Module classes there would be left as torch): convert the whole folder, which "
                   "follows star imports, or import the names explicitly")
            places.setdefault(stmt.lineno, (stmt, STAR_RULE_ID, why, stmt.col_offset))
    for stmt, module in _torch_built_imports(imports):
        if module.split(".")[0] in own_packages:
            continue
        if not _flags_above(lines, _first_line(stmt)) - {DEPENDENCY_RULE_ID}:
            why = (f"`{module}` is built on torch: the converted code would still need torch; "
                   "port what this file uses from it (or use an MLX counterpart)")
            places.setdefault(_first_line(stmt), (stmt, DEPENDENCY_RULE_ID, why, stmt.col_offset))
    used: set = set()
    covered: dict = {}  # id(statement) -> whether a flag (or a suppression) already covers it
    for stmt, name_node in (use for name in bound for use in loads.get(name, ())):
        used.add(name_node.id)
        if id(stmt) not in covered:
            covered[id(stmt)] = bool(_flags_above(lines, _first_line(stmt)) - {RULE_ID}) or _suppressed(lines[stmt.lineno - 1])
        if covered[id(stmt)]:
            continue
        why = (f"`{name_node.id}` still refers to torch here (the name is bound by a torch import and otherwise, "
               "or was left by a transform): translate this by hand")
        places.setdefault(_first_line(stmt), (stmt, RULE_ID, why, name_node.col_offset))
    for name, import_stmt in bound.items():
        if name not in used and not _flags_above(lines, _first_line(import_stmt)) - {RULE_ID}:
            why = "this torch import is still in the output: remove it, or translate what needs it"
            places.setdefault(_first_line(import_stmt), (import_stmt, RULE_ID, why, import_stmt.col_offset))
    if not places:
        return code, []
    to_input = _line_map(original, code)
    leftovers = []
    for first, (stmt, rule_id, why, col) in sorted(places.items(), key=lambda item: item[0], reverse=True):
        if rule_id not in _flags_above(lines, first):  # flagged by an earlier conversion: reported, not marked again
            indent = re.match(r"[ \t]*", lines[first - 1]).group(0)
            lines.insert(first - 1, f"{indent}{FLAG_PREFIX} {rule_id}: {why}{_newline(lines[first - 1])}")
        leftovers.append(Leftover(rule_id, to_input(stmt.lineno), col + 1, why))
    leftovers.reverse()
    return "".join(lines), leftovers


def _newline(line: str) -> str:
    return "\r\n" if line.endswith("\r\n") else "\n"


def _scan(tree: ast.Module) -> tuple[list, dict]:
    """One walk: the import statements (any scope), and name -> [(innermost statement, Name)] of every load."""
    imports: list = []
    loads: dict = {}
    stack = [(tree, None)]
    while stack:
        node, stmt = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                imports.append(child)
            elif type(child) is ast.Name:
                if type(child.ctx) is ast.Load:
                    loads.setdefault(child.id, []).append((stmt, child))
            elif not isinstance(child, (ast.Constant, ast.expr_context, ast.operator, ast.cmpop, ast.unaryop, ast.boolop)):
                stack.append((child, child if isinstance(child, ast.stmt) else stmt))
    return imports, loads


def _torch_module_members(tree: ast.Module):
    """(innermost statement, node, why) for each use of a torch-only module member, and each iteration of
    `.parameters()` / `.children()`, in code that does not define a function or attribute of that name."""
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    defined |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)}
    stack = [(tree, None)]
    while stack:
        node, stmt = stack.pop()
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.stmt) else stmt
            if isinstance(child, ast.Attribute) and child.attr in _TORCH_ONLY_MODULE_MEMBERS \
                    and child.attr not in defined and inner is not None:
                yield inner, child, f"`.{child.attr}` is a torch module member: {_TORCH_ONLY_MODULE_MEMBERS[child.attr]}"
            for iterated in _iterated(child):
                call = iterated.func if isinstance(iterated, ast.Call) else None
                if isinstance(call, ast.Attribute) and call.attr in _DICT_IN_MLX and call.attr not in defined \
                        and not iterated.args and not iterated.keywords and inner is not None:
                    yield inner, iterated, _DICT_IN_MLX[call.attr]
            stack.append((child, inner))


def _iterated(node: ast.AST) -> list:
    """The expressions `node` iterates over directly: a for loop's or comprehension's iterable, the first
    argument of list(...), zip(...) (all of them), enumerate(...), ..."""
    if isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
        return [node.iter]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _ITERATING_CALLS:
        if node.func.id in ("zip", "map", "filter"):
            return list(node.args) if node.func.id == "zip" else list(node.args[1:])
        return list(node.args[:1])
    return []


def _torch_bindings(imports: list) -> dict:
    """Local name -> the import statement binding it to torch (any scope; a rebinding elsewhere is ignored)."""
    bound: dict = {}
    for node in imports:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "torch" or alias.name.startswith("torch."):
                    bound[alias.asname or alias.name.split(".")[0]] = node
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if node.module == "torch" or node.module.startswith("torch."):
                for alias in node.names:
                    if alias.name != "*":
                        bound[alias.asname or alias.name] = node
    return bound


def _torch_built_imports(imports: list):
    """(import statement, the torch-built module it imports) among the import statements."""
    for node in imports:
        if isinstance(node, ast.Import):
            for alias in node.names:
                module = torch_built_module(alias.name)
                if module is not None:
                    yield node, module
                    break
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            module = torch_built_module(node.module)
            if module is None:  # `from einops.layers import torch`
                module = next((m for a in node.names if (m := torch_built_module(f"{node.module}.{a.name}"))), None)
            if module is not None:
                yield node, module


def _unfollowed_star_imports(imports: list):
    """`from X import *` of the user's own modules (relative, or not the standard library, numpy, mlx)."""
    for node in imports:
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            if node.level > 0 or (node.module or "").split(".")[0] not in _KNOWN_STAR_SOURCES:
                yield node


def _first_line(stmt: ast.stmt) -> int:
    decorators = getattr(stmt, "decorator_list", None)
    return min([stmt.lineno, *(d.lineno for d in decorators)]) if decorators else stmt.lineno


def _flags_above(lines: list, first: int) -> set:
    """The rule ids of the torch2mlx flags in the comment lines right above output line `first`."""
    found = set()
    i = first - 2
    while i >= 0:
        text = lines[i].strip()
        if not text.startswith("#"):
            break
        if text.startswith(FLAG_PREFIX) and not text.startswith(f"{FLAG_PREFIX} ignore"):
            found.add(text[len(FLAG_PREFIX):].split(":", 1)[0].strip())
        i -= 1
    return found


def _suppressed(line: str) -> bool:
    """`# torch2mlx: ignore` or `# torch2mlx: ignore[torch-reference]` at the end of the line."""
    match = re.search(r"#\s*torch2mlx: ignore(\[[^\]]*\])?", line)
    return match is not None and (match.group(1) is None or RULE_ID in match.group(1))


def _line_map(original: str, code: str):
    """Output line -> the input line it came from (the start of the input block a changed line replaced)."""
    matcher = difflib.SequenceMatcher(None, original.splitlines(), code.splitlines(), autojunk=False)
    starts: list = []  # (output start, input start, equal?)
    for tag, i1, _i2, j1, _j2 in matcher.get_opcodes():
        starts.append((j1, i1, tag == "equal"))
    keys = [s[0] for s in starts]

    def to_input(out_line: int) -> int:
        k = bisect.bisect_right(keys, out_line - 1) - 1
        if k < 0:
            return 1
        j1, i1, equal = starts[k]
        return i1 + (out_line - 1 - j1) + 1 if equal else i1 + 1

    return to_input
