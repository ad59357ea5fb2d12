"""Mixed precision: `with torch.autocast(...):` -> the body alone (id `autocast`); GradScaler removed (id `grad-scaler`).

What it does
    Unwraps `with torch.autocast(...)` / `torch.amp.autocast` / `torch.cuda.amp.autocast` /
    `torch.cpu.amp.autocast` blocks: the body is kept one level up, and a warning says the
    block now runs in the dtype of its inputs.
Why
    MLX has no autocast. Without it the block computes in the inputs' dtype (float32 for a
    float32 model), which is more precise than torch's float16/bfloat16 mixed precision but
    not the same numbers: hence a warning, not a silent removal.
Left in place (flagged by the torch.autocast rule) when
    the `with` binds a name (`as ...`), mixes other context managers, or autocast is used
    as a decorator or a plain call.

GradScaler
    `scaler = GradScaler(...)` is removed when, in its function, it is used only as
    `scaler.scale(loss).backward()` (-> `loss.backward()`), `scaler.step(opt)` (-> `opt.step()`),
    `scaler.unscale_(opt)` and `scaler.update()` (dropped); the train-step transform then sees a
    plain training step. A warning stays on the next line: torch skips steps whose gradients
    hold inf/nan, the MLX script does not. Any other use (passed to train(), state_dict) keeps
    the torch.amp.GradScaler flag.
"""
from __future__ import annotations

import ast
import dataclasses
from typing import Optional

import libcst as cst

from torch2mlx.binding import code_of
from torch2mlx.transforms import Transform
from torch2mlx.transforms.training.scan import FunctionPath
from torch2mlx.transforms.training.sched import function_blocks

RULE_ID = "autocast"
AUTOCAST = frozenset({"torch.autocast", "torch.amp.autocast", "torch.cuda.amp.autocast", "torch.cpu.amp.autocast",
                      "torch.amp.autocast_mode.autocast"})
MESSAGE = ("autocast removed: MLX has no mixed precision context, so this block runs in its inputs' dtype "
           "(float32 for a float32 model, not float16/bfloat16): outputs differ from torch's autocast run in rounding")


class Autocast(Transform):
    id = RULE_ID
    description = "with torch.autocast(...): -> the body alone (warned: runs in the inputs' dtype)"
    order = 61

    def __init__(self) -> None:
        self.items: set = set()  # ids of the original autocast calls in unwrapped `with`s
        self.withs: set = set()

    def applies_to(self, text: str) -> bool:
        return "autocast" in text

    def _is_autocast(self, rw, expr) -> bool:
        return isinstance(expr, cst.Call) and rw.qualified_name(expr.func) in AUTOCAST

    def visit_With(self, rw, node) -> None:
        if node.items and all(i.asname is None and self._is_autocast(rw, i.item) for i in node.items):
            self.withs.add(id(node))
            self.items.update(id(i.item) for i in node.items)

    def leave_Call(self, rw, original, updated):
        if id(original) in self.items:
            rw.edit_flags(lambda f: dataclasses.replace(f, rule_id=RULE_ID, kind="needs-review", message=MESSAGE)
                          if f.node is original else f)
        return updated

    def leave_With(self, rw, original, updated):
        if id(original) not in self.withs or not isinstance(updated.body, cst.IndentedBlock):
            return updated
        body = list(updated.body.body)
        body[0] = body[0].with_changes(leading_lines=[*updated.leading_lines, *body[0].leading_lines])
        return cst.FlattenSentinel(body)


# ----- GradScaler ---------------------------------------------------------------------------------
SCALER_ID = "grad-scaler"
SCALER_MESSAGE = ("GradScaler removed (loss scaling is for float16 autocast): scaler.scale(loss).backward() -> "
                  "loss.backward(), scaler.step(opt) -> opt.step(); steps whose gradients hold inf/nan are no longer skipped "
                  "(the original scaler skips none for a float32 model without float16 autocast: then the runs agree)")


def _scaler_use(stmt: ast.stmt, scaler: str) -> Optional[str]:
    """'scale', 'step', 'update' or 'unscale_' for the statements a GradScaler is used in, else None."""
    if not isinstance(stmt, ast.Expr) or not isinstance(stmt.value, ast.Call):
        return None
    call = stmt.value

    def on_scaler(c, name, nargs):
        return (isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute) and c.func.attr == name and len(c.args) == nargs
                and not c.keywords and isinstance(c.func.value, ast.Name) and c.func.value.id == scaler)

    if isinstance(call.func, ast.Attribute) and call.func.attr == "backward" and not call.args and not call.keywords:
        return "scale" if on_scaler(call.func.value, "scale", 1) else None
    for name, nargs in (("step", 1), ("update", 0), ("unscale_", 1)):
        if on_scaler(call, name, nargs):
            return name
    return None


def removable_scalers(tree: ast.Module) -> set:
    """{(function path, name)} of `name = GradScaler(...)` used only in the four training-step forms, in one function."""
    blocks: list = []
    function_blocks(tree, (), blocks)
    found: set = set()
    for path, body, owner in blocks:
        for stmt in body:
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                    and isinstance(stmt.value, ast.Call) and ast.unparse(stmt.value.func).endswith("GradScaler")):
                continue
            name = stmt.targets[0].id
            uses = [n for n in ast.walk(owner) if isinstance(n, ast.Name) and n.id == name]
            forms = [s for p, b, _ in blocks if p[:len(path)] == path for s in b if _scaler_use(s, name)]
            same_function = all(p == path for p, b, _ in blocks if p[:len(path)] == path for s in b if _scaler_use(s, name))
            if len(uses) == len(forms) + 1 and same_function:
                found.add((path, name))
    return found


class GradScalerRemoval(FunctionPath, Transform):
    id = SCALER_ID
    description = "GradScaler -> removed: scaler.scale(loss).backward() -> loss.backward(), scaler.step(opt) -> opt.step()"
    order = 70  # before train-step (80) reads the block

    def __init__(self) -> None:
        self.removable: set = set()
        self.path: list = []
        self.origin: dict = {}

    def applies_to(self, text: str) -> bool:
        return "GradScaler" in text

    def visit_Module(self, rw, node) -> None:
        self.removable = removable_scalers(ast.parse(node.code))

    def _name(self, original) -> Optional[tuple]:
        """(use, scaler name) when `original` is a statement of a removable scaler."""
        try:
            parsed = ast.parse(code_of(original))
        except SyntaxError:
            return None
        stmt = parsed.body[0] if len(parsed.body) == 1 else None
        for path, name in self.removable:
            if path == tuple(self.path):
                if isinstance(stmt, ast.Assign) and ast.unparse(stmt.targets[0]) == name and ast.unparse(stmt.value.func).endswith("GradScaler"):
                    return "assign", name
                use = _scaler_use(stmt, name) if stmt is not None else None
                if use:
                    return use, name
        return None

    def leave_Call(self, rw, original, updated):
        if (rw.qualified_name(original.func) or "").endswith("GradScaler") and rw.statement is not None:
            found = self._name(rw.statement)
            if found and found[0] == "assign":
                rw.edit_flags(lambda f: dataclasses.replace(f, rule_id=SCALER_ID, kind="needs-review", message=SCALER_MESSAGE)
                              if f.node is original else f)
        return updated

    def leave_SimpleStatementLine(self, rw, original, updated):
        self.origin[id(updated)] = original
        found = self._name(original)
        if not found or found[0] not in ("scale", "step"):
            return updated
        call = updated.body[0].value
        if found[0] == "scale":  # scaler.scale(L).backward() -> L.backward()
            new = call.with_changes(func=call.func.with_changes(value=call.func.value.args[0].value))
        else:  # scaler.step(O) -> O.step()
            new = call.with_changes(func=call.func.with_changes(value=call.args[0].value), args=[])
        result = updated.with_changes(body=[updated.body[0].with_changes(value=new)])
        self.origin[id(result)] = original
        rw.count_conversion()
        return result

    def _filter(self, updated):
        kept: list = []
        carried: list = []
        for stmt in updated.body:
            original = self.origin.get(id(stmt))
            found = self._name(original) if original is not None else None
            if found and found[0] in ("assign", "update", "unscale_"):
                carried.extend(stmt.leading_lines)
                continue
            kept.append(stmt.with_changes(leading_lines=[*carried, *stmt.leading_lines]) if carried else stmt)
            carried = []
        if len(kept) == len(updated.body) or not kept or carried:
            return updated
        return updated.with_changes(body=kept)

    def leave_IndentedBlock(self, rw, original, updated):
        return self._filter(updated)

    def leave_Module(self, rw, original, updated):
        return self._filter(updated)
