"""Mixed precision reduced to the float32 step: autocast unwrapped (id `autocast`), GradScaler removed (id `grad-scaler`).

What it does
    Unwraps `with torch.autocast(...)` / `torch.amp.autocast` / `torch.cuda.amp.autocast` /
    `torch.cpu.amp.autocast` blocks (any arguments, `enabled=use_amp` included): the body is kept one
    level up, with an info note: the block computes in its inputs' dtype.
Why
    MLX has no autocast and needs no loss scaler. Without autocast the block computes in the inputs'
    dtype (float32 for a float32 model): the converted script is torch's run with AMP disabled,
    which is what the note says (torch's float16/bfloat16 run rounds differently).
    `@torch.cuda.amp.autocast()` decorating a function is removed the same way.
Left in place (flagged by the torch.autocast rule) when
    the `with` binds a name (`as ...`), mixes other context managers, or autocast is used
    as a plain call.

GradScaler
    `scaler = GradScaler(...)` is removed when, in its function, it is used only as
    `scaler.scale(loss).backward()` (-> `loss.backward()`), `scaler.step(opt)` (-> `opt.step()`),
    `scaler.unscale_(opt)`, `scaler.update()`, `scaler.load_state_dict(...)` (dropped) and
    `scaler.state_dict()` as the value of a dict literal's entry (the entry dropped: a checkpoint
    without the scaler's state); the train-step transform then sees a plain training step. An `if`
    whose two branches are the same once the scaler is gone (`if use_amp: scaler...; else: loss.backward()...`)
    becomes that one branch, when its test only reads names and attributes. An info note says what
    changed: the converted step is torch's step with the scaler disabled, which never skips an update
    (torch's enabled scaler skips steps whose scaled gradients overflow in float16). Any other use
    (`scaler.get_scale()`, inf checks, passed to train(), `if scaler is not None`) keeps the
    torch.amp.GradScaler flag: code that reads the scale has no float32 counterpart.
"""
from __future__ import annotations

import ast
import dataclasses
from typing import Optional

import libcst as cst

from torch2mlx.patterns import is_name
from torch2mlx.binding import code_of
from torch2mlx.transforms import Transform
from torch2mlx.transforms.training.scan import FunctionPath
from torch2mlx.transforms.training.sched import function_blocks

RULE_ID = "autocast"
AUTOCAST = frozenset({"torch.autocast", "torch.amp.autocast", "torch.cuda.amp.autocast", "torch.cpu.amp.autocast",
                      "torch.amp.autocast_mode.autocast"})
MESSAGE = ("autocast removed (MLX has no autocast): the code it covered computes in its inputs' dtype, float32 for a float32 "
           "model, as torch does with autocast disabled; torch's float16/bfloat16 autocast run rounds differently")


class Autocast(Transform):
    id = RULE_ID
    description = "with torch.autocast(...): -> the body alone (info: runs in the inputs' dtype, float32 for a float32 model)"
    order = 61

    def __init__(self) -> None:
        self.items: set = set()  # ids of the original autocast calls in unwrapped `with`s
        self.withs: set = set()
        self.updated_items: dict = {}  # id -> each of those calls as the pass left them (held: ids are not reused)

    def applies_to(self, text: str) -> bool:
        return "autocast" in text

    def _is_autocast(self, rw, expr) -> bool:
        return isinstance(expr, cst.Call) and rw.qualified_name(expr.func) in AUTOCAST

    def visit_With(self, rw, node) -> None:
        if node.items and all(i.asname is None and self._is_autocast(rw, i.item) for i in node.items):
            self.withs.add(id(node))
            self.items.update(id(i.item) for i in node.items)

    def visit_FunctionDef(self, rw, node) -> None:
        """`@torch.cuda.amp.autocast()` on a function (often `forward`) is removed as a `with` around its body is."""
        self.items.update(id(d.decorator) for d in node.decorators if self._is_autocast(rw, d.decorator))

    def leave_FunctionDef(self, rw, original, updated):
        # by the updated decorator calls (no-grad, earlier, may have dropped `@torch.no_grad()` already)
        kept = [d for d in updated.decorators if self.updated_items.get(id(d.decorator)) is not d.decorator]
        if len(kept) == len(updated.decorators):
            return updated
        lines = [line for d in updated.decorators if self.updated_items.get(id(d.decorator)) is d.decorator for line in d.leading_lines]
        if kept:
            kept[0] = kept[0].with_changes(leading_lines=[*lines, *kept[0].leading_lines])
            return updated.with_changes(decorators=kept)
        return updated.with_changes(decorators=[], leading_lines=[*updated.leading_lines, *lines])

    def leave_Call(self, rw, original, updated):
        if id(original) in self.items:
            self.updated_items[id(updated)] = updated
            rw.edit_flags(lambda f: dataclasses.replace(f, rule_id=RULE_ID, kind="needs-review", message=MESSAGE, severity="info")
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
SCALER_MESSAGE = ("GradScaler removed (MLX needs no loss scaler: the parameters a GradScaler steps are float32, torch refuses "
                  "float16 ones, and with autocast gone so are their gradients): scaler.scale(loss).backward() "
                  "-> loss.backward(), scaler.step(opt) -> opt.step(), scaler.unscale_(opt) and scaler.update() dropped{state}; "
                  "the step is torch's with the scaler disabled (enabled=False), which applies every update where torch's "
                  "enabled scaler skips the steps whose scaled gradients hold inf/nan")
SCALER_STATE = ", scaler.state_dict() left out of the checkpoint dict and scaler.load_state_dict(...) dropped"
DROPPED = ("assign", "update", "unscale_", "load_state_dict")


def _scaler_use(stmt: ast.stmt, scaler: str) -> Optional[str]:
    """'scale', 'step', 'update', 'unscale_' or 'load_state_dict' for the statements a GradScaler is used in, else None."""
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
    if on_scaler(call, "load_state_dict", 1) and isinstance(call.args[0], ast.Subscript):  # scaler.load_state_dict(ckpt["scaler"])
        return "load_state_dict"
    return None


def _is_state_dict(value: ast.expr, scaler: str) -> bool:
    """`scaler.state_dict()`."""
    return (isinstance(value, ast.Call) and not value.args and not value.keywords and isinstance(value.func, ast.Attribute)
            and value.func.attr == "state_dict" and isinstance(value.func.value, ast.Name) and value.func.value.id == scaler)


def _walk_function(nodes: list):
    """Every node under `nodes`, not descending into nested functions, classes or lambdas (another scope)."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        yield node
        stack.extend(c for c in ast.iter_child_nodes(node) if not isinstance(c, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)))


def removable_scalers(tree: ast.Module) -> dict:
    """{(function path, name): whether its state is saved or loaded} for `name = GradScaler(...)` used, in its own function
    only, in the training-step forms, `name.load_state_dict(ckpt[...])` and as `name.state_dict()` entries of dict literals."""
    blocks: list = []
    function_blocks(tree, (), blocks)
    found: dict = {}
    for path, body, owner in blocks:
        for stmt in body:
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                    and isinstance(stmt.value, ast.Call) and ast.unparse(stmt.value.func).endswith("GradScaler")):
                continue
            name = stmt.targets[0].id
            uses = {id(n) for n in ast.walk(owner) if isinstance(n, ast.Name) and n.id == name}
            own = [s for p, b, _ in blocks if p == path for s in b]
            accepted = {id(stmt.targets[0])}
            state = False
            for s in own:
                use = _scaler_use(s, name)
                if use:
                    accepted.update(id(n) for n in ast.walk(s) if isinstance(n, ast.Name) and n.id == name)
                    state = state or use == "load_state_dict"
            for node in _walk_function(own):
                if isinstance(node, ast.Dict):
                    for key, value in zip(node.keys, node.values):
                        if key is not None and _is_state_dict(value, name):
                            accepted.add(id(value.func.value))
                            state = True
            if uses == accepted:
                found[(path, name)] = state
    return found


class GradScalerRemoval(FunctionPath, Transform):
    id = SCALER_ID
    description = "GradScaler -> removed: scaler.scale(loss).backward() -> loss.backward(), scaler.step(opt) -> opt.step()"
    order = 70  # before train-step (80) reads the block, and checkpoint-state (120) the checkpoint dict

    def __init__(self) -> None:
        self.removable: dict = {}
        self.path: list = []
        self.origin: dict = {}

    def applies_to(self, text: str) -> bool:
        return "GradScaler" in text

    def visit_Module(self, rw, node) -> None:
        self.removable = removable_scalers(ast.parse(node.code))

    def _here(self) -> list:
        """The names of the removable scalers of the function being converted."""
        return [name for path, name in self.removable if path == tuple(self.path)]

    def _name(self, original) -> Optional[tuple]:
        """(use, scaler name) when `original` is a statement of a removable scaler."""
        names = self._here()
        if not names:
            return None
        try:
            parsed = ast.parse(code_of(original))
        except SyntaxError:
            return None
        stmt = parsed.body[0] if len(parsed.body) == 1 else None
        for name in names:
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
                state = SCALER_STATE if self.removable[(tuple(self.path), found[1])] else ""
                message = SCALER_MESSAGE.format(state=state)
                rw.edit_flags(lambda f: dataclasses.replace(f, rule_id=SCALER_ID, kind="needs-review", message=message, severity="info")
                              if f.node is original else f)
        return updated

    def leave_Dict(self, rw, original, updated):
        """`{"model": ..., "scaler": scaler.state_dict()}` -> the dict without the scaler's entry."""
        names = self._here()
        if not names:
            return updated
        def state_dict(node: cst.BaseExpression) -> bool:
            return (isinstance(node, cst.Call) and not node.args and isinstance(node.func, cst.Attribute)
                    and is_name(node.func.value, *names) and node.func.attr.value == "state_dict")

        elements = list(updated.elements)
        kept = [e for e in elements if not (isinstance(e, cst.DictElement) and state_dict(e.value))]
        if len(kept) == len(elements):
            return updated
        if kept and kept[-1] is not elements[-1]:  # the last entry went: the new last one takes its comma (or none)
            kept[-1] = kept[-1].with_changes(comma=elements[-1].comma)
        rw.count_conversion(len(elements) - len(kept))
        return updated.with_changes(elements=kept)

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
            if found and found[0] in DROPPED:
                carried.extend(stmt.leading_lines)
                continue
            kept.append(stmt.with_changes(leading_lines=[*carried, *stmt.leading_lines]) if carried else stmt)
            carried = []
        if len(kept) == len(updated.body):
            return updated
        if not kept:  # a block holding only dropped statements (`if resume: scaler.load_state_dict(...)`)
            kept = [cst.SimpleStatementLine([cst.Pass()], leading_lines=carried)]
            carried = []
        if carried:  # comments after the last kept statement: keep them on a pass rather than lose them
            kept.append(cst.SimpleStatementLine([cst.Pass()], leading_lines=carried))
        return updated.with_changes(body=kept)

    def leave_IndentedBlock(self, rw, original, updated):
        return self._filter(updated)

    def leave_Module(self, rw, original, updated):
        return self._filter(updated)
