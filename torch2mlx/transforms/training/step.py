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
    Clipping (clip_grad_norm_, clip_grad_value_) may sit in an `if` between backward and
    step. Gradient accumulation (backward every micro-batch, `if ...: step(); zero_grad()`)
    sums the grads trees (`accumulate_grads`, a generated helper) and updates once per
    accumulation; the accumulator is reset where `zero_grad()` stood before the loop.
    A `zero_grad()` away from any step is dropped (MLX gradients are fresh every call).
Left in place (flagged) when
    backward and step are in unrelated blocks, there is no zero_grad in the block (torch
    would accumulate), grads are read between backward and step, the model cannot be
    identified, or the forward pass is not a run of plain assignments that calls the model.
"""
from __future__ import annotations

import ast
import textwrap
from typing import Optional

import libcst as cst

from torch2mlx.patterns import dotted, find, is_method_call
from torch2mlx.binding import code_of
from torch2mlx.transforms import Transform
from torch2mlx.transforms.codegen import mlx_statements
from torch2mlx.transforms.training.autograd_grad import names_in, plain_assignment
from torch2mlx.transforms.training.scan import model_for, optimizer_models

RULE_ID = "train-step"
CLIP = "torch.nn.utils.clip_grad_norm_"
CLIPS = frozenset({CLIP, "torch.nn.utils.clip_grad_value_"})
NOT_TOGETHER = ("backward() and optimizer.step() are not together once in this block (or with step() alone in an "
                "`if` after backward(), gradient accumulation): translate with nn.value_and_grad and optimizer.update by hand")
SEVERAL_BACKWARDS = ("several backward() calls before one step() add up their gradients (DCGAN's errD_real.backward(); "
                     "errD_fake.backward(); optimizerD.step()): write one loss_fn returning the sum of those losses for "
                     "nn.value_and_grad (the gradient of the sum is the sum of the gradients) and optimizer.update; an output a "
                     "later step reuses (DCGAN's `fake = netG(noise)` in the generator's loss) must be computed again inside "
                     "that step's own loss_fn, from the same inputs (a BatchNorm in train mode would then update its running "
                     "statistics twice: keep them from before that second pass and put them back after it)")
ACCUMULATE_HELPER = '''
def accumulate_grads(total, grads):
    """Gradients summed over micro-batches, as .grad accumulates them (total is None after zero_grad)."""
    from mlx.utils import tree_map

    return grads if total is None else tree_map(mx.add, total, grads)
'''
CLIP_VALUE_HELPER = '''
def clip_grad_values(grads, clip_value):
    """clip_grad_value_ on a grads tree: every gradient clamped to [-clip_value, clip_value]."""
    from mlx.utils import tree_map

    return tree_map(lambda g: mx.clip(g, -clip_value, clip_value), grads)
'''
_EMPTY = cst.Module([])


def _expr_call(stmt) -> Optional[cst.Call]:
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
        small = stmt.body[0]
        value = small.value if isinstance(small, (cst.Expr, cst.Assign)) else None
        if isinstance(value, cst.Call):
            return value
    return None


def _reads_only(expr) -> bool:
    """Names, attributes of them, literals, and comparisons / `and` / `or` / `not` of those: nothing it calls."""
    if isinstance(expr, (cst.Name, cst.Integer, cst.Float, cst.SimpleString)):
        return True
    if isinstance(expr, cst.Attribute):
        return _reads_only(expr.value)
    if isinstance(expr, cst.Comparison):
        return _reads_only(expr.left) and all(_reads_only(c.comparator) for c in expr.comparisons)
    if isinstance(expr, cst.BooleanOperation):
        return _reads_only(expr.left) and _reads_only(expr.right)
    if isinstance(expr, cst.UnaryOperation):
        return _reads_only(expr.expression)
    return False


def _bare(stmt) -> str:
    """A statement's code without the comments and blank lines above it."""
    return _EMPTY.code_for_node(stmt.with_changes(leading_lines=[])) if hasattr(stmt, "leading_lines") else _EMPTY.code_for_node(stmt)


def _method(stmt, name: str) -> Optional[str]:
    """Receiver source of `recv.name(...)` as an expression statement, else None."""
    call = _expr_call(stmt)
    if call is not None and isinstance(stmt.body[0], cst.Expr) and isinstance(call.func, cst.Attribute) and call.func.attr.value == name:
        return code_of(call.func.value)
    return None


def _region_assignment(stmt) -> bool:
    """A plain `a = ...` / `a, b = ...` with no host-side reads (.item(), print) in it."""
    return plain_assignment(stmt) is not None


class TrainStep(Transform):
    id = RULE_ID
    description = "loss.backward() / optimizer.step() -> nn.value_and_grad + optimizer.update"
    hot_attributes = frozenset({"backward", "step", "zero_grad", "clip_grad_norm_", "clip_grad_value_"})
    order = 80

    def __init__(self) -> None:
        self.tree: Optional[ast.Module] = None
        self.optimizers: dict = {}
        self.functions: list = []  # original libcst FunctionDef / Module
        self.origin: dict = {}  # id(updated statement or call) -> original
        self.module = None
        self.deferred: dict = {}  # id(flagged statement in an if) -> (the statement unflagged, the node of its report)
        self.pending: dict = {}  # id(generated `acc = accumulate_grads(...)`) -> (acc, optimizer, model)
        self.pending_notes: dict = {}  # the same ids -> the info note to give where `acc = None` is inserted
        self.loop_bodies: set = set()  # ids of the original bodies of for / while loops
        self.if_bodies: set = set()  # ids of the original bodies of `if`s without else
        self.conditional_reason = None
        self.in_loop = False

    def applies_to(self, text: str) -> bool:
        return ".backward(" in text or ".step(" in text or "clip_grad_" in text

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
        if rw.qualified_name(original.func) in CLIPS:  # decided with its block; re-flagged if unmatched
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
            if any(dotted(small.value.func) in models for models in self.optimizers.values()):
                for t in small.targets:
                    if isinstance(t.target, cst.Name):
                        rw.tensors.mark(t.target.value, True)

    def leave_SimpleStatementLine(self, rw, original, updated):
        self.origin[id(updated)] = original
        return updated

    # ----- flagging whole statements after the table pass ---------------------------------
    def _flag(self, rw, stmt, message: str, defer: bool = False):
        original = self.origin.get(id(stmt), None)
        call = _expr_call(stmt)
        node = self.origin.get(id(call), original) if call is not None else original
        rw.report(node or stmt, RULE_ID, "needs-review", message, "warning", original)
        line = cst.EmptyLine(comment=cst.Comment(f"# torch2mlx: {RULE_ID}: {message}"))
        # a statement an earlier conversion flagged for this rule keeps that one flag (the rewriter's rule for
        # its own flags): on the converted text the cause may read differently (an MLX optimizer, no params)
        marked = any(ln.comment is not None and ln.comment.value.startswith(f"# torch2mlx: {RULE_ID}:") for ln in stmt.leading_lines)
        flagged = stmt if marked else stmt.with_changes(leading_lines=[*stmt.leading_lines, line])
        if defer:  # a step or clip inside an `if`: the enclosing block may still translate it
            self.deferred[id(flagged)] = (stmt, node or stmt)
        return flagged

    def _is_clip(self, rw, stmt) -> bool:
        call = _expr_call(stmt)
        return call is not None and rw.qualified_name(call.func) in CLIPS

    def _training_calls(self, rw, body) -> dict:
        found: dict = {"backward": [], "step": [], "zero_grad": [], "clip": [], "clip_if": [], "step_if": [], "loop_backward": []}
        for i, stmt in enumerate(body):
            if _method(stmt, "backward") is not None:
                found["backward"].append(i)
            elif _method(stmt, "step") in self.optimizers:
                found["step"].append(i)
            elif _method(stmt, "zero_grad") is not None:
                found["zero_grad"].append(i)
            elif self._is_clip(rw, stmt):
                found["clip"].append(i)
            else:
                inner = self._if_body(stmt)
                if inner and all(self._is_clip(rw, st) for st in inner):
                    found["clip_if"].append(i)
                elif inner and any(_method(st, "step") in self.optimizers for st in inner):
                    found["step_if"].append(i)
                elif self._loop_backward(stmt) is not None:
                    found["loop_backward"].append(i)
        return found

    def _loop_backward(self, stmt) -> Optional[list]:
        """The statements of a `for` / `while` (no else) whose body calls backward() and no step() (nanoGPT's micro-steps),
        as the table pass left them, before any flag of this transform; else None."""
        if not isinstance(stmt, (cst.For, cst.While)) or stmt.orelse is not None or not isinstance(stmt.body, cst.IndentedBlock):
            return None
        inner = [self.deferred.get(id(st), (st,))[0] for st in stmt.body.body]
        if any(_method(st, "backward") is not None for st in inner) and not any(_method(st, "step") in self.optimizers for st in inner):
            return inner
        return None

    def _if_body(self, stmt) -> Optional[list]:
        """The statements of `if cond:` (no else) as the table pass left them, before any flag of this transform."""
        if not isinstance(stmt, cst.If) or stmt.orelse is not None or not isinstance(stmt.body, cst.IndentedBlock):
            return None
        return [self.deferred.get(id(st), (st,))[0] for st in stmt.body.body]

    def _undefer(self, rw, stmt) -> cst.If:
        """`stmt` (an if) with its statements as they were before this transform flagged them; those flags dropped."""
        body = []
        for st in stmt.body.body:
            clean, node = self.deferred.pop(id(st), (st, None))
            if node is not None:
                rw.drop_reports(lambda f, node=node: f.rule_id == RULE_ID and f.node is node)
            body.append(clean)
        return stmt.with_changes(body=stmt.body.with_changes(body=body))

    def _flag_all(self, rw, body: list, found: dict, why: str, if_body: bool = False) -> list:
        marked = {i for key in ("backward", "step", "clip") for i in found[key]}
        # a step or clip alone in an `if`, or a backward and step in one (the enclosing block may hold the forward pass)
        defer = not found["backward"] or if_body
        return [self._flag(rw, s, why, defer) if i in marked else s for i, s in enumerate(body)]

    def leave_For(self, rw, original, updated):
        self.origin[id(updated)] = original
        return updated

    leave_While = leave_For

    def visit_For(self, rw, node) -> None:
        self.loop_bodies.add(id(node.body))

    def visit_If(self, rw, node) -> None:
        if node.orelse is None:
            self.if_bodies.add(id(node.body))
        elif isinstance(node.orelse, cst.Else):  # `if use_amp: ... else: ...`: the branches may turn out the same
            self.if_bodies.update((id(node.body), id(node.orelse.body)))

    visit_While = visit_For

    def leave_IndentedBlock(self, rw, original, updated):
        body = self._place_accumulators(rw, self._same_branches(rw, list(updated.body)))
        found = self._training_calls(rw, body)
        self.in_loop = id(original) in self.loop_bodies
        if not (found["backward"] or found["step"] or found["clip"]):
            if len(found["step_if"]) == 1:  # the forward pass here, backward() and step() in an `if`
                result = self._rewrite_conditional(rw, body, found)
                if not isinstance(result, str):
                    return updated.with_changes(body=result)
                if self.conditional_reason is not None:  # the shape matched: say why it was not translated
                    body = self._reflag_if(rw, body, found["step_if"][0], self.conditional_reason)
            body = self._drop_zero_grads(rw, body, found)
            return updated.with_changes(body=body) if body != list(updated.body) else updated
        result = self._rewrite(rw, body, found)
        if isinstance(result, str):
            # deferred in an `if`, and in a loop body with backward() and no step() (the step may follow the loop)
            defer = id(original) in self.if_bodies or (self.in_loop and not found["step"] and not found["step_if"])
            return updated.with_changes(body=self._flag_all(rw, body, found, result, defer))
        return updated.with_changes(body=result)

    def leave_Module(self, rw, original, updated):
        body = self._place_accumulators(rw, list(updated.body))
        found = self._training_calls(rw, body)
        if found["backward"] or found["step"] or found["clip"]:
            why = "a training step at module level is not translated; put it in a loop or function"
            return updated.with_changes(body=self._flag_all(rw, body, found, why))
        body = self._drop_zero_grads(rw, body, found)
        return updated.with_changes(body=body) if body != list(updated.body) else updated

    def _same_branches(self, rw, body: list) -> list:
        """`if use_amp: <AMP step> else: <float32 step>` whose two branches are the same statements once the
        GradScaler and autocast are gone (grad-scaler, autocast), and hold a step this transform flagged there
        (the forward pass or zero_grad() stands outside): the `if` becomes its branch, which the block then
        translates. Only for a test that reads names and attributes (dropping it changes nothing else)."""
        out: list = []
        for stmt in body:
            if not (isinstance(stmt, cst.If) and isinstance(stmt.orelse, cst.Else) and _reads_only(stmt.test)
                    and isinstance(stmt.body, cst.IndentedBlock) and isinstance(stmt.orelse.body, cst.IndentedBlock)):
                out.append(stmt)
                continue
            both = [*stmt.body.body, *stmt.orelse.body.body]
            first = [self.deferred.get(id(st), (st,))[0] for st in stmt.body.body]
            second = [self.deferred.get(id(st), (st,))[0] for st in stmt.orelse.body.body]
            if not any(id(st) in self.deferred for st in both) or [_bare(st) for st in first] != [_bare(st) for st in second]:
                out.append(stmt)
                continue
            for st in both:
                _, node = self.deferred.pop(id(st), (st, None))
                if node is not None:
                    rw.drop_reports(lambda f, node=node: f.rule_id == RULE_ID and f.node is node)
            first[0] = first[0].with_changes(leading_lines=[*stmt.leading_lines, *first[0].leading_lines])
            out.extend(first)
        return out

    def _drop_zero_grads(self, rw, body: list, found: dict) -> list:
        """`optimizer.zero_grad()` away from any step (before a loop, at the top of an epoch): MLX gradients
        are fresh from every nn.value_and_grad call, so there is nothing to reset. Kept when it is a block's
        only statement."""
        drop = {i for i in found["zero_grad"] if _method(body[i], "zero_grad") in self.optimizers}
        if not drop or len(drop) == len(body):
            return body
        out: list = []
        carried: list = []
        for i, stmt in enumerate(body):
            if i in drop:
                carried.extend(stmt.leading_lines)
                continue
            out.append(stmt.with_changes(leading_lines=[*carried, *stmt.leading_lines]) if carried else stmt)
            carried = []
        if carried:
            return body
        rw.count_conversion(len(drop))
        return out

    def _place_accumulators(self, rw, body: list) -> list:
        """`acc = None` before each loop whose body accumulates gradients: in place of the last
        `optimizer.zero_grad()` before the loop in this block, else right before the loop (info)."""
        out: list = []
        for stmt in body:
            inner = stmt.body.body if isinstance(stmt, (cst.For, cst.While)) and isinstance(stmt.body, cst.IndentedBlock) else ()
            key = next((id(st) for st in inner if id(st) in self.pending), None)
            pending = self.pending.pop(key) if key is not None else None
            if pending is None:
                out.append(stmt)
                continue
            acc, optimizer, model = pending
            init = mlx_statements(rw, f"{acc} = None\n")[0]
            zero = next((i for i in range(len(out) - 1, -1, -1) if _method(out[i], "zero_grad") in (optimizer, model)), None)
            if zero is not None:
                out[zero] = init.with_changes(leading_lines=out[zero].leading_lines)
            else:
                original = self.origin.get(id(stmt), stmt)
                note = self.pending_notes.pop(key, None) or (
                    f"gradients of an accumulation left unfinished when the loop ends are dropped (`{acc} = None` "
                    f"before the loop); torch keeps them in .grad for the next {optimizer}.step() unless "
                    f"{optimizer}.zero_grad() runs before the loop")
                rw.report(original, RULE_ID, "semantics-differ", note, "info", original)
                out.append(init.with_changes(leading_lines=stmt.leading_lines))
                stmt = stmt.with_changes(leading_lines=[])
            out.append(stmt)
        return out

    # ----- the rewrite --------------------------------------------------------------------------
    def _rewrite_segments(self, rw, body: list, found: dict):
        """Several training steps in one block (a GAN's generator and discriminator updates): each
        `zero_grad(); ...; loss.backward(); step()` of its own optimizer, in order, translated alone.
        Exact when every optimizer's zero_grad() stands in its own segment before its backward():
        then no other backward() adds to the gradients its step() uses."""
        steps = found["step"]
        out: list = []
        start = 0
        for s in steps:
            segment = body[start:s + 1]
            optimizer = _method(body[s], "step")
            seg_found = self._training_calls(rw, segment)
            models = self.optimizers.get(optimizer, set())
            zeros = [_method(segment[i], "zero_grad") for i in seg_found["zero_grad"]]
            if (len(seg_found["backward"]) != 1 or seg_found["step_if"]
                    or any(z != optimizer and z not in models for z in zeros)):
                return (f"{NOT_TOGETHER}; with several optimizers in one block, each needs its own zero_grad(), "
                        "backward() and step(), in that order, one after the other")
            if not zeros or max(seg_found["zero_grad"]) > seg_found["backward"][0]:
                return (f"{optimizer}.zero_grad() does not come before its backward() after the previous step(): "
                        "another backward() would add to the gradients its step() uses (torch accumulates them)")
            new = self._rewrite(rw, segment, seg_found)
            if isinstance(new, str):
                return new
            out.extend(new)
            start = s + 1
        rest = body[start:]
        if self._training_calls(rw, rest)["zero_grad"]:
            return f"{NOT_TOGETHER}; a zero_grad() after the last step() of a block with several optimizers"
        return out + rest

    def _rewrite(self, rw, body: list, found: dict, conditional=None):
        if not found["backward"] and len(found["step"]) == 1 and len(found["loop_backward"]) == 1 and not found["step_if"]:
            return self._rewrite_micro_steps(rw, body, found)
        if len(found["backward"]) == len(found["step"]) >= 2 and not found["step_if"]:
            return self._rewrite_segments(rw, body, found)
        if len(found["backward"]) == 1 and not found["step"] and len(found["step_if"]) == 1:
            return self._rewrite_accumulation(rw, body, found)
        if len(found["backward"]) > len(found["step"]) >= 1 and not found["step_if"]:
            return SEVERAL_BACKWARDS
        if len(found["backward"]) != 1 or len(found["step"]) != 1:
            return NOT_TOGETHER
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
        clip_idx = sorted(found["clip"] + found["clip_if"])
        between = [i for i in range(b + 1, s) if i not in clip_idx]
        if any("grad" in names_in(body[i]) for i in between):
            return "gradients are read between backward() and step(); MLX has them only as the grads tree"
        loss = self._loss_region(body, b, zero[0], model, rw)
        if isinstance(loss, str):
            return loss
        if any(not b < i < s for i in clip_idx):
            return "clip_grad_norm_ is not between backward() and step()"
        return self._build(rw, body, loss, b, zero[0], clip_idx, model, optimizer, None, conditional)

    def _loss_region(self, body: list, b: int, zero: int, model: str, rw=None):
        """(region indices, loss name, assigned names), or why the loss computation is not recognised."""
        loss = _method(body[b], "backward")
        region = self._region(body, b, zero, rw)
        if not region:
            return "the loss is not computed by plain assignments right before backward()"
        region_stmts = [body[i] for i in region]
        assigned = self._assigned(region_stmts)
        if loss not in assigned or not any(model.split(".")[0] in names_in(st) for st in region_stmts):
            return f"`{loss}` and the call of `{model}` are not in the plain assignments right before backward()"
        before = [body[i] for i in range(0, b) if i not in region and i != zero]
        if any(model.split(".")[0] in names_in(st) and f"{model}(" in _EMPTY.code_for_node(st) for st in before):
            return f"`{model}` is called before the loss computation that feeds backward()"
        return region, loss, assigned

    def _rewrite_conditional(self, rw, body: list, found: dict):
        """`zero_grad(); <forward>; if cond: loss.backward(); [clip]; opt.step()` (the fine-tuning tutorial's train and
        val phases): the loss function is built from the forward pass before the `if`; under `cond` it goes through
        nn.value_and_grad and the update, else it is called alone (its values are the same, no gradient is taken).
        Why not, once the shape matched, in `self.conditional_reason`."""
        self.conditional_reason = None
        c = found["step_if"][0]
        inner = self._if_body(body[c])
        inner_found = self._training_calls(rw, inner)
        if len(inner_found["backward"]) != 1 or len(inner_found["step"]) != 1 or inner_found["step_if"]:
            return NOT_TOGETHER
        kb = inner_found["backward"][0]
        if any(i not in inner_found["zero_grad"] for i in range(kb)):
            return "statements other than zero_grad() come before backward() in the `if` that holds the step"
        flat = [*body[:c], *inner, *body[c + 1:]]
        flat_found = self._training_calls(rw, flat)
        if len(flat_found["backward"]) != 1 or len(flat_found["step"]) != 1:
            return NOT_TOGETHER
        result = self._rewrite(rw, flat, flat_found, conditional=(c, c + len(inner), body[c]))
        self.conditional_reason = result if isinstance(result, str) else None
        return result

    def _reflag_if(self, rw, body: list, c: int, why: str) -> list:
        """The `if` holding backward() and step(), its statements flagged with `why` (no longer deferred)."""
        stmt = self._undefer(rw, body[c])
        inner = list(stmt.body.body)
        # deferred again: an enclosing block (the loop body around a `with`) may still translate the step
        flagged = self._flag_all(rw, inner, self._training_calls(rw, inner), why, if_body=True)
        return [*body[:c], stmt.with_changes(body=stmt.body.with_changes(body=flagged)), *body[c + 1:]]

    def _rewrite_micro_steps(self, rw, body: list, found: dict):
        """nanoGPT's accumulation: `for micro_step in range(n): <forward>; loss.backward()`, then (clipping and)
        `opt.step()` after the loop, `opt.zero_grad()` after the step or before the loop. The loop sums the grads
        trees (`accumulate_grads`) from `acc = None` right before it; the step updates with the sum."""
        lp, s = found["loop_backward"][0], found["step"][0]
        optimizer = _method(body[s], "step")
        model, why = model_for(optimizer, self.optimizers, self.tree, self._function_ast())
        if model is None:
            return why
        if s < lp:
            return "optimizer.step() comes before the loop of backward() calls"
        inner = self._loop_backward(body[lp])
        inner_found = self._training_calls(rw, inner)
        if (len(inner_found["backward"]) != 1 or inner_found["zero_grad"] or inner_found["clip"] or inner_found["clip_if"]
                or inner_found["loop_backward"] or inner_found["step_if"]):
            return NOT_TOGETHER
        zeros = [i for i in found["zero_grad"] if _method(body[i], "zero_grad") in (optimizer, model)]
        if len(zeros) != 1 or lp < zeros[0] < s:
            return (f"no single {optimizer}.zero_grad() before the loop of backward() calls or after {optimizer}.step(): "
                    "torch would add gradients across steps")
        clip_idx = sorted(found["clip"] + found["clip_if"])
        if any(not lp < i < s for i in clip_idx):
            return "clip_grad_norm_ is not between the loop of backward() calls and step()"
        b = inner_found["backward"][0]
        if any("grad" in names_in(body[i]) for i in range(lp + 1, s) if i not in clip_idx) or any(
                "grad" in names_in(st) for st in inner[b + 1:]):
            return "gradients are read between backward() and step(); MLX has them only as the grads tree"
        loss = self._loss_region(inner, b, -1, model, rw)
        if isinstance(loss, str):
            return loss
        new_inner = self._build(rw, inner, loss, b, -1, [], model, optimizer, (-1, None, None, None, None))
        if isinstance(new_inner, str):
            return new_inner
        summed = next(st for st in new_inner if id(st) in self.pending)
        acc = self.pending[id(summed)][0]
        if zeros[0] > s:  # reset after each step only: say what the first step assumes
            self.pending_notes[id(summed)] = (
                f"`{acc} = None` before the loop of backward() calls: gradients present before the first {optimizer}.step() "
                f"(a backward() before this loop with no zero_grad() since) are not added to it, as torch would")
        loop = self._undefer(rw, body[lp])
        out: list = []
        for i, stmt in enumerate(body):
            if i == lp:
                new_loop = loop.with_changes(body=loop.body.with_changes(body=new_inner))
                self.origin[id(new_loop)] = self.origin.get(id(body[lp]), body[lp])  # where a note on it points
                out.append(new_loop)
            elif i in clip_idx:
                new = self._clip_statements(rw, stmt, model, acc)
                if isinstance(new, str):
                    return new
                out.extend(new)
            elif i == s:
                out.extend(self._update(rw, stmt, model, optimizer, acc))
            elif i == zeros[0] and i > s:
                continue
            else:
                out.append(stmt)
        return self._place_accumulators(rw, out)

    def _rewrite_accumulation(self, rw, body: list, found: dict):
        """`loss.backward()` every micro-batch, `if ...: opt.step(); opt.zero_grad()`: gradients summed until the step."""
        b, c = found["backward"][0], found["step_if"][0]
        inner = self._if_body(body[c])
        s = next(i for i, st in enumerate(inner) if _method(st, "step") in self.optimizers)
        optimizer = _method(inner[s], "step")
        model, why = model_for(optimizer, self.optimizers, self.tree, self._function_ast())
        if model is None:
            return why
        if not self.in_loop:
            return ("gradient accumulation outside a loop body (the summed gradients must live across calls): "
                    "keep a running sum of the grads trees from nn.value_and_grad and call optimizer.update with it")
        if c < b:
            return "the conditional optimizer.step() comes before loss.backward()"
        if [_method(st, "step") for st in inner].count(optimizer) != 1 or any(_method(st, "backward") for st in inner):
            return NOT_TOGETHER
        if any(_method(body[i], "zero_grad") in (optimizer, model) for i in found["zero_grad"]):
            return f"{optimizer}.zero_grad() runs every micro-batch while {optimizer}.step() runs under a condition"
        zero = [i for i, st in enumerate(inner) if _method(st, "zero_grad") in (optimizer, model)]
        if len(zero) != 1 or zero[0] < s:
            return (f"the conditional {optimizer}.step() is not followed by one {optimizer}.zero_grad() in its block: "
                    "torch would keep accumulating")
        if any(i in found["clip"] + found["clip_if"] for i in range(b + 1, c)):
            return "clip_grad_norm_ runs every micro-batch, outside the conditional step"
        if any("grad" in names_in(body[i]) for i in range(b + 1, c)):
            return "gradients are read between backward() and step(); MLX has them only as the grads tree"
        inner_clips = [i for i, st in enumerate(inner) if self._is_clip(rw, st) or (
            self._if_body(st) and all(self._is_clip(rw, x) for x in self._if_body(st)))]
        if any(i > s for i in inner_clips):
            return "clip_grad_norm_ is not between backward() and step()"
        if any("grad" in names_in(st) for i, st in enumerate(inner) if i not in inner_clips and i not in (s, zero[0])):
            return "gradients are read in the conditional step block; MLX has them only as the grads tree"
        loss = self._loss_region(body, b, -1, model, rw)
        if isinstance(loss, str):
            return loss
        return self._build(rw, body, loss, b, -1, [], model, optimizer, (c, inner, s, zero[0], inner_clips))

    def _clip_statements(self, rw, stmt, model: str, grads: str):
        """The MLX statement(s) for a clip call or an `if` of clip calls, or why not."""
        if isinstance(stmt, cst.If):
            stmt = self._undefer(rw, stmt)
            new_body = []
            for st in stmt.body.body:
                new = self._clip_statements(rw, st, model, grads)
                if isinstance(new, str):
                    return new
                new_body.extend(new)
            return [stmt.with_changes(body=stmt.body.with_changes(body=new_body))]
        clip = self._clip(rw, stmt, model)
        if isinstance(clip, str):
            return clip
        kind, value, target = clip
        if kind == CLIP:
            code = f"{grads}, {target} = optim.clip_grad_norm({grads}, {value})\n"
        else:
            clip_values = rw.helper("clip_grad_values", lambda: mlx_statements(rw, CLIP_VALUE_HELPER))
            code = f"{grads} = {clip_values}({grads}, {value})\n"
        return [mlx_statements(rw, code)[0].with_changes(leading_lines=stmt.leading_lines)]

    def _function_ast(self):
        fn = self.functions[-1] if self.functions else None
        if not isinstance(fn, cst.FunctionDef):
            return None
        parsed = ast.parse(textwrap.dedent(_EMPTY.code_for_node(fn))).body[0]
        return parsed if isinstance(parsed, (ast.FunctionDef, ast.AsyncFunctionDef)) else None

    def _gradient_function(self, rw, stmt) -> bool:
        """A `def grad_fn(...)` the autograd-grad transform wrote for a torch.autograd.grad in this block (a WGAN-GP
        penalty computed inline): part of the loss computation, with the assignment that calls it."""
        autograd = rw.transform("autograd-grad") if rw is not None else None
        return autograd is not None and isinstance(stmt, cst.FunctionDef) and id(stmt) in autograd.generated

    def _region(self, body: list, backward: int, zero: int, rw=None) -> list:
        out: list = []
        i = backward - 1
        while i >= 0 and (i == zero or _region_assignment(body[i]) or self._gradient_function(rw, body[i])):
            if i != zero:
                out.append(i)
            i -= 1
        return sorted(out)

    @staticmethod
    def _assigned(stmts: list) -> list:
        names: list = []
        for st in stmts:
            if isinstance(st, cst.FunctionDef):
                continue
            small = st.body[0]
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            for t in targets:
                for e in ([e.value for e in t.elements] if isinstance(t, (cst.Tuple, cst.List)) else [t]):
                    if e.value not in names:
                        names.append(e.value)
        return names

    def _clip(self, rw, stmt, model: str):
        """(qualified name, max_norm or clip_value source, target of the returned norm) or why not."""
        call = _expr_call(stmt)
        kind = rw.qualified_name(call.func)
        args = list(call.args)
        name = kind.rsplit(".", 1)[-1]
        if len(args) < 2 or any(a.star for a in args) or args[0].keyword is not None:
            return f"{name} call shape not recognised"
        if not is_method_call(args[0].value, model, "parameters"):
            return f"{name} on something other than {model}.parameters()"
        names = ("max_norm", "norm_type", "error_if_nonfinite", "foreach") if kind == CLIP else ("clip_value", "foreach")
        value = None
        for i, a in enumerate(args[1:], 1):
            key = a.keyword.value if a.keyword is not None else names[i - 1] if i - 1 < len(names) else "?"
            text = code_of(a.value)
            if key in ("max_norm", "clip_value"):
                value = text
            elif key == "norm_type" and text not in ("2", "2.0"):
                return "clip_grad_norm_ with a norm other than 2 (optim.clip_grad_norm is the 2-norm)"
            elif key == "error_if_nonfinite" and text != "False":
                return "clip_grad_norm_(error_if_nonfinite=True) has no MLX equivalent"
            elif key not in ("norm_type", "error_if_nonfinite", "foreach"):
                return f"{name} argument `{key}` not recognised"
        small = stmt.body[0]
        target = code_of(small.targets[0].target) if isinstance(small, cst.Assign) else "_"
        if kind != CLIP and target != "_":
            return "the value of clip_grad_value_ (None) is used"
        return kind, value, target

    def _aux(self, assigned: list, loss: str, region_stmts: list) -> list:
        scope = self.functions[-1]
        everywhere = names_in(scope)
        inside: list = []
        for st in region_stmts:
            inside.extend(names_in(self.origin.get(id(st), st)))
        return [n for n in assigned if n != loss and everywhere.count(n) > inside.count(n)]

    def _build(self, rw, body, loss_region, b, zero, clip_idx, model, optimizer, accumulation, conditional=None):
        region, loss, assigned = loss_region
        region_stmts = [body[i] for i in region]
        aux = self._aux(assigned, loss, region_stmts)
        used = set(names_in(self.functions[-1]))
        fn_name = next(n for n in ("loss_fn", "loss_fn_", "compute_loss_fn") if n not in used)
        grads = next(n for n in ("grads", "grads_", "mlx_grads") if n not in used)
        params = self._read_before_assigned(region_stmts, assigned)
        outputs = ", ".join([loss, *aux])
        returned = f"({outputs})" if aux else loss
        header = mlx_statements(rw, f"def {fn_name}({', '.join(params)}):\n    pass\n")[0]
        # comments and blank lines above the region go above the def; a flag stays with its statement
        # (above the def, a second conversion would flag the statement again)
        first_lines = region_stmts[0].leading_lines
        flags = [line for line in first_lines if line.comment is not None and line.comment.value.startswith("# torch2mlx: ")]
        lead = [line for line in first_lines if not any(line is f for f in flags)]
        region_stmts[0] = region_stmts[0].with_changes(leading_lines=flags)
        fn_body = [*region_stmts, cst.parse_statement(f"return {outputs}")]
        fn = header.with_changes(body=header.body.with_changes(body=fn_body), leading_lines=lead)
        call = mlx_statements(rw, f"{returned}, {grads} = nn.value_and_grad({model}, {fn_name})({', '.join(params)})\n")
        if accumulation is not None:
            acc = next(n for n in ("accum_grads", "accum_grads_", "summed_grads") if n not in used)
            accumulate = rw.helper("accumulate_grads", lambda: mlx_statements(rw, ACCUMULATE_HELPER))
            summed = mlx_statements(rw, f"{acc} = {accumulate}({acc}, {grads})\n")[0]
            call.append(summed)
        out: list = []
        if conditional is not None:  # statements from the `if`'s body (start..end of `body`) go back into it
            start, end, if_stmt = conditional
            if region[-1] >= start:
                return "the loss is not computed before the `if` that holds backward() and step()"
            # the test now runs before the forward pass (inside the branches): it must not read what that computes
            read = set(names_in(if_stmt.test)) & set(assigned)
            if read or find(if_stmt.test, cst.Call):
                return (f"the `if` around backward() and step() reads {', '.join(sorted(read))}, computed by the forward pass"
                        if read else "the `if` around backward() and step() calls a function in its test") + (
                        ": take nn.value_and_grad of a loss_fn holding the forward pass before the `if`, and call "
                        "optimizer.update(model, grads) under it")
            plain = mlx_statements(rw, f"{returned} = {fn_name}({', '.join(params)})\n")
            produced = self._build_statements(rw, body, region, zero, b, clip_idx, model, optimizer, grads, fn, [])
            if isinstance(produced, str):
                return produced
            before = [st for i, st in produced if i < start]
            inside = [st for i, st in produced if start <= i < end]
            after = [st for i, st in produced if i >= end]
            if_stmt = self._undefer(rw, if_stmt)  # its flags (deferred) are moot now
            branch = if_stmt.with_changes(body=if_stmt.body.with_changes(body=[*call, *inside]),
                                          orelse=cst.Else(body=cst.IndentedBlock(body=plain)))
            rw.count_conversion()
            return [*before, branch, *after]
        for i, stmt in enumerate(body):
            if i == region[0]:
                out.extend([fn, *call])
            elif i in region or i == zero or i == b:
                continue
            elif i in clip_idx:
                new = self._clip_statements(rw, stmt, model, grads)
                if isinstance(new, str):
                    return new
                out.extend(new)
            elif _method(stmt, "step") == optimizer and accumulation is None:
                out.extend(self._update(rw, stmt, model, optimizer, grads))
            elif accumulation is not None and i == accumulation[0]:
                new = self._accumulated_step(rw, stmt, model, optimizer, acc, accumulation)
                if isinstance(new, str):
                    return new
                out.append(new)
            else:
                out.append(stmt)
        if accumulation is not None:
            self.pending[id(summed)] = (acc, optimizer, model)
        rw.count_conversion()
        return out

    def _build_statements(self, rw, body, region, zero, b, clip_idx, model, optimizer, grads, fn, call):
        """[(index in `body` it comes from, statement)] of a plain step's translation, or why not."""
        out: list = []
        for i, stmt in enumerate(body):
            if i == region[0]:
                out.extend((i, st) for st in [fn, *call])
            elif i in region or i == zero or i == b:
                continue
            elif i in clip_idx:
                new = self._clip_statements(rw, stmt, model, grads)
                if isinstance(new, str):
                    return new
                out.extend((i, st) for st in new)
            elif _method(stmt, "step") == optimizer:
                out.extend((i, st) for st in self._update(rw, stmt, model, optimizer, grads))
            else:
                out.append((i, stmt))
        return out

    def _update(self, rw, stmt, model: str, optimizer: str, grads: str) -> list:
        new = mlx_statements(rw, f"{optimizer}.update({model}, {grads})\nmx.eval({model}.parameters(), {optimizer}.state)\n")
        return [new[0].with_changes(leading_lines=stmt.leading_lines), new[1]]

    def _accumulated_step(self, rw, stmt, model, optimizer, acc, accumulation):
        _, inner, s, zero, clips = accumulation
        stmt = self._undefer(rw, stmt)
        new_body: list = []
        for i, st in enumerate(stmt.body.body):
            if i == s:
                new_body.extend(self._update(rw, st, model, optimizer, acc))
            elif i == zero:
                new_body.append(mlx_statements(rw, f"{acc} = None\n")[0].with_changes(leading_lines=st.leading_lines))
            elif i in clips:
                new = self._clip_statements(rw, st, model, acc)
                if isinstance(new, str):
                    return new
                new_body.extend(new)
            else:
                new_body.append(st)
        return stmt.with_changes(body=stmt.body.with_changes(body=new_body))

    @staticmethod
    def _read_before_assigned(stmts: list, assigned: list) -> list:
        code = "\n".join(_EMPTY.code_for_node(st).strip() for st in stmts)
        seen: set = set()
        params: list = []
        for node in ast.parse(code).body:
            if isinstance(node, ast.FunctionDef):  # a generated gradient function: its reads happen when called
                seen.add(node.name)
                continue
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
