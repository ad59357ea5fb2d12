"""Which model does an optimizer update? Read from `opt = torch.optim.X(model.parameters(), ...)`.

MLX writes `optimizer.update(model, grads)` and `nn.value_and_grad(model, loss_fn)`, so the
train-step transform needs the model expression. It is taken from the optimizer's
construction; when the optimizer (or the model) reaches the training function as a
parameter, every call of that function in the file must pass the same names.
"""
from __future__ import annotations

import ast
from typing import Optional

OPTIMIZER_NAMES = frozenset({"SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "ASGD", "LBFGS", "Rprop", "SparseAdam"})


def _model_of_parameters(arg: ast.expr) -> Optional[str]:
    """'model' for `model.parameters()`, and for the parameters that train (fine-tuning with a frozen part):
    `filter(lambda p: p.requires_grad, model.parameters())`, `[p for p in model.parameters() if p.requires_grad]`
    (MLX differentiates only the unfrozen arrays: the freeze-parameters transform freezes the others), else None."""
    if isinstance(arg, ast.Call) and not arg.args and not arg.keywords and isinstance(arg.func, ast.Attribute) and arg.func.attr == "parameters":
        return ast.unparse(arg.func.value)
    if (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and arg.func.id == "filter" and len(arg.args) == 2
            and not arg.keywords and isinstance(arg.args[0], ast.Lambda) and len(arg.args[0].args.args) == 1):
        lam = arg.args[0]
        if ast.unparse(lam.body) == f"{lam.args.args[0].arg}.requires_grad":
            return _model_of_parameters(arg.args[1])
    if isinstance(arg, ast.ListComp) and len(arg.generators) == 1 and isinstance(arg.elt, ast.Name):
        gen = arg.generators[0]
        if (isinstance(gen.target, ast.Name) and gen.target.id == arg.elt.id and len(gen.ifs) == 1
                and ast.unparse(gen.ifs[0]) == f"{arg.elt.id}.requires_grad" and not gen.is_async):
            return _model_of_parameters(gen.iter)
    return None


def _dotted(node: ast.expr) -> bool:
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name)


def group_model(params: ast.expr, before: list) -> Optional[str]:
    """The model an optimizer built from parameter groups updates: the longest common dotted prefix of
    the receivers of `.parameters()` / `.named_parameters()` in its params argument and in the statements
    `before` it in its function (`model` for `model.backbone.parameters()` and `model.head.parameters()`)."""
    receivers: list = []
    for root in [params, *before]:
        for n in ast.walk(root):
            if (isinstance(n, ast.Call) and not n.args and not n.keywords and isinstance(n.func, ast.Attribute)
                    and n.func.attr in ("parameters", "named_parameters")):
                if not _dotted(n.func.value):
                    return None
                receivers.append(ast.unparse(n.func.value).split("."))
    common: list = []
    for parts in zip(*receivers):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(common) or None


def optimizer_params(call: ast.Call) -> Optional[ast.expr]:
    return call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "params"), None)


def optimizer_constructions(tree, nested: bool = True):
    """(assignment, its call, the statements before it in its function) for every `x = torch.optim.X(...)`
    in `tree` (a module or a function, nested functions included)."""
    scopes = [tree, *(n for n in ast.walk(tree) if nested and n is not tree and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]
    for scope in scopes:
        stack = list(scope.body)
        mine: list = []
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            if isinstance(node, ast.stmt):
                mine.append(node)
            stack.extend(ast.iter_child_nodes(node))
        for node in mine:
            if not isinstance(node, (ast.Assign, ast.AnnAssign)) or not isinstance(node.value, ast.Call):
                continue
            func = node.value.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name in OPTIMIZER_NAMES:
                yield node, node.value, [s for s in mine if s.end_lineno < node.lineno]


def optimizer_models(tree: ast.Module) -> dict:
    """{optimizer target code: {model code, ...}} for every optimizer construction in the file (for one
    built from parameter groups, the model `group_model` finds)."""
    found: dict = {}
    for node, call, before in optimizer_constructions(tree):
        params = optimizer_params(call)
        model = _model_of_parameters(params) if params is not None else None
        if model is None and params is not None:
            model = group_model(params, before)
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for t in targets:
            found.setdefault(ast.unparse(t), set()).add(model)
    _returned_by_methods(tree, found)
    _passed_as_parameters(tree, found)
    return found


def _passed_as_parameters(tree: ast.Module, found: dict) -> None:
    """`train_model(model, ..., optimizer_ft, ...)` into `def train_model(model, ..., optimizer, ...)`: the parameter
    is an optimizer of the callee's parameter that every call passes the model's root for (`model` here). Each call
    of the function in the file must agree; the set is a PassedOptimizer, which records that the name came this way."""
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for fn in functions:
        params = [a.arg for a in [*fn.args.posonlyargs, *fn.args.args]]
        if not params or params[0] == "self":
            continue
        sites = _call_sites(tree, fn.name, False)
        if not sites:
            continue
        for p in params:
            if p in found:
                continue
            models = set()
            for site in sites:
                passed = _passed(site, params, p)
                known = found.get(passed) if passed is not None and passed != p else None
                if not known or None in known or len(known) != 1:
                    models = None
                    break
                model = next(iter(known))
                root = model.split(".")[0]
                callee = [q for q in params if _passed(site, params, q) == root]
                if len(callee) != 1:
                    models = None
                    break
                models.add(callee[0] + model[len(root):])
            if models and len(models) == 1:
                found[p] = PassedOptimizer(models)


class PassedOptimizer(set):
    """The models of an optimizer that reaches a function as a parameter of another name (optimizer_models)."""


def _returned_by_methods(tree: ast.Module, found: dict) -> None:
    """nanoGPT's `optimizer = model.configure_optimizers(...)`: a method of a class that builds an optimizer over
    `self`'s parameters (or a sub-module's) and returns it gives, at each `x = obj.method(...)`, the model `obj`
    (`obj.sub`). The method's own local name then no longer counts for `self` (it would be a second model)."""
    methods: dict = {}
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for fn in cls.body:
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or not fn.args.args or fn.args.args[0].arg != "self":
                continue
            returns = {ast.unparse(r.value) for r in ast.walk(fn) if isinstance(r, ast.Return) and r.value is not None}
            for node, call, before in optimizer_constructions(fn, nested=False):
                params = optimizer_params(call)
                model = _model_of_parameters(params) if params is not None else None
                if model is None and params is not None:
                    model = group_model(params, before)
                target = ast.unparse(node.targets[0]) if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
                if model and (model == "self" or model.startswith("self.")) and target in returns and len(returns) == 1:
                    methods[fn.name] = (model[len("self"):], target)
    if not methods:
        return
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Attribute) and node.value.func.attr in methods):
            continue
        receiver = node.value.func.value
        if not _dotted(receiver) or ast.unparse(receiver).split(".")[0] == "self":
            continue
        suffix, local = methods[node.value.func.attr]
        target = ast.unparse(node.targets[0])
        models = found.setdefault(target, set())
        if target == local:
            models.discard(f"self{suffix}")
        models.add(ast.unparse(receiver) + suffix)


def grouped_optimizers(tree: ast.Module) -> set:
    """Targets of optimizers built from parameter groups (the generated ParamGroupOptimizer), directly or through a
    method returning one (`optimizer = model.configure_optimizers(...)`)."""
    grouped: set = set()
    methods: set = set()
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for fn in (f for f in cls.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))):
            returns = {ast.unparse(r.value) for r in ast.walk(fn) if isinstance(r, ast.Return) and r.value is not None}
            for node, call, _ in optimizer_constructions(fn, nested=False):
                params = optimizer_params(call)
                if params is not None and _model_of_parameters(params) is None and isinstance(node, ast.Assign):
                    if ast.unparse(node.targets[0]) in returns:
                        methods.add(fn.name)
    for node, call, _ in optimizer_constructions(tree):
        params = optimizer_params(call)
        if params is not None and _model_of_parameters(params) is None:
            grouped.update(ast.unparse(t) for t in (node.targets if isinstance(node, ast.Assign) else [node.target]))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Attribute) and node.value.func.attr in methods):
            grouped.add(ast.unparse(node.targets[0]))
    return grouped


def _call_sites(tree: ast.Module, name: str, method: bool) -> list:
    """Calls of function `name` (as `name(...)`), or of method `name` (as `obj.name(...)`)."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and (
        (not method and isinstance(n.func, ast.Name) and n.func.id == name)
        or (method and isinstance(n.func, ast.Attribute) and n.func.attr == name))]


def _passed(call: ast.Call, params: list, name: str) -> Optional[str]:
    """Source of the argument `call` passes for parameter `name` (None: not bindable / not passed)."""
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return None
    for k in call.keywords:
        if k.arg == name:
            return ast.unparse(k.value)
    index = params.index(name)
    return ast.unparse(call.args[index]) if index < len(call.args) else None


def _built_here(function: ast.FunctionDef, model: str) -> set:
    """Names assigned `torch.optim.X(model.parameters(), ...)` (or parameter groups of `model`) in `function`
    (not in nested functions)."""
    found: set = set()
    for node, call, before in optimizer_constructions(function, nested=False):
        params = optimizer_params(call)
        built = _model_of_parameters(params) if params is not None else None
        if built is None and params is not None:
            built = group_model(params, before)
        if built == model and isinstance(node, ast.Assign) and len(node.targets) == 1:
            found.add(ast.unparse(node.targets[0]))
    return found


def model_for(optimizer: str, found: dict, tree: ast.Module, function: Optional[ast.FunctionDef]) -> tuple:
    """(model code, None) or (None, why) for the optimizer expression `optimizer` used in `function`."""
    models = found.get(optimizer)
    if not models:
        return None, f"no `{optimizer} = torch.optim.X(model.parameters(), ...)` in this file says which model `{optimizer}` updates"
    if None in models or len(models) != 1:
        return None, f"`{optimizer}` is built from something other than one `model.parameters()` (parameter groups or a subset): MLX updates the whole model given to optimizer.update"
    model = next(iter(models))
    if function is None:
        return model, None
    params = [a.arg for a in [*function.args.posonlyargs, *function.args.args]]
    roots = {optimizer.split(".")[0], model.split(".")[0]}
    passed_in = [r for r in roots if r in params and r != "self"]
    if optimizer in _built_here(function, model) and optimizer.split(".")[0] not in params:
        passed_in = []  # `opt = X(model.parameters())` in this function: whatever `model` is, opt updates it
    if not passed_in:
        return model, None
    method = bool(params) and params[0] == "self"
    sites = _call_sites(tree, function.name, method)
    if not sites:
        return None, f"`{function.name}` receives {', '.join(passed_in)} as parameters and no call in this file shows what is passed"
    if method:
        params = params[1:]
    for site in sites:
        for root in passed_in:
            if isinstance(found.get(optimizer.split(".")[0]), PassedOptimizer):
                continue  # an optimizer passed under another name: each call's optimizer and model checked by _passed_as_parameters
            if _passed(site, params, root) != root:
                return None, f"a call of `{function.name}` passes something other than `{root}` for `{root}`"
    return model, None


class FunctionPath:
    """Transform mixin: `self.path`, the names of the functions and classes around the node being converted
    (the key of facts read from the `ast` by function, as `function_blocks` paths them)."""

    path: list

    def visit_FunctionDef(self, rw, node) -> None:
        self.path.append(node.name.value)

    def leave_FunctionDef(self, rw, original, updated):
        self.path.pop()
        return updated

    visit_ClassDef = visit_FunctionDef
    leave_ClassDef = leave_FunctionDef
