"""Optimizers built from parameter groups -> one MLX optimizer per group (id `optim-groups`).

What it does
    ::

        decay, no_decay = [], []
        for n, p in model.named_parameters():                  for n, p in named_parameters(model):
            (no_decay if p.ndim == 1 else decay).append(p)          (no_decay if p.ndim == 1 else decay).append(p)
        opt = torch.optim.AdamW(                            ->  opt = ParamGroupOptimizer(model, [...the same groups...],
            [{"params": decay, "weight_decay": 0.05},               lambda lr=1e-3, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01:
             {"params": no_decay, "weight_decay": 0.0}],            optim.AdamW(learning_rate=lr, betas=betas, eps=eps,
            lr=1e-3)                                                            weight_decay=weight_decay, bias_correction=True))

    `ParamGroupOptimizer` (a generated `optim.MultiOptimizer`) finds, when built, the path of
    every array a group holds in `model.parameters()` (by identity) and gives each group its own
    optimizer, made with the group's options over the constructor's (torch's defaults where
    neither says); parameters of no group are left unchanged. `model.named_parameters()` becomes
    `named_parameters(model)` (a generated helper, `tree_flatten(model.parameters())`).
Why
    MLX optimizers have no parameter groups; a MultiOptimizer whose filters test the parameter
    path is the same update group by group (each group's state, step count and options its own).
    Membership is decided by identity when the optimizer is built, so whatever code built the
    groups (name tests, `p.ndim`, sub-modules' `.parameters()`) selects the same parameters.
Left in place (flagged) when
    the optimizer is not SGD/Adam/AdamW/RMSprop/Adagrad, a literal group names an option that
    optimizer has no MLX equivalent for, the table flagged the constructor, or no model can be
    read (the receivers of `.parameters()` / `.named_parameters()` before it share no prefix).
Info
    `named_parameters(model)` yields MLX paths: torch's names except under nn.Sequential (MLX's
    holds its layers in `layers`: `net.layers.0.weight` for `net.0.weight`); BatchNorm running
    statistics are among MLX parameters (they get no gradient, so groups built from them are inert).
"""
from __future__ import annotations

import ast
from typing import Optional

import libcst as cst

from torch2mlx.binding import code_of
from torch2mlx.template import sentinel
from torch2mlx.transforms import Transform
from torch2mlx.transforms.codegen import mlx_expr, mlx_statements
from torch2mlx.transforms.training.scan import FunctionPath, _model_of_parameters, group_model, optimizer_constructions, optimizer_params

RULE_ID = "optim-groups"

# torch name=default of the options a group may set, the MLX constructor ({lr}: the learning rate expression)
FACTORIES = {
    "SGD": ("lr=0.001, momentum=0, weight_decay=0, nesterov=False",
            "optim.SGD(learning_rate={lr}, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)"),
    "Adam": ("lr=0.001, betas=(0.9, 0.999), eps=1e-08", "optim.Adam(learning_rate={lr}, betas=betas, eps=eps, bias_correction=True)"),
    "AdamW": ("lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01",
              "optim.AdamW(learning_rate={lr}, betas=betas, eps=eps, weight_decay=weight_decay, bias_correction=True)"),
    "RMSprop": ("lr=0.01, alpha=0.99, eps=1e-08", "optim.RMSprop(learning_rate={lr}, alpha=alpha, eps=eps)"),
    "Adagrad": ("lr=0.01, eps=1e-10", "optim.Adagrad(learning_rate={lr}, eps=eps)"),
}
MLX_ONLY = frozenset({"bias_correction"})

PARAM_GROUPS = '''
class ParamGroupOptimizer(optim.MultiOptimizer):
    """An optimizer over parameter groups: one optimizer per group, make(**options) with the group's options
    over the constructor's, updating the parameters the group holds (found by identity in model.parameters()
    when built); parameters of no group are left unchanged, as they are outside the original optimizer."""

    def __init__(self, model, params, make):
        from mlx.utils import tree_flatten

        paths = {id(v): k for k, v in tree_flatten(model.parameters())}
        if isinstance(params, dict) and "params" in params:
            params = [params]
        elif isinstance(params, (dict, mx.array)):
            params = [{"params": params}]
        else:
            params = list(params)
            if not all(isinstance(g, dict) for g in params):
                params = [{"params": params}]
        optimizers, self.paths, seen = [], [], set()
        for group in params:
            held = group["params"]
            held = [held] if isinstance(held, mx.array) else [v for _, v in tree_flatten(held)] if isinstance(held, dict) else held
            members = set()
            for p in held:
                if id(p) not in paths:
                    raise ValueError("a parameter group holds an array that is not a parameter of the model")
                members.add(paths[id(p)])
            if members & seen:
                raise ValueError("some parameters appear in more than one parameter group")
            seen |= members
            optimizers.append(make(**{k: v for k, v in group.items() if k != "params"}))
            self.paths.append(members)

        class KeepParameters(optim.Optimizer):
            def init_single(self, parameter, state):
                pass

            def apply_single(self, gradient, parameter, state):
                return parameter

        filters = [lambda path, _, members=members: path in members for members in self.paths]
        super().__init__([*optimizers, KeepParameters()], filters)
        self.group_optimizers = optimizers  # what the generated LRScheduler / ReduceLROnPlateau set, group by group

    @property
    def learning_rate(self):
        return self.optimizers[0].learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if len({o.learning_rate.item() for o in self.optimizers[:-1]}) > 1:
            raise ValueError("the parameter groups have different learning rates: set each group's "
                             "optimizer.optimizers[i].learning_rate")
        for o in self.optimizers:
            o.learning_rate = value
'''

NAMED_PARAMETERS = '''
def named_parameters(module):
    """module.named_parameters() for an MLX module: (path, array) pairs of module.parameters()."""
    from mlx.utils import tree_flatten

    return tree_flatten(module.parameters())
'''
NAMES_NOTE = ("named_parameters(model) yields MLX parameter paths: torch's names except under nn.Sequential (MLX's keeps "
              "its layers in `layers`: `net.layers.0.weight` for `net.0.weight`), and BatchNorm running statistics are "
              "among them; name tests that depend on either select other parameters")


def _dump(node: cst.CSTNode) -> Optional[str]:
    try:
        parsed = ast.parse(code_of(node))
    except SyntaxError:
        return None
    return ast.dump(parsed.body[0]) if len(parsed.body) == 1 else None


def _literal_group_keys(params: ast.expr) -> set:
    """The option names of literal group dicts (`[{"params": a, "lr": 0.1}, ...]`)."""
    keys: set = set()
    if isinstance(params, (ast.List, ast.Tuple)):
        for element in params.elts:
            if isinstance(element, ast.Dict):
                keys.update(k.value for k in element.keys if isinstance(k, ast.Constant) and isinstance(k.value, str))
    return keys - {"params"}


class OptimizerGroups(FunctionPath, Transform):
    id = RULE_ID
    description = "torch.optim.X(parameter groups) -> ParamGroupOptimizer (one MLX optimizer per group)"
    hot_attributes = frozenset({"named_parameters"})
    order = 84  # before lr-schedule (85), which leaves a statement this transform rewrote alone

    def __init__(self) -> None:
        self.groups: dict = {}  # (function path, dump of the constructor statement) -> (kind, model or None, params ast)
        self.path: list = []
        self.params: dict = {}  # id(original params expression) -> its translation
        self.rewritten: set = set()  # ids of original statements rewritten here

    def applies_to(self, text: str) -> bool:
        return "named_parameters" in text or "params" in text or "optim" in text

    def visit_Module(self, rw, node) -> None:
        tree = ast.parse(node.code)
        paths = _function_paths(tree)
        for stmt, call, before in optimizer_constructions(tree):
            params = optimizer_params(call)
            if params is None or _model_of_parameters(params) is not None:
                continue
            func = call.func
            kind = func.attr if isinstance(func, ast.Attribute) else func.id
            self.groups[(paths.get(id(stmt), ()), ast.dump(stmt))] = (kind, group_model(params, before), params)

    def leave_Arg(self, rw, original, updated):
        self.params[id(original.value)] = updated.value
        return updated

    def leave_Call(self, rw, original, updated):
        func = original.func
        if (isinstance(func, cst.Attribute) and func.attr.value == "named_parameters" and not original.args
                and rw.qualified_name(func.value) is None and not rw.tensors.is_tensor(func.value)):
            helper = rw.helper("named_parameters", lambda: mlx_statements(rw, NAMED_PARAMETERS))
            rw.flag(original, RULE_ID, "semantics-differ", NAMES_NOTE, "info")
            rw.count_conversion()
            return cst.Call(func=cst.Name(helper), args=[cst.Arg(updated.func.value)])
        return updated

    def leave_SimpleStatementLine(self, rw, original, updated):
        key = (tuple(self.path), _dump(original))
        found = self.groups.get(key)
        if found is None:
            return updated
        kind, model, params = found
        why = self._why_not(rw, kind, model, params, original, updated)
        if isinstance(why, str):
            message = (f"{why}: MLX optimizers have no parameter groups; write one optimizer per group with "
                       "optim.MultiOptimizer and filters over the parameter paths")
            rw.report(original, RULE_ID, "needs-review", message, "warning", original)
            line = cst.EmptyLine(comment=cst.Comment(f"# torch2mlx: {RULE_ID}: {message}"))
            return updated.with_changes(leading_lines=[*updated.leading_lines, line])
        small = updated.body[0]
        self.rewritten.add(id(original))
        rw.count_conversion()
        return updated.with_changes(body=[small.with_changes(value=why)])

    def _why_not(self, rw, kind, model, params, original, updated):
        """The rewritten constructor call, or why the groups cannot be translated."""
        if kind not in FACTORIES:
            return f"torch.optim.{kind} has no MLX translation for parameter groups"
        if model is None:
            return "no model found for the parameter groups (no common owner of the .parameters() / .named_parameters() before it)"
        small = updated.body[0]
        call = small.value if isinstance(small, (cst.Assign, cst.AnnAssign)) else None
        translated = (isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) and isinstance(call.func.value, cst.Name)
                      and call.func.value.value == sentinel("optim"))
        if not translated or any(f.severity != "info" for f in rw.flags()):
            return "the optimizer's arguments are not all translated"
        signature, body = FACTORIES[kind]
        args = ast.parse(f"def f({signature}): pass").body[0].args
        defaults = {a.arg: ast.unparse(d) for a, d in zip(args.args, args.defaults)}
        for arg in call.args:
            name = "lr" if arg.keyword.value == "learning_rate" else arg.keyword.value
            if name in MLX_ONLY:
                continue
            if name not in defaults:
                return f"`{name}` is not an option of a parameter group here"
            defaults[name] = code_of(arg.value)
        unknown = sorted(_literal_group_keys(params) - set(defaults))
        if unknown:
            return f"a parameter group sets {', '.join(unknown)}, which MLX's {kind} has no option for"
        original_call = original.body[0].value
        arg = original_call.args[0] if original_call.args and original_call.args[0].keyword is None else next(
            a for a in original_call.args if a.keyword is not None and a.keyword.value == "params")
        groups = self.params.get(id(arg.value))
        if groups is None:
            return "the parameter groups were not seen"
        lr = "lr"
        sched = rw.transform("lr-schedule")
        plan = sched.plans.get(("optimizer", tuple(self.path), _dump(original))) if sched is not None else None
        if plan is not None and not isinstance(plan.build, str):
            lr = plan.build("lr")  # a per-step schedule: each group's from its own lr
        factory = f"lambda {', '.join(f'{k}={v}' for k, v in defaults.items())}: {body.format(lr=lr)}"
        helper = rw.helper("ParamGroupOptimizer", lambda: mlx_statements(rw, PARAM_GROUPS))
        new = mlx_expr(rw, f"{helper}({model}, GROUPS, {factory})")
        return new.with_changes(args=[new.args[0], new.args[1].with_changes(value=groups), new.args[2]])


def _function_paths(tree: ast.Module) -> dict:
    """{id(statement): the names of the functions and classes around it}."""
    out: dict = {}

    def walk(node, path):
        for child in ast.iter_child_nodes(node):
            scope = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            if isinstance(child, ast.stmt):
                out[id(child)] = path
            walk(child, (*path, child.name) if scope else path)

    walk(tree, ())
    return out
