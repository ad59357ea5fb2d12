"""The training step: zero_grad / forward / backward / step -> value_and_grad / update (id `train-step`).

What it does
    In one block (a loop body or a function body)::

        optimizer.zero_grad()
        output = model(data)
        loss = criterion(output, target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)   # optional
        optimizer.step()

    becomes::

        def loss_fn():
            output = model(data)
            loss = criterion(output, target)
            return loss, output
        (loss, output), grads = nn.value_and_grad(model, loss_fn)()
        grads, _ = optim.clip_grad_norm(grads, 1.0)
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state)

    The loss function holds the plain assignments right before `loss.backward()`; the
    names it assigns that are used anywhere else come back as auxiliary outputs, so
    `output.argmax(1)` and `loss.item()` keep working. zero_grad may come first, between
    the forward statements, or after step. The model is the one whose `.parameters()`
    built the optimizer (scan.py).
Why
    MLX has no autograd tape: gradients come from transforming a function.
Left in place (flagged) when
    backward and step are not in one block (gradient accumulation), there is no zero_grad
    in the block (torch would accumulate), grads are read between backward and step, the
    model cannot be identified, or the forward pass is not a run of plain assignments
    that calls the model.
"""
from __future__ import annotations

import ast
import textwrap
from typing import Optional

import libcst as cst

from torch2mlx.binding import code_of
from torch2mlx.transforms import Transform
from torch2mlx.transforms.codegen import mlx_statements
from torch2mlx.transforms.training.scan import model_for, optimizer_models

RULE_ID = "train-step"
CLIP = "torch.nn.utils.clip_grad_norm_"
_EMPTY = cst.Module([])


def _expr_call(stmt) -> Optional[cst.Call]:
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
        small = stmt.body[0]
        value = small.value if isinstance(small, (cst.Expr, cst.Assign)) else None
        if isinstance(value, cst.Call):
            return value
    return None


def _method(stmt, name: str) -> Optional[str]:
    """Receiver source of `recv.name(...)` as an expression statement, else None."""
    call = _expr_call(stmt)
    if call is not None and isinstance(stmt.body[0], cst.Expr) and isinstance(call.func, cst.Attribute) and call.func.attr.value == name:
        return code_of(call.func.value)
    return None


def _names(node: cst.CSTNode) -> list:
    found: list = []

    class V(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            found.append(n.value)

    node.visit(V())
    return found


def _region_assignment(stmt) -> bool:
    """A plain `a = ...` / `a, b = ...` with no host-side reads (.item(), print) in it."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return False
    small = stmt.body[0]
    if isinstance(small, cst.Assign):
        targets = [t.target for t in small.targets]
    elif isinstance(small, cst.AnnAssign) and small.value is not None:
        targets = [small.target]
    else:
        return False
    for t in targets:
        elements = [e.value for e in t.elements] if isinstance(t, (cst.Tuple, cst.List)) else [t]
        if not all(isinstance(e, cst.Name) for e in elements):
            return False
    return not any(n in ("item", "tolist", "numpy", "print") for n in _names(small.value))


class TrainStep(Transform):
    id = RULE_ID
    description = "loss.backward() / optimizer.step() -> nn.value_and_grad + optimizer.update"
    hot_attributes = frozenset({"backward", "step", "zero_grad", "clip_grad_norm_"})
    order = 80

    def __init__(self) -> None:
        self.tree: Optional[ast.Module] = None
        self.optimizers: dict = {}
        self.functions: list = []  # original libcst FunctionDef / Module
        self.origin: dict = {}  # id(updated statement or call) -> original
        self.module = None

    def applies_to(self, text: str) -> bool:
        return ".backward(" in text or ".step(" in text or "clip_grad_norm_" in text

    # ----- bookkeeping --------------------------------------------------------------------------
    def visit_Module(self, rw, node) -> None:
        self.module = node
        self.tree = ast.parse(node.code)
        self.optimizers = optimizer_models(self.tree)
        self.functions.append(node)

    def visit_FunctionDef(self, rw, node) -> None:
        self.functions.append(node)

    def leave_FunctionDef(self, rw, original, updated):
        self.functions.pop()
        return updated

    def leave_Call(self, rw, original, updated):
        if rw.qualified_name(original.func) == CLIP:  # decided with its block; re-flagged if unmatched
            rw.drop_flags(predicate=lambda f: f.severity != "info")
        elif isinstance(original.func, cst.Attribute) and original.func.attr.value == "backward":
            # `loss.backward()` is decided with its block too (the closed world's "no such method" is moot)
            rw.drop_flags(original)
        self.origin[id(updated)] = original
        return updated

    def visit_SimpleStatementLine(self, rw, node) -> None:
        """`out = model(x)` for a model an optimizer trains: `out` is an array (seen even when the pass skips the line)."""
        small = node.body[0] if len(node.body) == 1 else None
        if isinstance(small, cst.Assign) and isinstance(small.value, cst.Call):
            if any(code_of(small.value.func) in models for models in self.optimizers.values()):
                for t in small.targets:
                    if isinstance(t.target, cst.Name):
                        rw.tensors.mark(t.target.value, True)

    def leave_SimpleStatementLine(self, rw, original, updated):
        self.origin[id(updated)] = original
        return updated

    # ----- flagging whole statements after the table pass ---------------------------------
    def _flag(self, rw, stmt, message: str):
        original = self.origin.get(id(stmt), None)
        call = _expr_call(stmt)
        node = self.origin.get(id(call), original) if call is not None else original
        rw.report(node or stmt, RULE_ID, "needs-review", message, "warning", original)
        line = cst.EmptyLine(comment=cst.Comment(f"# torch2mlx: {RULE_ID}: {message}"))
        return stmt.with_changes(leading_lines=[*stmt.leading_lines, line])

    def _training_calls(self, rw, body) -> dict:
        found: dict = {"backward": [], "step": [], "zero_grad": [], "clip": []}
        for i, stmt in enumerate(body):
            if _method(stmt, "backward") is not None:
                found["backward"].append(i)
            elif _method(stmt, "step") in self.optimizers:
                found["step"].append(i)
            elif _method(stmt, "zero_grad") is not None:
                found["zero_grad"].append(i)
            else:
                call = _expr_call(stmt)
                if call is not None and rw.qualified_name(call.func) == CLIP:
                    found["clip"].append(i)
        return found

    def _flag_all(self, rw, body: list, found: dict, why: str) -> list:
        marked = {i for key in ("backward", "step", "clip") for i in found[key]}
        return [self._flag(rw, s, why) if i in marked else s for i, s in enumerate(body)]

    def leave_IndentedBlock(self, rw, original, updated):
        body = list(updated.body)
        found = self._training_calls(rw, body)
        if not (found["backward"] or found["step"] or found["clip"]):
            return updated
        result = self._rewrite(rw, body, found)
        if isinstance(result, str):
            return updated.with_changes(body=self._flag_all(rw, body, found, result))
        return updated.with_changes(body=result)

    def leave_Module(self, rw, original, updated):
        body = list(updated.body)
        found = self._training_calls(rw, body)
        if found["backward"] or found["step"] or found["clip"]:
            why = "a training step at module level is not translated; put it in a loop or function"
            return updated.with_changes(body=self._flag_all(rw, body, found, why))
        return updated

    # ----- the rewrite --------------------------------------------------------------------------
    def _rewrite(self, rw, body: list, found: dict):
        if len(found["backward"]) != 1 or len(found["step"]) != 1:
            return ("backward() and optimizer.step() are not together once in this block (gradient accumulation "
                    "or a split step): translate with nn.value_and_grad and optimizer.update by hand")
        b, s = found["backward"][0], found["step"][0]
        optimizer = _method(body[s], "step")
        model, why = model_for(optimizer, self.optimizers, self.tree, self._function_ast())
        if model is None:
            return why
        zero = [i for i in found["zero_grad"] if _method(body[i], "zero_grad") in (optimizer, model)]
        if len(zero) != 1 or b < zero[0] < s:
            return f"no single {optimizer}.zero_grad() outside backward..step in this block: torch would accumulate gradients"
        if s < b:
            return "optimizer.step() comes before loss.backward()"
        between = [i for i in range(b + 1, s) if i not in found["clip"]]
        if any("grad" in _names(body[i]) for i in between):
            return "gradients are read between backward() and step(); MLX has them only as the grads tree"
        loss = _method(body[b], "backward")
        region = self._region(body, b, zero[0])
        if not region:
            return "the loss is not computed by plain assignments right before backward()"
        region_stmts = [body[i] for i in region]
        assigned = self._assigned(region_stmts)
        if loss not in assigned or not any(model.split(".")[0] in _names(st) for st in region_stmts):
            return f"`{loss}` and the call of `{model}` are not in the plain assignments right before backward()"
        before = [body[i] for i in range(0, b) if i not in region and i not in zero]
        if any(model.split(".")[0] in _names(st) and f"{model}(" in _EMPTY.code_for_node(st) for st in before):
            return f"`{model}` is called before the loss computation that feeds backward()"
        clips = [self._clip(rw, body[i], model) for i in found["clip"] if b < i < s]
        if any(isinstance(c, str) for c in clips) or len(clips) != len(found["clip"]):
            return next((c for c in clips if isinstance(c, str)), "clip_grad_norm_ is not between backward() and step()")
        return self._build(rw, body, region, b, s, zero[0], found["clip"], clips, loss, model, optimizer, assigned)

    def _function_ast(self):
        fn = self.functions[-1] if self.functions else None
        if not isinstance(fn, cst.FunctionDef):
            return None
        parsed = ast.parse(textwrap.dedent(_EMPTY.code_for_node(fn))).body[0]
        return parsed if isinstance(parsed, (ast.FunctionDef, ast.AsyncFunctionDef)) else None

    @staticmethod
    def _region(body: list, backward: int, zero: int) -> list:
        out: list = []
        i = backward - 1
        while i >= 0 and (i == zero or _region_assignment(body[i])):
            if i != zero:
                out.append(i)
            i -= 1
        return sorted(out)

    @staticmethod
    def _assigned(stmts: list) -> list:
        names: list = []
        for st in stmts:
            small = st.body[0]
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            for t in targets:
                for e in ([e.value for e in t.elements] if isinstance(t, (cst.Tuple, cst.List)) else [t]):
                    if e.value not in names:
                        names.append(e.value)
        return names

    def _clip(self, rw, stmt, model: str):
        call = _expr_call(stmt)
        args = list(call.args)
        if len(args) < 2 or any(a.star for a in args) or args[0].keyword is not None:
            return "clip_grad_norm_ call shape not recognised"
        if code_of(args[0].value) != f"{model}.parameters()":
            return f"clip_grad_norm_ on something other than {model}.parameters()"
        max_norm = None
        for i, a in enumerate(args[1:], 1):
            key = a.keyword.value if a.keyword is not None else ("max_norm", "norm_type", "error_if_nonfinite", "foreach")[i - 1]
            value = code_of(a.value)
            if key == "max_norm":
                max_norm = value
            elif key == "norm_type" and value not in ("2", "2.0"):
                return "clip_grad_norm_ with a norm other than 2 (optim.clip_grad_norm is the 2-norm)"
            elif key == "error_if_nonfinite" and value != "False":
                return "clip_grad_norm_(error_if_nonfinite=True) has no MLX equivalent"
        small = stmt.body[0]
        target = code_of(small.targets[0].target) if isinstance(small, cst.Assign) else "_"
        return max_norm, target

    def _aux(self, assigned: list, loss: str, region_stmts: list) -> list:
        scope = self.functions[-1]
        everywhere = _names(scope)
        inside: list = []
        for st in region_stmts:
            inside.extend(_names(self.origin.get(id(st), st)))
        return [n for n in assigned if n != loss and everywhere.count(n) > inside.count(n)]

    def _build(self, rw, body, region, b, s, zero, clip_idx, clips, loss, model, optimizer, assigned):
        region_stmts = [body[i] for i in region]
        aux = self._aux(assigned, loss, region_stmts)
        used = set(_names(self.functions[-1]))
        fn_name = next(n for n in ("loss_fn", "loss_fn_", "compute_loss_fn") if n not in used)
        grads = next(n for n in ("grads", "grads_", "mlx_grads") if n not in used)
        params = self._read_before_assigned(region_stmts, assigned)
        outputs = ", ".join([loss, *aux])
        returned = f"({outputs})" if aux else loss
        header = mlx_statements(rw, f"def {fn_name}({', '.join(params)}):\n    pass\n")[0]
        lead = region_stmts[0].leading_lines
        region_stmts[0] = region_stmts[0].with_changes(leading_lines=[])
        fn_body = [*region_stmts, cst.parse_statement(f"return {outputs}")]
        fn = header.with_changes(body=header.body.with_changes(body=fn_body), leading_lines=lead)
        call = mlx_statements(rw, f"{returned}, {grads} = nn.value_and_grad({model}, {fn_name})({', '.join(params)})\n")
        out: list = []
        for i, stmt in enumerate(body):
            if i == region[0]:
                out.extend([fn, *call])
            elif i in region or i == zero or i == b:
                continue
            elif i in clip_idx:
                max_norm, target = clips[clip_idx.index(i)]
                new = mlx_statements(rw, f"{grads}, {target} = optim.clip_grad_norm({grads}, {max_norm})\n")
                out.append(new[0].with_changes(leading_lines=stmt.leading_lines))
            elif i == s:
                new = mlx_statements(rw, f"{optimizer}.update({model}, {grads})\nmx.eval({model}.parameters(), {optimizer}.state)\n")
                out.extend([new[0].with_changes(leading_lines=stmt.leading_lines), new[1]])
            else:
                out.append(stmt)
        rw.count_conversion()
        return out

    @staticmethod
    def _read_before_assigned(stmts: list, assigned: list) -> list:
        code = "\n".join(_EMPTY.code_for_node(st).strip() for st in stmts)
        seen: set = set()
        params: list = []
        for node in ast.parse(code).body:
            value = node.value
            for n in ast.walk(value):
                if isinstance(n, ast.Name) and n.id in assigned and n.id not in seen and n.id not in params:
                    params.append(n.id)
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        seen.add(n.id)
        return params
