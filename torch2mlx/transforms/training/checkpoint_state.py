"""Checkpoints holding model, optimizer and scheduler state (id `checkpoint-state`).

What it does
    ::

        torch.save({"model": model.state_dict(),              save_checkpoint({"model": model.parameters(),
                    "optimizer": opt.state_dict(),      ->                     "optimizer": opt.state,
                    "scheduler": sched.state_dict(),                           "scheduler": sched.state_dict(),
                    "epoch": epoch}, path)                                     "epoch": epoch}, path)
        ckpt = torch.load(path, map_location="cpu")           ckpt = load_checkpoint(path)
        model.load_state_dict(ckpt["model"])                  model.update(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])                opt.state = ckpt["optimizer"]
        sched.load_state_dict(ckpt["scheduler"])              sched.load_state_dict(ckpt["scheduler"])

    `save_checkpoint` / `load_checkpoint` (generated helpers) write one safetensors file at exactly
    `path`: every entry whose leaves are arrays (parameters, `tree_flatten(optimizer.state)`) as
    tensors, every other entry (epoch, scheduler state, floats) as JSON in the file's metadata.
Why
    MLX cannot read or write pickles; the parameter and optimizer-state trees round-trip exactly
    through safetensors, and Python numbers exactly through JSON.
Left in place (flagged by `checkpoint` / the table) when
    the saved object is not a dict literal, an entry is the state of a GradScaler, or the loaded
    name is used for anything but `name[...]`.
"""
from __future__ import annotations

import ast
from typing import Optional

import libcst as cst

from torch2mlx.binding import code_of
from torch2mlx.transforms import Transform
from torch2mlx.transforms.codegen import mlx_statements
from torch2mlx.transforms.training.scan import optimizer_models

RULE_ID = "checkpoint-state"
HELPERS = '''
def save_checkpoint(checkpoint, path):
    """A dict checkpoint in one safetensors file at `path`: entries whose leaves are arrays as tensors
    (their tree paths under the entry's key), every other entry as JSON in the metadata."""
    import json

    from mlx.utils import tree_flatten

    arrays, values, trees = {}, {}, {}
    for key, value in checkpoint.items():
        leaves = tree_flatten(value) if not isinstance(value, mx.array) else [("", value)]
        if leaves and all(isinstance(leaf, mx.array) for _, leaf in leaves):
            trees[key] = [name for name, _ in leaves]
            arrays.update({f"{key}/{name}": leaf for name, leaf in leaves})
        else:
            values[key] = value
    metadata = {"checkpoint": json.dumps({"order": list(checkpoint), "trees": trees, "values": values})}
    with open(path, "wb") as f:
        mx.save_safetensors(f, arrays, metadata=metadata)


def load_checkpoint(path):
    """The dict save_checkpoint wrote, trees and values as they were saved."""
    import json

    from mlx.utils import tree_unflatten

    with open(path, "rb") as f:
        arrays, metadata = mx.load(f, format="safetensors", return_metadata=True)
    info = json.loads(metadata["checkpoint"])
    out = {}
    for key in info["order"]:
        if key in info["trees"]:
            names = info["trees"][key]
            leaves = [(name, arrays[f"{key}/{name}"]) for name in names]
            out[key] = leaves[0][1] if names == [""] else tree_unflatten(leaves)
        else:
            out[key] = info["values"][key]
    return out
'''


def _state_dict_owner(node) -> Optional[cst.BaseExpression]:
    if isinstance(node, cst.Call) and not node.args and isinstance(node.func, cst.Attribute) and node.func.attr.value == "state_dict":
        return node.func.value
    return None


class CheckpointState(Transform):
    id = RULE_ID
    description = "torch.save({...state_dict()...}) / torch.load -> save_checkpoint / load_checkpoint (safetensors)"
    hot_attributes = frozenset({"load_state_dict", "state_dict"})
    order = 120  # after `checkpoint` (100), whose flags on dict checkpoints it replaces

    def __init__(self) -> None:
        self.optimizers: set = set()
        self.schedulers: set = set()
        self.loaded: set = set()  # names assigned torch.load(...) used only as name[...]
        self.assignments: set = set()  # ids of original `opt.load_state_dict(...)` statements -> `opt.state = ...`
        self.dict_assignments: set = set()  # codes of `ckpt = {...}` statements saved by a later torch.save(ckpt, path)
        self.dict_saves: dict = {}  # codes of those torch.save(ckpt, path) statements -> the code of their `ckpt = {...}`
        self.converted_dicts: set = set()  # codes of the `ckpt = {...}` statements translated

    def applies_to(self, text: str) -> bool:
        return "torch.save" in text or "torch.load" in text

    def visit_Module(self, rw, node) -> None:
        tree = ast.parse(node.code)
        self.optimizers = set(optimizer_models(tree))
        for n in ast.walk(tree):
            if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.value, ast.Call):
                text = ast.unparse(n.value.func)
                if "lr_scheduler" in text or text.endswith(("LR", "ReduceLROnPlateau", "LRScheduler")):
                    self.schedulers.add(ast.unparse(n.targets[0]))
        names = {ast.unparse(n.targets[0]) for n in ast.walk(tree) if isinstance(n, ast.Assign) and len(n.targets) == 1
                 and isinstance(n.targets[0], ast.Name) and isinstance(n.value, ast.Call) and ast.unparse(n.value.func).endswith("torch.load")}
        subscripted = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Subscript)}
        saved = self._dict_saves(tree)
        for name in names:
            uses = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Load)]
            if uses and all(id(u) in subscripted or id(u) in saved for u in uses):
                self.loaded.add(name)

    def _dict_saves(self, tree) -> set:
        """`ckpt = {...}` then, later in the same block with no other binding of `ckpt` between, `torch.save(ckpt, path)`
        (nanoGPT's style): the codes of both statements are recorded (`self.dict_assignments`, `self.dict_saves`); returns
        the ids of the `ckpt` names those saves read."""
        found: set = set()
        for node in ast.walk(tree):
            for field in ("body", "orelse", "finalbody"):
                block = getattr(node, field, None)
                if not isinstance(block, list):
                    continue
                for i, stmt in enumerate(block):
                    if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                            and isinstance(stmt.value, ast.Dict) and None not in stmt.value.keys):
                        continue
                    name = stmt.targets[0].id
                    for later in block[i + 1:]:
                        call = later.value if isinstance(later, ast.Expr) else None
                        if (isinstance(call, ast.Call) and ast.unparse(call.func).endswith("torch.save") and len(call.args) == 2
                                and not call.keywords and isinstance(call.args[0], ast.Name) and call.args[0].id == name):
                            self.dict_assignments.add(ast.unparse(stmt))
                            self.dict_saves[ast.unparse(later)] = ast.unparse(stmt)
                            found.add(id(call.args[0]))
                            break
                        if any(isinstance(n, ast.Name) and n.id == name and not isinstance(n.ctx, ast.Load) for n in ast.walk(later)):
                            break
        return found

    def _kind(self, owner) -> str:
        code = code_of(owner)
        last = code.split(".")[-1].lower()
        if code in self.optimizers:
            return "optimizer"
        if code in self.schedulers or "sched" in last:
            return "scheduler"
        if "scaler" in last or "opt" in last:
            return "other"
        return "model"

    @staticmethod
    def _helper(rw, name: str) -> str:
        """save_checkpoint / load_checkpoint, both written with either: the name `name` has in the file."""
        names = {helper: rw.helper(helper, lambda i=i: mlx_statements(rw, HELPERS)[i:i + 1])
                 for i, helper in enumerate(("save_checkpoint", "load_checkpoint"))}
        return names[name]

    def leave_Call(self, rw, original, updated):
        qual = rw.qualified_name(original.func)
        if qual == "torch.save":
            return self._save(rw, original, updated)
        if qual == "torch.load":
            return self._load(rw, original, updated)
        if (isinstance(original.func, cst.Attribute) and original.func.attr.value == "load_state_dict" and len(original.args) == 1
                and isinstance(original.args[0].value, cst.Subscript) and code_of(original.args[0].value.value) in self.loaded):
            return self._restore(rw, original, updated)
        return updated

    def _entries(self, dict_node):
        """The checkpoint dict with model / optimizer state_dict() entries as MLX trees, or None (a GradScaler's state)."""
        elements = []
        for element in dict_node.elements:
            if not isinstance(element, cst.DictElement):
                return None
            owner = _state_dict_owner(element.value)
            if owner is not None:
                kind = self._kind(owner)
                if kind == "other":
                    return None
                if kind != "scheduler":
                    value = cst.Attribute(owner, cst.Name("state")) if kind == "optimizer" else cst.Call(cst.Attribute(owner, cst.Name("parameters")))
                    element = element.with_changes(value=value)
            elements.append(element)
        return dict_node.with_changes(elements=elements)

    def _statement_code(self, rw) -> Optional[str]:
        try:
            return ast.unparse(ast.parse(code_of(rw.statement.with_changes(leading_lines=[])).strip()).body[0])
        except (SyntaxError, AttributeError, IndexError):
            return None

    def leave_Dict(self, rw, original, updated):
        """`ckpt = {...}` that a later torch.save(ckpt, path) writes: its state_dict() entries as MLX trees."""
        stmt = rw.statement
        small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
        if not (self.dict_assignments and isinstance(small, cst.Assign) and small.value is original
                and self._statement_code(rw) in self.dict_assignments):
            return updated
        new = self._entries(updated)
        if new is None:
            return updated
        self.converted_dicts.add(self._statement_code(rw))
        return new

    def _save(self, rw, original, updated):
        args = updated.args
        if len(args) != 2 or any(a.keyword or a.star for a in args):
            return updated
        if isinstance(args[0].value, cst.Name):  # nanoGPT: checkpoint = {...}; torch.save(checkpoint, path)
            if self.dict_saves.get(self._statement_code(rw)) not in self.converted_dicts:
                return updated
            dict_ = args[0].value
        elif isinstance(args[0].value, cst.Dict):
            dict_ = self._entries(args[0].value)
            if dict_ is None:
                return updated
        else:
            return updated
        helper = self._helper(rw, "save_checkpoint")
        rw.drop_flags(predicate=lambda f: f.rule_id in ("checkpoint", "torch.save"))
        rw.count_conversion()
        return cst.Call(cst.Name(helper), args=[args[0].with_changes(value=dict_), args[1]])

    def _load(self, rw, original, updated):
        stmt = rw.statement
        small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
        if not (isinstance(small, cst.Assign) and small.value is original and code_of(small.targets[0].target) in self.loaded):
            return updated
        args = updated.args
        if not args or args[0].keyword is not None or any(a.keyword is None or a.keyword.value not in ("map_location", "weights_only")
                                                          for a in args[1:]):
            return updated
        helper = self._helper(rw, "load_checkpoint")
        rw.drop_flags(predicate=lambda f: f.rule_id in ("checkpoint", "torch.load"))
        rw.count_conversion()
        return cst.Call(cst.Name(helper), args=[args[0].with_changes(comma=cst.MaybeSentinel.DEFAULT)])

    def _restore(self, rw, original, updated):
        stmt = rw.statement
        small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
        if not (isinstance(small, cst.Expr) and small.value is original):
            return updated
        owner = updated.func.value
        kind = self._kind(owner)
        if kind == "scheduler":
            return updated  # the generated LRScheduler / ReduceLROnPlateau load their own state
        if kind == "other":
            return updated
        rw.count_conversion()
        if kind == "model":
            return updated.with_changes(func=cst.Attribute(owner, cst.Name("update")))
        self.assignments.add(id(stmt))
        return updated

    def leave_SimpleStatementLine(self, rw, original, updated):
        if id(original) not in self.assignments:
            return updated
        call = updated.body[0].value
        owner = call.func.value
        new = cst.Assign(targets=[cst.AssignTarget(cst.Attribute(owner, cst.Name("state")))], value=call.args[0].value)
        return updated.with_changes(body=[new])
