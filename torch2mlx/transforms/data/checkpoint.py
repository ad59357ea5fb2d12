"""Checkpoints: `torch.save(model.state_dict(), p)` / `model.load_state_dict(torch.load(p))` (id `checkpoint`).

What it does
    As statements, these become `model.save_weights(p)` / `model.load_weights(p)`; a string
    literal path gets the `.safetensors` suffix (`model.pt` -> `model.safetensors`), the format
    MLX picks from the suffix.
Why
    MLX modules save and load their own parameters; pickled torch files cannot be read.
Left in place (flagged) when
    the path is not a string literal (MLX raises for suffixes other than .safetensors/.npz),
    the saved object is not `X.state_dict()` (optimizer state, dict checkpoints), the value
    of the call is used, or `torch.load` gets arguments other than map_location/weights_only.
"""
from __future__ import annotations

import ast
from typing import Optional

import libcst as cst

from torch2mlx.binding import code_of
from torch2mlx.transforms import Transform
from torch2mlx.transforms.training.scan import optimizer_models

RULE_ID = "checkpoint"
_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".tar", ".pkl")


def _safetensors_path(node: cst.BaseExpression) -> Optional[str]:
    if not isinstance(node, cst.SimpleString) or node.prefix.lower() not in ("", "r"):
        return None
    quote = node.quote
    text = node.value[len(node.prefix) + len(quote):-len(quote)]
    if text.endswith((".safetensors", ".npz")):
        return code_of(node)
    for suffix in _SUFFIXES:
        if text.endswith(suffix):
            return f"{node.prefix}{quote}{text[:-len(suffix)]}.safetensors{quote}"
    return f"{node.prefix}{quote}{text}.safetensors{quote}"


def _state_dict_owner(node: cst.BaseExpression) -> Optional[cst.BaseExpression]:
    if isinstance(node, cst.Call) and not node.args and isinstance(node.func, cst.Attribute) and node.func.attr.value == "state_dict":
        return node.func.value
    return None


class Checkpoints(Transform):
    id = RULE_ID
    description = "torch.save(model.state_dict()) / load_state_dict(torch.load()) -> save_weights / load_weights"
    hot_attributes = frozenset({"load_state_dict", "state_dict"})

    def __init__(self) -> None:
        self.statement_calls: set = set()
        self.optimizers: set = set()

    def applies_to(self, text: str) -> bool:
        return "torch.save" in text or "torch.load" in text or "load_state_dict" in text or "save(" in text

    def prepare(self, tree: ast.Module, module_scope) -> None:
        self.optimizers = set(optimizer_models(tree))

    def _is_model(self, owner) -> bool:
        """Not an optimizer, scheduler or scaler (their state is not a module's weights)."""
        code = code_of(owner)
        last = code.split(".")[-1].lower()
        return code not in self.optimizers and not any(w in last for w in ("optim", "sched", "scaler", "opt"))

    def visit_Expr(self, rw, node) -> None:
        if isinstance(node.value, cst.Call):
            self.statement_calls.add(id(node.value))

    def _refuse(self, rw, node, why: str):
        rw.flag(node, RULE_ID, "no-equivalent", f"checkpoint left as written: {why}")

    def _drop(self, rw, nodes) -> None:
        ids = {id(n) for n in nodes}
        rw.drop_flags(predicate=lambda f: id(f.node) in ids)

    def leave_Call(self, rw, original, updated):
        qual = rw.qualified_name(original.func)
        if qual == "torch.save":
            return self._save(rw, original, updated)
        if isinstance(original.func, cst.Attribute) and original.func.attr.value == "load_state_dict" and qual is None:
            return self._load(rw, original, updated)
        return updated

    def _save(self, rw, original, updated):
        args = original.args
        if id(original) not in self.statement_calls or len(args) != 2 or any(a.keyword or a.star for a in args):
            return updated  # the table's flag for torch.save stays
        owner = _state_dict_owner(updated.args[0].value)
        path = _safetensors_path(updated.args[1].value)
        if owner is None or path is None or not self._is_model(owner):
            self._refuse(rw, original, "only `torch.save(model.state_dict(), \"file\")` with a literal path converts "
                         "(for optimizer state: mx.save_safetensors(path, dict(tree_flatten(optimizer.state))))")
            return updated
        self._drop(rw, [original])
        rw.count_conversion()
        return cst.parse_expression(f"{code_of(owner)}.save_weights({path})")

    def _load(self, rw, original, updated):
        if len(original.args) != 1 or original.args[0].keyword or not isinstance(original.args[0].value, cst.Call):
            return updated
        inner = original.args[0].value
        if rw.qualified_name(inner.func) != "torch.load":
            return updated
        if id(original) not in self.statement_calls:
            self._refuse(rw, original, "the value of load_state_dict() is used (MLX load_weights returns the model)")
            return updated
        new_inner = updated.args[0].value
        rest = [a for a in new_inner.args[1:] if a.keyword is None or a.keyword.value not in ("map_location", "weights_only")]
        path = _safetensors_path(new_inner.args[0].value) if new_inner.args and new_inner.args[0].keyword is None else None
        if rest or path is None or not self._is_model(updated.func.value):
            self._refuse(rw, original, "torch.load needs a literal path and no arguments besides map_location/weights_only")
            return updated
        self._drop(rw, [inner, original])
        rw.count_conversion()
        return cst.parse_expression(f"{code_of(updated.func.value)}.load_weights({path})")
