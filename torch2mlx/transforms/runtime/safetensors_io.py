"""`safetensors.torch.load_file` / `save_file` -> MLX's own safetensors reader and writer (id `safetensors-io`).

What it does
    The calls are translated by their rules (rules/safetensors.yaml): `load_file(path, device=...)` ->
    `safetensors_load_file(path)`, a local helper returning mx.load's arrays in the order of the file's header
    (torch's dict order), `save_file(tensors, path, metadata)` -> `safetensors_save_file(tensors, path, metadata)`,
    a local helper writing through an open file (given a name, mx.save_safetensors appends `.safetensors`). The names are bound by `import safetensors.torch`
    (`safetensors.torch.load_file(...)`, timm models/_helpers.py and _hub.py), `import safetensors.torch as st` or
    `from safetensors.torch import load_file`. The table's rules match torch names only, so this transform
    resolves these and applies the rules itself. When every use of those names became MLX, their imports go:
    `try: import safetensors.torch; _has_safetensors = True / except ImportError: ...` keeps
    `_has_safetensors = True` (MLX reads and writes the format itself).
Why
    `safetensors.torch` imports torch: the import was flagged `torch-dependency` at import of every timm model.
Left in place (flagged by the audit) when
    a use is anything else (another function of the module, the function as a value, a call the rule cannot
    bind), the name is bound otherwise too, or an import binding it sits below the module level (in a def).
"""
from __future__ import annotations

import ast

import libcst as cst

from torch2mlx.binding import bind
from torch2mlx.handlers import register
from torch2mlx.tensors import attribute_chain
from torch2mlx.template import choose_template, expand, normalize, template_roots
from torch2mlx.transforms import Transform
from torch2mlx.transforms.codegen import helper_statements

RULE_ID = "safetensors-io"
MODULE = "safetensors.torch"
_HELPERS = {
    "safetensors_load_file": '''
def safetensors_load_file(filename):
    """safetensors.torch.load_file: the arrays by name, in the order of their data in the file (safetensors' order;
    mx.load returns them in another), read from the header: 8 bytes of its size, then JSON."""
    import json
    import struct

    arrays = mx.load(filename, format="safetensors")
    with open(filename, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    header.pop("__metadata__", None)
    return {name: arrays[name] for name in sorted(header, key=lambda name: header[name]["data_offsets"])}
''',
    "safetensors_save_file": '''
def safetensors_save_file(tensors, filename, metadata=None):
    """safetensors.torch.save_file: the arrays written to `filename` as named (mx.save_safetensors adds a
    `.safetensors` suffix to a name, not to an open file)."""
    with open(filename, "wb") as f:
        mx.save_safetensors(f, tensors, metadata)
''',
}


@register("safetensors_helper")
def safetensors_helper(rule, original, call, receiver, rw):
    """The rule's template (a call of a local helper), with the helper written once per file."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    template = choose_template(rule, bound)
    result = expand(template, rule, bound)
    helper = template.split("(", 1)[0]
    name = rw.helper(helper, lambda: helper_statements(rw, _HELPERS[helper]))
    if name != helper:
        result = result.with_changes(func=cst.Name(name))
    return result, template_roots(template)


def _bindings(tree: ast.Module) -> "dict | None":
    """Local name -> the safetensors.torch name it is bound to, for the module-level imports (also in a module-level
    `try`) of safetensors.torch; None when such an import sits elsewhere."""
    found: dict = {}
    top = [s for s in tree.body] + [s for t in tree.body if isinstance(t, ast.Try) for s in t.body]
    for node in ast.walk(tree):
        names = {}
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == MODULE:
                    names[a.asname or "safetensors"] = MODULE if a.asname else "safetensors"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == MODULE:
            for a in node.names:
                names[a.asname or a.name] = f"{MODULE}.{a.name}"
        if names and node not in top:
            return None
        found.update(names)
    return found


def _only_bindings(tree: ast.Module, names: set) -> bool:
    """`names` are bound by imports alone (no assignment, def, parameter, other import of the same name)."""
    seen: dict = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load) and node.id in names:
            return False
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in names:
            return False
        if isinstance(node, ast.arg) and node.arg in names:
            return False
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                bound = a.asname or a.name.split(".")[0]
                if bound in names:
                    full = a.name if isinstance(node, ast.Import) else f"{node.module}.{a.name}"
                    if seen.setdefault(bound, full) != full:
                        return False
    return True


def _is_binding_import(stmt, names: set) -> bool:
    if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1):
        return False
    node = stmt.body[0]
    code = cst.Module([]).code_for_node
    if isinstance(node, cst.Import):
        return all(code(a.name) == MODULE and (a.asname.name.value if a.asname else "safetensors") in names
                   for a in node.names)
    if isinstance(node, cst.ImportFrom) and not node.relative and node.module is not None:
        return (code(node.module) == MODULE and not isinstance(node.names, cst.ImportStar)
                and all((a.asname.name.value if a.asname else code(a.name)) in names for a in node.names))
    return False


class SafetensorsIO(Transform):
    id = RULE_ID
    description = "safetensors.torch.load_file / save_file -> mx.load / mx.save_safetensors"
    text_decides = True
    hot_attributes = frozenset({"load_file", "save_file"})

    def __init__(self) -> None:
        super().__init__()
        self.names: dict = {}  # nothing is translated before `prepare` read the file
        self.uses = self.translated = 0

    def applies_to(self, text: str) -> bool:
        return "safetensors" in text

    def prepare(self, tree: ast.Module, module_scope) -> None:
        found = _bindings(tree)
        self.names = found if found and _only_bindings(tree, set(found)) else {}
        self.uses = sum(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in self.names
                        for n in ast.walk(tree))
        self.translated = 0
        # `load_file(path)` names no attribute the pass watches: it must see every statement to find the call
        self.needs_every_statement = any(q != MODULE and q != "safetensors" for q in self.names.values())

    def _qualified(self, func) -> "str | None":
        chain = attribute_chain(func)
        if not chain or chain[0] not in self.names:
            return None
        return ".".join([self.names[chain[0]], *chain[1:]])

    def leave_Call(self, rw, original: cst.Call, updated):
        if not self.names or not isinstance(updated, cst.Call):
            return updated
        qual = self._qualified(original.func)
        rule = rw.index.function(qual) if qual is not None and qual.startswith(MODULE + ".") else None
        if rule is None:
            return updated
        result = rw.apply_rule(rule, original, updated)
        if result is not updated:
            self.translated += 1
        return result

    def leave_Module(self, rw, original, updated):
        if not self.names or self.translated != self.uses:
            return updated  # a use is left: the imports stay (and the audit flags them)
        names = set(self.names)
        body = []
        for stmt in updated.body:
            if _is_binding_import(stmt, names):
                continue
            if isinstance(stmt, cst.Try) and isinstance(stmt.body, cst.IndentedBlock):
                kept = [s for s in stmt.body.body if not _is_binding_import(s, names)]
                if kept and kept[0] is not stmt.body.body[0]:  # no blank line right below `try:`
                    kept[0] = kept[0].with_changes(leading_lines=[
                        line for line in kept[0].leading_lines if line.comment is not None])
                if len(kept) != len(stmt.body.body):
                    stmt = stmt.with_changes(body=stmt.body.with_changes(
                        body=kept or [cst.SimpleStatementLine([cst.Pass()])]))
            body.append(stmt)
        return updated.with_changes(body=body)
