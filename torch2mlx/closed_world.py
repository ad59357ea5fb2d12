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
"""
from __future__ import annotations

import ast
import bisect
import difflib
import re
import sys
from dataclasses import dataclass
from typing import Optional

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
    stars = single_file and _STAR_IMPORT_LINE.search(code) is not None
    if not stars and not _TORCH_IMPORT_LINE.search(code):
        return code, []  # no torch import left: no name can refer to torch (the common case, decided by one regex)
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code, []  # the emitter reports an output that does not parse
    lines = code.splitlines(keepends=True)
    imports, loads = _scan(tree)
    bound = _torch_bindings(imports)
    places: dict = {}  # first output line of a statement -> (statement, rule id, why, column)
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
