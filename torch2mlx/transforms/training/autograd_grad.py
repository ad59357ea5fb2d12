"""`torch.autograd.grad(y, x)` of a scalar computed in the same block -> `mx.grad` of a function (id `autograd-grad`).

What it does
    ::

        interp = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        d_interp = D(interp)
        grads = torch.autograd.grad(outputs=d_interp, inputs=interp, grad_outputs=torch.ones_like(d_interp),
                                    create_graph=True)[0]

    becomes::

        interp = alpha * real + (1 - alpha) * fake
        def grad_fn(interp):
            d_interp = D(interp)
            return mx.sum(d_interp * mx.ones_like(d_interp))
        grads = mx.grad(grad_fn)(interp)

    The function holds the plain assignments right before the call, after the last binding of
    the inputs; the names it assigns that are used anywhere else in the function come back as
    auxiliary outputs (`mx.value_and_grad`). `grad_outputs=v` differentiates `mx.sum(y * v)` (the
    vector-Jacobian product torch computes); a list of inputs gives `argnums=(0, 1, ...)` and a
    tuple, one input a 1-tuple (`[0]` unwraps it), as torch. `create_graph=False` (the default)
    wraps the gradients in `mx.stop_gradient` (torch returns them detached; MLX would let an outer
    `value_and_grad` differentiate through them); with `create_graph=True` they stay connected,
    so a gradient penalty inside a loss is differentiated again, as torch's double backward.
    `retain_graph` and `only_inputs` change nothing in MLX and are dropped.
Why
    MLX has no autograd tape: a gradient is taken of a function.
Left in place (flagged, with what to write) when
    the inputs are not names (or a list/tuple of names), the output is not computed by the plain
    assignments right before the call from the inputs, an input is not used (torch raises unless
    `allow_unused=True`, where it returns None and MLX zeros), `create_graph` is not a literal, or
    `is_grads_batched` / `materialize_grads` are set.
"""
from __future__ import annotations

import ast
from typing import Optional

import libcst as cst

from torch2mlx.binding import code_of
from torch2mlx.patterns import index_of, is_integer, is_name
from torch2mlx.transforms import Transform
from torch2mlx.transforms.codegen import mlx_expr, mlx_statements

RULE_ID = "autograd-grad"
TABLE_RULE = "torch.autograd.grad"
GRAD = "torch.autograd.grad"
SIGNATURE = ("outputs", "inputs", "grad_outputs", "retain_graph", "create_graph", "only_inputs", "allow_unused",
             "is_grads_batched", "materialize_grads")
WRITE = ("write the computation from the inputs to the output as a function f(inputs) and use mx.grad(f, argnums=...)(inputs) "
         "(mx.value_and_grad when its values are needed too; grad_outputs=v: differentiate (y * v).sum())")


def names_in(node: cst.CSTNode) -> list:
    """Every Name in `node`, in order."""
    found: list = []

    class V(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            found.append(n.value)

    node.visit(V())
    return found


def plain_assignment(stmt) -> Optional[list]:
    """The names a plain `a = ...` / `a, b = ...` assigns (no .item() / print in it), else None."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return None
    small = stmt.body[0]
    if isinstance(small, cst.Assign):
        targets = [t.target for t in small.targets]
    elif isinstance(small, cst.AnnAssign) and small.value is not None:
        targets = [small.target]
    else:
        return None
    names: list = []
    for t in targets:
        elements = [e.value for e in t.elements] if isinstance(t, (cst.Tuple, cst.List)) else [t]
        if not all(isinstance(e, cst.Name) for e in elements):
            return None
        names.extend(e.value for e in elements)
    value = small.value
    if any(n in ("item", "tolist", "numpy", "print") for n in names_in(value)):
        return None
    return names


def _binds(stmt, names: set) -> bool:
    """Does `stmt` bind one of `names` (any assignment, loop target, def, import...)?"""
    try:
        tree = ast.parse(code_of(stmt.with_changes(leading_lines=[])).strip() if hasattr(stmt, "leading_lines") else code_of(stmt))
    except SyntaxError:
        return True
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.id in names:
            return True
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in names:
            return True
        if isinstance(n, ast.alias) and (n.asname or n.name).split(".")[0] in names:
            return True
    return False


class AutogradGrad(Transform):
    id = RULE_ID
    description = "torch.autograd.grad(y, x) of a scalar computed in the same block -> mx.grad of a function"
    order = 78  # before train-step (80) reads the block
    hot_attributes = frozenset({"grad"})

    def __init__(self) -> None:
        self.origin: dict = {}
        self.functions: list = []
        self.generated: set = set()  # ids of the generated grad functions (train-step keeps them in a loss region)
        self.inputs: dict = {}  # function name -> names passed as inputs (set by prepare, which a run may skip)

    def applies_to(self, text: str) -> bool:
        return "grad(" in text and "autograd" in text

    def prepare(self, tree: ast.Module, module_scope) -> None:
        # the names passed as inputs are tensors (so `x.requires_grad_()` on them translates)
        self.inputs: dict = {}
        for scope in [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]:
            names: set = set()
            for n in ast.walk(scope):
                if isinstance(n, ast.Call) and ast.unparse(n.func).endswith("autograd.grad"):
                    value = n.args[1] if len(n.args) > 1 else next((k.value for k in n.keywords if k.arg == "inputs"), None)
                    for e in (value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]):
                        if isinstance(e, ast.Name):
                            names.add(e.id)
            if names and scope is not tree:
                self.inputs.setdefault(scope.name, set()).update(names)

    def visit_Module(self, rw, node) -> None:
        self.functions.append(node)

    def visit_FunctionDef(self, rw, node) -> None:
        self.functions.append(node)
        for name in self.inputs.get(node.name.value, ()):
            rw.tensors.mark(name, True)

    def leave_FunctionDef(self, rw, original, updated):
        self.functions.pop()
        return updated

    def visit_SimpleStatementLine(self, rw, node) -> None:
        """In `g = torch.autograd.grad(y.sum(), x)`, `y` is a tensor (torch differentiates only tensors)."""
        small = node.body[0] if len(node.body) == 1 else None
        value = small.value if isinstance(small, cst.Assign) else None
        if isinstance(value, cst.Subscript):
            value = value.value
        if not (isinstance(value, cst.Call) and rw.qualified_name(value.func) == GRAD) or not value.args:
            return
        outputs = next((a.value for a in value.args if a.keyword is not None and a.keyword.value == "outputs"), None)
        outputs = value.args[0].value if outputs is None and value.args[0].keyword is None else outputs
        while isinstance(outputs, cst.Call) and isinstance(outputs.func, cst.Attribute):
            outputs = outputs.func.value
        if isinstance(outputs, cst.Name):
            rw.tensors.mark(outputs.value, True)

    def leave_Call(self, rw, original, updated):
        """`x = expr.requires_grad_(True)` where `x` is an input of torch.autograd.grad in this function: `x = expr`
        (MLX differentiates with respect to a function's arguments; torch required a tensor here)."""
        if not (isinstance(original.func, cst.Attribute) and original.func.attr.value == "requires_grad_"
                and isinstance(updated, cst.Call) and isinstance(updated.func, cst.Attribute)
                and updated.func.attr.value == "requires_grad_"):
            return updated  # the table translated it (a known tensor)
        stmt = rw.statement
        small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else None
        if not (isinstance(small, cst.Assign) and small.value is original and len(small.targets) == 1
                and isinstance(small.targets[0].target, cst.Name)):
            return updated
        function = self.functions[-1] if self.functions else None
        name = function.name.value if isinstance(function, cst.FunctionDef) else None
        if small.targets[0].target.value not in self.inputs.get(name, ()):
            return updated
        if any(a.keyword is not None and a.keyword.value != "requires_grad" for a in original.args) or len(original.args) > 1:
            return updated
        if original.args and not is_name(original.args[0].value, "True"):
            return updated
        rw.drop_flags(predicate=lambda f: f.rule_id in ("Tensor.requires_grad_", "torch.Tensor.requires_grad_"))
        return updated.func.value

    def leave_SimpleStatementLine(self, rw, original, updated):
        self.origin[id(updated)] = original
        return updated

    def _grad_call(self, rw, stmt) -> Optional[tuple]:
        """(target node, the grad call, subscripted [0]) for `target = torch.autograd.grad(...)` (or `[0]`)."""
        if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1 or not isinstance(stmt.body[0], cst.Assign):
            return None
        small = stmt.body[0]
        original = self.origin.get(id(stmt))
        if original is None or len(small.targets) != 1:
            return None
        value = original.body[0].value if isinstance(original.body[0], cst.Assign) else None
        first = False
        if is_integer(index_of(value), "0"):
            value, first = value.value, True
        if not (isinstance(value, cst.Call) and rw.qualified_name(value.func) == GRAD):
            return None
        # arguments as the table pass left them (translated), matched by position with the original's
        updated_value = small.value.value if first and isinstance(small.value, cst.Subscript) else small.value
        if not isinstance(updated_value, cst.Call) or len(updated_value.args) != len(value.args):
            return None
        return small.targets[0].target, updated_value, first

    def leave_IndentedBlock(self, rw, original, updated):
        return self._block(rw, updated)

    def leave_Module(self, rw, original, updated):
        return self._block(rw, updated)

    def _block(self, rw, updated):
        body = list(updated.body)
        changed = False
        i = 0
        while i < len(body):
            found = self._grad_call(rw, body[i])
            if found is None:
                i += 1
                continue
            result = self._translate(rw, body, i, *found)
            if isinstance(result, str):
                self._reword(rw, body[i], result)
                i += 1
                continue
            start, new = result
            body[start:i + 1] = new
            changed = True
            i = start + len(new)
        return updated.with_changes(body=body) if changed else updated

    def _reword(self, rw, stmt, why: str) -> None:
        """The table's flag on an untranslated call says precisely why and what to write (report only: the comment
        above the statement stays the table's)."""
        original = self.origin.get(id(stmt))
        rw.report(original, RULE_ID, "needs-review", f"{why}; {WRITE}", "info", original)

    @staticmethod
    def _arguments(call: cst.Call):
        """(inputs, several inputs?, outputs, grad_outputs or None, create_graph) or why not."""
        args = {}
        for k, a in enumerate(call.args):
            if a.star:
                return "a starred argument"
            key = a.keyword.value if a.keyword is not None else SIGNATURE[k] if k < len(SIGNATURE) else None
            if key is None:
                return "too many arguments"
            args[key] = a.value
        if "outputs" not in args or "inputs" not in args:
            return "outputs or inputs missing"
        for key in ("is_grads_batched", "materialize_grads", "allow_unused"):
            if key in args and not is_name(args[key], "False", "None"):
                return f"{key}={code_of(args[key])} has no MLX form (MLX gives zeros for an unused input)"
        create_graph = args.get("create_graph", cst.Name("False"))
        if not is_name(create_graph, "True", "False", "None"):
            return "create_graph is not a literal True/False"
        create = create_graph.value
        inputs_node = args["inputs"]
        many = isinstance(inputs_node, (cst.List, cst.Tuple))
        elements = [e.value for e in inputs_node.elements] if many else [inputs_node]
        if not elements or not all(isinstance(e, cst.Name) for e in elements):
            return "the inputs are not names (write them as names bound before the computation)"
        inputs = [e.value for e in elements]
        if len(set(inputs)) != len(inputs):
            return "an input appears twice"
        outputs = args["outputs"]
        if isinstance(outputs, (cst.List, cst.Tuple)):
            if len(outputs.elements) != 1:
                return "several outputs (the gradient of their sum weighted by grad_outputs)"
            outputs = outputs.elements[0].value
        grad_outputs = args.get("grad_outputs")
        if isinstance(grad_outputs, (cst.List, cst.Tuple)):
            if len(grad_outputs.elements) != 1:
                return "several grad_outputs"
            grad_outputs = grad_outputs.elements[0].value
        if is_name(grad_outputs, "None"):
            grad_outputs = None
        return inputs, many, outputs, grad_outputs, create

    def _translate(self, rw, body: list, i: int, target, call: cst.Call, first: bool):
        parsed = self._arguments(call)
        if isinstance(parsed, str):
            return parsed
        inputs, many, outputs, grad_outputs, create = parsed
        # the region: plain assignments right before, after the last binding of an input
        region: list = []
        k = i - 1
        while k >= 0 and plain_assignment(body[k]) is not None and not _binds(body[k], set(inputs)):
            region.insert(0, k)
            k -= 1
        assigned: list = []
        for k in region:
            for n in plain_assignment(body[k]):
                if n not in assigned:
                    assigned.append(n)
        out_names = set(names_in(outputs))
        if not out_names & set(assigned) and not out_names & set(inputs):
            return "the output is not computed by the plain assignments right before the call"
        # only what the output needs: statements after the last one it depends on stay where they are
        needed = self._needed(body, region, outputs, grad_outputs)
        if not needed:
            return "the output is not computed by the plain assignments right before the call"
        region = [k for k in region if k >= needed[0]]
        region_stmts = [body[k] for k in region]
        read = set(names_in(outputs)) | set(names_in(grad_outputs) if grad_outputs is not None else ())
        for st in region_stmts:
            read |= set(names_in(st.body[0].value))
        unused = [x for x in inputs if x not in read]
        if unused:
            return f"{', '.join(unused)} is not used in computing the output (torch raises unless allow_unused=True)"
        assigned = [n for k in region for n in plain_assignment(body[k])]
        aux = self._aux(assigned, region_stmts, body[i])
        scope_names = set(names_in(self.functions[-1])) if self.functions else set()
        fn_name = next(n for n in ("grad_fn", "grad_fn_", "autograd_fn") if n not in scope_names)
        scalar = outputs
        if grad_outputs is not None:
            product = cst.BinaryOperation(left=self._paren(outputs), operator=cst.Multiply(), right=self._paren(grad_outputs))
            total = mlx_expr(rw, "mx.sum(PRODUCT)")
            scalar = total.with_changes(args=[total.args[0].with_changes(value=product)])
        out_name = code_of(outputs) if isinstance(outputs, cst.Name) else None
        # the output itself used later (no grad_outputs): it is the value of value_and_grad, not an extra output
        value_target = out_name if grad_outputs is None and out_name in aux else "_"
        aux = [a for a in aux if a != value_target]
        aux_value_only = value_target != "_" and not aux
        returned = cst.Tuple([cst.Element(scalar), *(cst.Element(cst.Name(a)) for a in aux)], lpar=[], rpar=[]) if aux else scalar
        header = mlx_statements(rw, f"def {fn_name}({', '.join(inputs)}):\n    pass\n")[0]
        first_lines = region_stmts[0].leading_lines if region_stmts else body[i].leading_lines
        lead = [line for line in first_lines if not (line.comment is not None and line.comment.value.startswith("# torch2mlx: "))]
        fn_body = [*(st if j else st.with_changes(leading_lines=[]) for j, st in enumerate(region_stmts)),
                   cst.SimpleStatementLine([cst.Return(returned)])]
        fn = header.with_changes(body=header.body.with_changes(body=fn_body), leading_lines=lead)
        argnums = "" if not many else f", argnums=({', '.join(str(j) for j in range(len(inputs)))}{',' if len(inputs) == 1 else ''})"
        transform = "mx.value_and_grad" if aux or aux_value_only else "mx.grad"
        grads = f"{transform}({fn_name}{argnums})({', '.join(inputs)})"
        if aux_value_only:
            pre = f"{value_target}, "
        if aux:
            pre = f"({', '.join(['_' if value_target == '_' else value_target, *aux])}), "
        if aux or aux_value_only:
            grads_name = next(n for n in ("input_grads", "input_grads_", "grads_of_inputs") if n not in scope_names)
            call_text = f"{pre}{grads_name} = {grads}\n"
            grads = grads_name
        else:
            call_text = ""
        if create != "True":
            grads = f"tuple(map(mx.stop_gradient, {grads}))" if many else f"mx.stop_gradient({grads})"
        if not many and not first:
            grads = f"({grads},)"
        elif many and first:
            grads = f"{grads}[0]"
        target_code = code_of(target)
        text = call_text + f"{target_code} = {grads}\n"
        stmts = mlx_statements(rw, text)
        stmts[-1] = stmts[-1].with_changes(leading_lines=[] if region else lead)
        original = self.origin.get(id(body[i]))
        rw.drop_reports(lambda f: f.statement is original and f.rule_id == TABLE_RULE)
        rw.count_conversion()
        self.generated.add(id(fn))
        if not region:
            return i, stmts
        return region[0], [fn, *stmts]

    @staticmethod
    def _paren(node):
        if isinstance(node, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) or node.lpar:
            return node
        return node.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])

    @staticmethod
    def _needed(body: list, region: list, outputs, grad_outputs) -> list:
        """The region statements the output (and grad_outputs) depend on, transitively."""
        want = set(names_in(outputs)) | (set(names_in(grad_outputs)) if grad_outputs is not None else set())
        needed: list = []
        for k in reversed(region):
            names = plain_assignment(body[k])
            if set(names) & want:
                needed.insert(0, k)
                want |= set(names_in(body[k].body[0].value))
        return needed

    def _aux(self, assigned: list, region_stmts: list, grad_stmt) -> list:
        scope = self.functions[-1] if self.functions else None
        everywhere = names_in(scope) if scope is not None else []
        inside: list = names_in(self.origin.get(id(grad_stmt), grad_stmt))
        for st in region_stmts:
            inside.extend(names_in(self.origin.get(id(st), st)))
        return [n for n in assigned if everywhere.count(n) > inside.count(n)]
