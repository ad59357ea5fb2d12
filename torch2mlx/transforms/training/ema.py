"""An exponential moving average of the weights: torch's per-tensor in-place loop -> one tree update (id `ema-update`).

What it does
    ::

        for ema_p, p in zip(ema.parameters(), model.parameters()):
            ema_p.mul_(d).add_(p, alpha=1 - d)

    becomes::

        ema.update(map_parameters(lambda ema_p, p: ema_p * d + (1 - d) * p,
                                  ema.trainable_parameters(), model.trainable_parameters()))

    and YOLO's / timm's `ModelEMA.update` over state dicts::

        msd = model.state_dict()
        for k, v in self.ema.state_dict().items():
            if v.dtype.is_floating_point:
                v *= d
                v += (1 - d) * msd[k].detach()

    becomes (the `msd = ...` line goes)::

        self.ema.update(map_parameters(lambda v, model_v: (v * d + (1 - d) * mx.stop_gradient(model_v))
                                       if mx.issubdtype(v.dtype, mx.floating) else v,
                                       self.ema.parameters(), model.parameters()))

    The loop body is a run of in-place updates of the EMA tensor (`mul_`, `add_`/`sub_` with `alpha=`,
    `lerp_`, `copy_`, `*=`, `+=`, `-=`, `/=`, `.data.` before any of them, `e.data = ...`); each reads
    the value the previous one left, as torch's. `map_parameters` is a generated helper
    (`mlx.utils.tree_map`).
Why
    MLX arrays are immutable and a module's arrays are replaced with `Module.update`. torch's
    `parameters()` are MLX's `trainable_parameters()` (buffers, BatchNorm's running statistics
    included, are frozen arrays in MLX) as long as nothing in the file freezes parameters; a
    `state_dict()` is MLX's `parameters()` (torch's `num_batches_tracked` has no MLX counterpart
    and is an integer, which the floating-point test skips).
Left in place (the in-place flags stay) when
    the loop body does anything else, the trees are not `zip(a.parameters(), b.parameters())` /
    `zip(a.state_dict().values(), b.state_dict().values())` / `a.state_dict().items()` with
    `b_sd[k]`, or the file freezes parameters (`requires_grad_(False)`, `requires_grad = False`,
    `.freeze()`) while the loop walks `parameters()`: MLX's trainable parameters would then leave
    frozen ones out, which torch's loop averages. A flag then says what to write.
"""
from __future__ import annotations

import ast
from typing import Optional

import libcst as cst

from torch2mlx.binding import code_of
from torch2mlx.patterns import dotted, index_of, is_method_call, is_name
from torch2mlx.transforms import Transform
from torch2mlx.transforms.codegen import mlx_expr, mlx_statements

RULE_ID = "ema-update"
HELPER = "map_parameters"
HELPER_CODE = '''
def map_parameters(fn, tree, *rest):
    """fn applied leaf by leaf to parameter trees of one structure (mlx.utils.tree_map): the original's loop
    over zip(a.parameters(), b.parameters()) updating each tensor in place."""
    from mlx.utils import tree_map

    return tree_map(fn, tree, *rest)
'''
WRITE = ("write ema.update(map_parameters(lambda e, p: <the new value of e>, ema.trainable_parameters(), "
         "model.trainable_parameters())) with mlx.utils.tree_map as map_parameters")
_INPLACE = frozenset({"mul_", "add_", "sub_", "div_", "lerp_", "copy_"})
_AUG = {cst.MultiplyAssign: cst.Multiply, cst.AddAssign: cst.Add, cst.SubtractAssign: cst.Subtract,
        cst.DivideAssign: cst.Divide}


def _paren(node: cst.BaseExpression) -> cst.BaseExpression:
    if node.lpar:
        return node
    return node.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


_PRECEDENCE = {cst.Add: 1, cst.Subtract: 1, cst.Multiply: 2, cst.Divide: 2}


def _level(node) -> int:
    if isinstance(node, cst.BinaryOperation) and not node.lpar:
        return _PRECEDENCE.get(type(node.operator), 0)
    return 3 if not isinstance(node, (cst.UnaryOperation, cst.IfExp, cst.Lambda, cst.BooleanOperation, cst.Comparison)) or node.lpar else 0


def _binop(left, op, right) -> cst.BinaryOperation:
    """left op right, parenthesised where Python's precedence (left to right within a level) needs it."""
    level = _PRECEDENCE[op]
    left = left if _level(left) >= level else _paren(left)
    right = right if _level(right) > level else _paren(right)
    return cst.BinaryOperation(left=left, operator=op(), right=right)


class _Substitute(cst.CSTTransformer):
    """Names replaced by expressions (the EMA tensor by its current value, `msd[k]` by the model's leaf)."""

    def __init__(self, names: dict, subscripts: dict) -> None:
        super().__init__()
        self.names = names
        self.subscripts = subscripts

    def leave_Name(self, original, updated):
        if updated.value not in self.names:
            return updated
        value = self.names[updated.value]
        return value if _level(value) == 3 else _paren(value)

    def leave_Subscript(self, original, updated):
        key = code_of(original)
        return self.subscripts[key] if key in self.subscripts else updated

    def leave_Attribute(self, original, updated):  # `e.data` (left by a table that knows no tensor here) is `e`
        if updated.attr.value == "data" and isinstance(original.value, cst.Name) and original.value.value in self.names:
            return updated.value
        return updated


def _dotted(node) -> Optional[str]:
    parts = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, cst.Name):
        return None
    return ".".join([node.value, *reversed(parts)])


def _receiver(node, name: str):
    """`a` (a node) for `a.name()` with no arguments, else None."""
    if isinstance(node, cst.Call) and not node.args and isinstance(node.func, cst.Attribute) and node.func.attr.value == name:
        return node.func.value
    return None


def _method_call(node, name: str) -> Optional[str]:
    """'a' for `a.name()` (no arguments) with `a` a dotted name."""
    receiver = _receiver(node, name)
    return _dotted(receiver) if receiver is not None else None


def _trees(iter_node) -> Optional[tuple]:
    """(kind, average, model) for `zip(A.parameters(), B.parameters())` ('parameters'),
    `zip(A.state_dict().values(), B.state_dict().values())` ('state'), `A.state_dict().items()` ('items', B unknown)."""
    if isinstance(iter_node, cst.Call) and isinstance(iter_node.func, cst.Name) and iter_node.func.value == "zip":
        args = iter_node.args
        if len(args) != 2 or any(a.keyword is not None or a.star for a in args):
            return None
        a, b = (_method_call(x.value, "parameters") for x in args)
        if a and b:
            return "parameters", a, b
        receivers = [_receiver(x.value, "values") for x in args]
        if None not in receivers:
            a, b = (_method_call(r, "state_dict") for r in receivers)
            if a and b:
                return "state", a, b
        return None
    receiver = _receiver(iter_node, "items")
    a = _method_call(receiver, "state_dict") if receiver is not None else None
    return ("items", a, None) if a else None


def _freezes(tree: ast.Module) -> bool:
    """Does the file freeze parameters (requires_grad_(False), `.requires_grad = False`, `.freeze()`)?"""
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
            if n.func.attr == "freeze":
                return True
            if n.func.attr == "requires_grad_" and (n.args or n.keywords):
                value = n.args[0] if n.args else n.keywords[0].value
                if not (isinstance(value, ast.Constant) and value.value is True):
                    return True
        if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            if any(isinstance(t, ast.Attribute) and t.attr == "requires_grad" for t in targets):
                return True
    return False


class EmaUpdate(Transform):
    id = RULE_ID
    description = "an EMA of the weights (in-place loop over zip(ema.parameters(), model.parameters())) -> ema.update(tree_map(...))"
    hot_attributes = frozenset({"parameters", "state_dict", "lerp_", "mul_", "copy_"})
    order = 85

    def __init__(self) -> None:
        self.freezes = False
        self.drop: dict = {}  # id(original block) -> codes of `msd = model.state_dict()` statements to remove
        self.blocks: list = []

    def applies_to(self, text: str) -> bool:
        return ("parameters()" in text or "state_dict()" in text) and ("zip(" in text or ".items()" in text)

    def prepare(self, tree: ast.Module, module_scope) -> None:
        self.freezes = _freezes(tree)

    # ----- the enclosing block: `msd = model.state_dict()` statements --------------------------------
    def visit_IndentedBlock(self, rw, node) -> None:
        self.blocks.append(node)

    def leave_IndentedBlock(self, rw, original, updated):
        self.blocks.pop()
        gone = self.drop.pop(id(original), None)
        if not gone:
            return updated
        body = []
        carried: list = []
        for stmt in updated.body:
            if isinstance(stmt, cst.SimpleStatementLine) and code_of(stmt.with_changes(leading_lines=[])).strip() in gone:
                carried.extend(line for line in stmt.leading_lines if not (
                    line.comment is not None and line.comment.value.startswith("# torch2mlx: ")))
                continue
            body.append(stmt.with_changes(leading_lines=[*carried, *stmt.leading_lines]) if carried else stmt)
            carried = []
        return updated.with_changes(body=body) if body and not carried else updated

    def _state_dict_source(self, name: str, loop) -> Optional[tuple]:
        """(model, the statement) for the one `name = model.state_dict()` in the enclosing block before `loop`,
        `name` used nowhere else in the block but as `name[k]` in the loop."""
        if not self.blocks:
            return None
        block = self.blocks[-1]
        found = None
        for stmt in block.body:
            if stmt is loop:
                break
            if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign):
                small = stmt.body[0]
                if len(small.targets) == 1 and dotted(small.targets[0].target) == name:
                    model = _method_call(small.value, "state_dict")
                    found = (model, stmt) if model else None
        return found

    # ----- the loop ---------------------------------------------------------------------------------
    def visit_For(self, rw, node) -> None:
        """The loop variables over parameter trees are tensors (so `p.data` / `p.detach()` translate)."""
        trees = _trees(node.iter)
        if trees is not None and isinstance(node.target, cst.Tuple):
            names = [e.value.value for e in node.target.elements if isinstance(e.value, cst.Name)]
            for name in names[1:] if trees[0] == "items" else names:
                rw.tensors.mark(name, True)

    def leave_For(self, rw, original, updated):
        trees = _trees(original.iter)
        if trees is None or not isinstance(original.target, cst.Tuple) or len(original.target.elements) != 2:
            return updated
        names = [e.value.value if isinstance(e.value, cst.Name) else None for e in original.target.elements]
        if None in names or original.orelse is not None or not isinstance(updated.body, cst.IndentedBlock):
            return updated
        kind, average, model = trees
        if kind == "items":
            key, ema = names
            other = None
        else:
            ema, other = names
            key = None
        new = self._translate(rw, original, updated, kind, average, model, ema, other, key)
        if isinstance(new, str):
            if new:  # the loop's own findings are recorded already (its statement was left): report, mark by hand
                rw.report(original.iter, RULE_ID, "needs-review", new, "warning", original)
                line = cst.EmptyLine(comment=cst.Comment(f"# torch2mlx: {RULE_ID}: {new}"))
                if not any(x.comment is not None and x.comment.value.startswith(f"# torch2mlx: {RULE_ID}:") for x in updated.leading_lines):
                    return updated.with_changes(leading_lines=[*updated.leading_lines, line])
            return updated
        statements = {id(s) for s in _statements(original)}
        rw.drop_reports(lambda f: f.statement is not None and id(f.statement) in statements)
        rw.count_conversion()
        lines = [x for x in updated.leading_lines if not (x.comment is not None and x.comment.value.startswith("# torch2mlx: "))]
        return new.with_changes(leading_lines=lines)

    def _translate(self, rw, original, updated, kind, average, model, ema, other, key):
        body = list(updated.body.body)
        floating = False
        if kind in ("items", "state") and len(body) == 1 and isinstance(body[0], cst.If) and self._is_float_test(body[0].test, ema):
            if body[0].orelse is not None or not isinstance(body[0].body, cst.IndentedBlock):
                return ""
            floating = True
            body = list(body[0].body.body)
        subscripts: dict = {}
        source_stmt = None
        if kind == "items":
            other = next(n for n in ("model_v", "model_v_", "current_v") if n != ema and n != key)
            index = self._index_of(body, key)
            if index is None:
                return ""
            sd_name = index
            found = self._state_dict_source(sd_name, original)
            if found is None:
                return ""
            model, source_stmt = found
            if self._names_elsewhere(sd_name, original):
                return ""
            subscripts[f"{sd_name}[{key}]"] = cst.Name(other)
        value = cst.Name(ema)
        for stmt in body:
            value = self._apply(stmt, ema, value, subscripts)
            if value is None:
                return ""
        if key is not None and key in self._names_in(value):
            return ""
        if kind == "parameters" and self.freezes:
            return (f"this file freezes parameters: MLX's {average}.trainable_parameters() would leave the frozen ones out, "
                    f"which torch's loop over parameters() averages too; {WRITE} over the trees that hold them")
        helper = rw.helper(HELPER, lambda: mlx_statements(rw, HELPER_CODE))
        if floating:
            test = mlx_expr(rw, f"mx.issubdtype({ema}.dtype, mx.floating)")
            value = cst.IfExp(test=test, body=_paren(value), orelse=cst.Name(ema))
        lam = cst.Lambda(params=cst.Parameters(params=[cst.Param(cst.Name(ema)), cst.Param(cst.Name(other))]), body=value)
        method = "trainable_parameters" if kind == "parameters" else "parameters"
        trees = f"{average}.{method}(), {model}.{method}()"
        call = cst.parse_statement(f"{average}.update({helper}(LAMBDA, {trees}))\n")
        call = call.visit(_Replace("LAMBDA", lam))
        if source_stmt is not None and self.blocks:
            self.drop.setdefault(id(self.blocks[-1]), set()).add(code_of(source_stmt.with_changes(leading_lines=[])).strip())
        return call

    @staticmethod
    def _is_float_test(test, name: str) -> bool:
        return dotted(test) == f"{name}.dtype.is_floating_point" or is_method_call(test, name, "is_floating_point")

    @staticmethod
    def _names_in(node) -> list:
        found: list = []

        class V(cst.CSTVisitor):
            def visit_Name(self, n):
                found.append(n.value)

        node.visit(V())
        return found

    def _index_of(self, body, key: str) -> Optional[str]:
        """The one name `sd` subscripted `sd[key]` in the loop body."""
        found: set = set()

        class V(cst.CSTVisitor):
            def visit_Subscript(self, n):
                if isinstance(n.value, cst.Name) and is_name(index_of(n), key):
                    found.add(n.value.value)

        for stmt in body:
            stmt.visit(V())
        return next(iter(found)) if len(found) == 1 else None

    def _names_elsewhere(self, name: str, loop) -> bool:
        """Is `name` read in the enclosing block outside its assignment and `loop`?"""
        block = self.blocks[-1]
        count = 0
        for stmt in block.body:
            if stmt is loop:
                continue
            count += self._names_in(stmt).count(name)
        return count != 1

    def _apply(self, stmt, ema: str, value, subscripts: dict):
        """The EMA tensor's value after the in-place statement `stmt`, or None when it is not one."""
        if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
            return None
        small = stmt.body[0]
        sub = _Substitute({ema: value}, subscripts)
        if isinstance(small, cst.AugAssign):
            op = _AUG.get(type(small.operator))
            if op is None or not self._is_target(small.target, ema):
                return None
            return _binop(value, op, small.value.visit(sub))
        if isinstance(small, cst.Assign):  # `e.data = expr`
            if len(small.targets) != 1 or dotted(small.targets[0].target) != f"{ema}.data":
                return None
            return small.value.visit(sub)
        if not isinstance(small, cst.Expr) or not isinstance(small.value, cst.Call):
            return None
        chain = []
        node = small.value
        while isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in _INPLACE:
            chain.append(node)
            node = node.func.value
        if not chain or not self._is_target(node, ema):
            return None
        for call in reversed(chain):
            value = self._inplace(call, value, sub)
            if value is None:
                return None
        return value

    @staticmethod
    def _is_target(node, ema: str) -> bool:
        if dotted(node) in (ema, f"{ema}.data"):
            return True
        # `e.data` the table wrote as `mx.stop_gradient(e)` (the MLX root is an emitter sentinel here)
        return (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "stop_gradient"
                and len(node.args) == 1 and is_name(node.args[0].value, ema))

    @staticmethod
    def _inplace(call: cst.Call, value, sub):
        name = call.func.attr.value
        args = [a for a in call.args]
        if any(a.star for a in args):
            return None
        pos = [a.value.visit(sub) for a in args if a.keyword is None]
        kw = {a.keyword.value: a.value.visit(sub) for a in args if a.keyword is not None}
        if name == "mul_" and len(pos) == 1 and not kw:
            return _binop(value, cst.Multiply, pos[0])
        if name == "div_" and len(pos) == 1 and not kw:
            return _binop(value, cst.Divide, pos[0])
        if name in ("add_", "sub_") and len(pos) == 1 and set(kw) <= {"alpha"}:
            other = _binop(kw["alpha"], cst.Multiply, pos[0]) if "alpha" in kw else pos[0]
            return _binop(value, cst.Add if name == "add_" else cst.Subtract, other)
        if name == "lerp_" and len(pos) + len(kw) == 2 and set(kw) <= {"end", "weight"}:
            end = pos[0] if pos else kw["end"]
            weight = pos[1] if len(pos) > 1 else kw["weight"]
            return _binop(value, cst.Add, _binop(weight, cst.Multiply, _binop(end, cst.Subtract, value)))
        if name == "copy_" and len(pos) == 1 and set(kw) <= {"non_blocking"}:
            return pos[0]
        return None


class _Replace(cst.CSTTransformer):
    def __init__(self, name: str, node) -> None:
        super().__init__()
        self.name = name
        self.node = node

    def leave_Name(self, original, updated):
        return self.node if updated.value == self.name else updated


def _statements(node) -> list:
    found: list = []

    class V(cst.CSTVisitor):
        def visit_SimpleStatementLine(self, n):
            found.append(n)

        def visit_If(self, n):
            found.append(n)

        def visit_For(self, n):
            found.append(n)

    node.visit(V())
    return found


# ----- torch.optim.swa_utils.AveragedModel ---------------------------------------------------------------
AVERAGED_ID = "averaged-model"
AVERAGED = "torch.optim.swa_utils.AveragedModel"
EMA_FNS = frozenset({"torch.optim.swa_utils.get_ema_multi_avg_fn", "torch.optim.swa_utils.get_ema_avg_fn"})
AVERAGED_HELPER = '''
class AveragedModule(nn.Module):
    """AveragedModel of swa_utils: a copy of `model` whose parameters update_parameters(model) averages
    with avg(averaged, current, number averaged so far), the first call copying them; without use_buffers the
    buffers (frozen arrays: BatchNorm statistics) follow the model's."""

    def __init__(self, model, avg, use_buffers=False):
        import copy

        super().__init__()
        self.module = copy.deepcopy(model)
        self.avg = avg
        self.use_buffers = use_buffers
        self.n_averaged = 0

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def update_parameters(self, model):
        from mlx.utils import tree_flatten, tree_unflatten

        averaged = dict(tree_flatten(self.module.parameters()))
        trainable = {k for k, _ in tree_flatten(self.module.trainable_parameters())}
        new = []
        for k, v in tree_flatten(model.parameters()):
            v = mx.stop_gradient(v)
            if self.n_averaged > 0 and (self.use_buffers or k in trainable):
                v = self.avg(averaged[k], v, self.n_averaged)
            new.append((k, v))
        self.module.update(tree_unflatten(new))
        self.n_averaged += 1
'''


class AveragedModelTransform(Transform):
    """`AveragedModel(model)` (SWA's running mean), `AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(d))` /
    `avg_fn=get_ema_avg_fn(d)` (an EMA) or with an `avg_fn(averaged, current, n)` of the file -> a generated
    AveragedModule class with torch's update_parameters (the first update copies; buffers follow the model unless
    use_buffers=True). `device=` is dropped. Flagged: another multi_avg_fn, a non-literal use_buffers, a file that
    freezes parameters (the class tells parameters from buffers by MLX's frozen arrays)."""

    id = AVERAGED_ID
    description = "torch.optim.swa_utils.AveragedModel -> a generated AveragedModule class (SWA mean or EMA)"
    hot_attributes = frozenset({"update_parameters"})
    order = 85

    def __init__(self) -> None:
        self.freezes = False

    def applies_to(self, text: str) -> bool:
        return "AveragedModel" in text

    def prepare(self, tree: ast.Module, module_scope) -> None:
        self.freezes = _freezes(tree)

    def leave_Call(self, rw, original, updated):
        qual = rw.qualified_name(original.func)
        if qual in EMA_FNS:  # decided with the AveragedModel call around it
            rw.drop_flags(original)
            return updated
        if qual != AVERAGED:
            return updated
        new = self._translate(rw, original, updated)
        if isinstance(new, str):
            rw.drop_flags(original)
            rw.flag(original, AVERAGED_ID, "needs-review", f"{new}; keep a copy.deepcopy of the model and average it with "
                    "copy.update(map_parameters(avg, copy.trainable_parameters(), model.trainable_parameters()))")
            return updated
        rw.drop_flags(original)
        rw.drop_flags(predicate=lambda f: any(isinstance(a.value, cst.Call) and f.node is a.value for a in original.args))
        rw.count_conversion()
        return new

    def _translate(self, rw, original, updated):
        names = ("model", "device", "avg_fn", "multi_avg_fn", "use_buffers")
        args: dict = {}
        for i, (a, b) in enumerate(zip(original.args, updated.args)):
            if a.star:
                return "starred arguments"
            key = a.keyword.value if a.keyword is not None else names[i] if i < len(names) else None
            if key is None:
                return "too many arguments"
            args[key] = (a.value, b.value)
        if "model" not in args:
            return "no model"
        if self.freezes:
            return "this file freezes parameters (the generated class tells parameters from buffers by MLX's frozen arrays)"
        use_buffers = args.get("use_buffers", (cst.Name("False"),))[0]
        if not is_name(use_buffers, "True", "False"):
            return "use_buffers is not a literal"
        use_buffers = use_buffers.value
        avg = None
        for key in ("multi_avg_fn", "avg_fn"):
            if key not in args or is_name(args[key][0], "None"):
                continue
            if avg is not None:
                return "both avg_fn and multi_avg_fn"
            value = args[key][0]
            if isinstance(value, cst.Call) and rw.qualified_name(value.func) in EMA_FNS:
                if len(value.args) > 1 or any(a.star or (a.keyword is not None and a.keyword.value != "decay") for a in value.args):
                    return "get_ema_*_avg_fn arguments not recognised"
                decay = code_of(value.args[0].value) if value.args else "0.999"
                avg = f"lambda averaged, current, n, decay={decay}: decay * averaged + (1 - decay) * current"
            elif key == "avg_fn":
                avg = args[key][1]  # the file's own avg_fn(averaged, current, num_averaged), translated
            else:
                return "a multi_avg_fn other than get_ema_multi_avg_fn (it updates lists of tensors in place)"
        if avg is None:  # SWA: the running mean
            avg = "lambda averaged, current, n: averaged + (current - averaged) / (n + 1)"
        helper = rw.helper("AveragedModule", lambda: mlx_statements(rw, AVERAGED_HELPER))
        call = mlx_expr(rw, f"{helper}(MODEL, AVG, use_buffers={use_buffers})")
        avg_node = mlx_expr(rw, avg) if isinstance(avg, str) else avg
        return call.with_changes(args=[call.args[0].with_changes(value=args["model"][1]), call.args[1].with_changes(value=avg_node),
                                       call.args[2]])
