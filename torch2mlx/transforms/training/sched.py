"""Learning-rate schedulers -> an MLX schedule passed as the optimizer's learning_rate (id `lr-schedule`).

What it does
    ::

        opt = torch.optim.SGD(model.parameters(), lr=0.1)        opt = optim.SGD(learning_rate=optim.step_decay(0.1, 0.5, 3))
        sched = torch.optim.lr_scheduler.StepLR(opt, 3, 0.5)  ->
        for x, y in batches:                                     for x, y in batches:
            ...train step...                                         ...value_and_grad / update...
            opt.step()
            sched.step()

    StepLR -> optim.step_decay, ExponentialLR -> optim.exponential_decay, MultiStepLR ->
    optim.join_schedules of constants, LinearLR (linear warm-up) -> optim.linear_schedule,
    CosineAnnealingLR -> torch's closed form (periodic past T_max, where optim.cosine_decay
    would stay at eta_min), LambdaLR -> base_lr * lr_lambda(step), OneCycleLR with
    cycle_momentum=False -> optim.join_schedules of its two annealing phases.
Why
    MLX schedules are functions of the optimizer's update count; torch schedulers count
    `scheduler.step()` calls. The two counts are the same, so the translation is exact, only
    when every `opt.step()` of the function is followed by one `sched.step()` in the same
    block (a per-step scheduler). The usual per-epoch `sched.step()` is flagged: the number
    of updates in an epoch is not known from the source.
Otherwise (stepped per epoch, built away from the optimizer, get_last_lr / state_dict used,
    ReduceLROnPlateau) the scheduler becomes a generated class (lr_helpers.py) that sets
    optimizer.learning_rate at each step() exactly as torch's scheduler sets the groups' lr.
Left in place (flagged, with the reason) when
    `sched.step()` is not next to every `opt.step()`, the scheduler is used for anything
    other than `step()` (get_last_lr, passing it to a function, state_dict), it is not built
    right after its optimizer in the same block, an argument is not recognised
    (last_epoch, lists of lambdas, non-literal milestones), OneCycleLR cycles the momentum
    (its default) or has three phases, or it is ReduceLROnPlateau, SequentialLR,
    CosineAnnealingWarmRestarts, CyclicLR.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
from typing import Callable, Optional, Union

import libcst as cst

from torch2mlx.binding import code_of
from torch2mlx.template import sentinel
from torch2mlx.transforms import Transform
from torch2mlx.transforms.codegen import mlx_expr, mlx_statements
from torch2mlx.transforms.training.lr_helpers import LR_SCHEDULER, PLATEAU_ARGS, REDUCE_ON_PLATEAU
from torch2mlx.transforms.training.scan import OPTIMIZER_NAMES, FunctionPath

RULE_ID = "lr-schedule"
PREFIX = "torch.optim.lr_scheduler."
GENERIC = " (MLX schedules are passed as the optimizer's learning_rate and count optimizer.update calls)"


def _sig(text: str) -> inspect.Signature:
    namespace: dict = {}
    exec(f"def f({text}): pass", namespace)  # noqa: S102 - our own constant signatures
    return inspect.signature(namespace["f"])


SIGNATURES = {
    "StepLR": _sig("optimizer, step_size, gamma='0.1', last_epoch='-1'"),
    "MultiStepLR": _sig("optimizer, milestones, gamma='0.1', last_epoch='-1'"),
    "ExponentialLR": _sig("optimizer, gamma, last_epoch='-1'"),
    "CosineAnnealingLR": _sig("optimizer, T_max, eta_min='0.0', last_epoch='-1'"),
    "LambdaLR": _sig("optimizer, lr_lambda, last_epoch='-1'"),
    "OneCycleLR": _sig("optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start='0.3', anneal_strategy=\"'cos'\","
                       " cycle_momentum='True', base_momentum='0.85', max_momentum='0.95', div_factor='25.0', final_div_factor='10000.0',"
                       " three_phase='False', last_epoch='-1'"),
    "LinearLR": _sig("optimizer, start_factor='1.0 / 3', end_factor='1.0', total_iters='5', last_epoch='-1'"),
}


def _wrap(code: str) -> str:
    """Parenthesised unless a name, attribute or number (it is spliced into arithmetic)."""
    node = ast.parse(code, mode="eval").body
    simple = isinstance(node, (ast.Name, ast.Attribute, ast.Constant)) and not (
        isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and code.startswith("-"))
    return code if simple else f"({code})"


def _milestones(code: str) -> Union[list, str]:
    node = ast.parse(code, mode="eval").body
    if not isinstance(node, (ast.List, ast.Tuple)) or not node.elts:
        return "milestones is not a literal list"
    values = [e.value for e in node.elts if isinstance(e, ast.Constant) and type(e.value) is int]
    if len(values) != len(node.elts) or values != sorted(set(values)) or values[0] < 1:
        return "milestones is not a list of increasing positive integers"
    return values


def schedule_builder(kind: str, args: list, kwargs: dict) -> Union[Callable[[str], str], str]:
    """A function base_lr code -> MLX schedule code, or the reason there is none. Arguments are source strings."""
    if kind not in SIGNATURES:
        return f"{kind} has no exact MLX schedule here"
    try:
        bound = SIGNATURES[kind].bind(*args, **kwargs)
    except TypeError:
        return f"{kind} arguments not recognised"
    bound.apply_defaults()
    a = {k: _wrap(v) for k, v in bound.arguments.items() if v is not None}
    if bound.arguments["last_epoch"] != "-1":
        return "last_epoch (resuming a schedule) is not translated"
    if kind == "StepLR":
        return lambda lr: f"optim.step_decay({lr}, {a['gamma']}, {a['step_size']})"
    if kind == "ExponentialLR":
        return lambda lr: f"optim.exponential_decay({lr}, {a['gamma']})"
    if kind == "LinearLR":
        return lambda lr: f"optim.linear_schedule({_wrap(lr)} * {a['start_factor']}, {_wrap(lr)} * {a['end_factor']}, {a['total_iters']})"
    if kind == "CosineAnnealingLR":
        return lambda lr: (f"lambda step, base_lr={lr}, t_max={a['T_max']}, eta_min={a['eta_min']}: "
                           "eta_min + (base_lr - eta_min) * (1 + mx.cos(mx.pi * step / t_max)) / 2")
    if kind == "LambdaLR":
        node = ast.parse(bound.arguments["lr_lambda"], mode="eval").body
        if isinstance(node, (ast.List, ast.Tuple)):
            return "one lr_lambda per parameter group: MLX has no parameter groups"
        return lambda lr: f"lambda step, base_lr={lr}, lr_lambda={a['lr_lambda']}: mx.array(base_lr * lr_lambda(step.item()))"
    if kind == "OneCycleLR":
        return _one_cycle(bound.arguments, a)
    milestones = _milestones(bound.arguments["milestones"])
    if isinstance(milestones, str):
        return milestones
    gamma = a["gamma"]
    return lambda lr: ("optim.join_schedules([" + ", ".join(
        [f"optim.exponential_decay({lr}, 1.0)"] + [f"optim.exponential_decay({_wrap(lr)} * {gamma} ** {k}, 1.0)" for k in range(1, len(milestones) + 1)])
        + f"], {milestones})")


def _one_cycle(raw: dict, a: dict) -> Union[Callable[[str], str], str]:
    """Two phases, initial -> max_lr -> min_lr; torch's phase 1 ends at step pct_start * total - 1 (a float)."""
    if raw["cycle_momentum"] != "False":
        return "OneCycleLR cycles the momentum too (cycle_momentum=True, the default): MLX schedules only the learning rate"
    if raw["three_phase"] != "False":
        return "OneCycleLR(three_phase=True) is not translated"
    anneal = {"'cos'": "optim.cosine_decay", '"cos"': "optim.cosine_decay", "'linear'": "optim.linear_schedule", '"linear"': "optim.linear_schedule"}
    if raw["anneal_strategy"] not in anneal:
        return "anneal_strategy is not a literal 'cos' or 'linear'"
    if raw["total_steps"] is not None:
        total = a["total_steps"]
    elif raw["epochs"] is not None and raw["steps_per_epoch"] is not None:
        total = f"({a['epochs']} * {a['steps_per_epoch']})"
    else:
        return "OneCycleLR needs total_steps or epochs and steps_per_epoch"
    top, start = a["max_lr"], f"{a['max_lr']} / {a['div_factor']}"
    end, turn = f"{start} / {a['final_div_factor']}", f"{a['pct_start']} * {total} - 1"
    f = anneal[raw["anneal_strategy"]]
    if f == "optim.cosine_decay":
        phases = f"{f}({start}, {turn}, {top}), {f}({top}, {total} - 1 - ({turn}), {end})"
    else:
        phases = f"{f}({start}, {top}, {turn}), {f}({top}, {end}, {total} - 1 - ({turn}))"
    return lambda lr: f"optim.join_schedules([{phases}], [{turn}])"


@dataclasses.dataclass
class Plan:
    scheduler: str
    optimizer: str
    build: Union[Callable[[str], str], str]  # str: why it is not inlined into the optimizer (flagged unless helper)
    movable: bool = False  # not inlined only because of where it is built or stepped: a helper class can do it
    helper: Optional[tuple] = None  # (class name, replacement call code)


def _helper_plan(plan: Plan, call: ast.Call, kind: str) -> None:
    """Give `plan` a helper class call when the scheduler can run as an object setting optimizer.learning_rate."""
    opt_node = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "optimizer"), None)
    if opt_node is None:
        return
    if kind == "ReduceLROnPlateau":
        kwargs = {k.arg: k.value for k in call.keywords}
        if len(call.args) > len(PLATEAU_ARGS) or any(k not in (*PLATEAU_ARGS, "verbose") for k in kwargs):
            plan.build = "ReduceLROnPlateau arguments not recognised"
            return
        if isinstance(kwargs.get("min_lr", call.args[7] if len(call.args) > 7 else None), (ast.List, ast.Tuple)):
            plan.build = "one min_lr per parameter group: MLX has no parameter groups"
            return
        plan.helper = ("ReduceLROnPlateau", None)
        return
    args = [ast.unparse(a) for a in call.args]
    kwargs = {k.arg: ast.unparse(k.value) for k in call.keywords if k.arg is not None}
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        plan.build = "arguments passed with * or **"
        return
    if any("torch" in v for v in [*args[1:], *(v for k, v in kwargs.items() if k != "optimizer")]):
        plan.build = "an argument uses torch"
        return
    build = schedule_builder(kind, args, kwargs)
    if isinstance(build, str):
        plan.build = build
        return
    plan.helper = ("LRScheduler", f"LRScheduler(OPTIMIZER, lambda base_lr: {build('base_lr')})")


def _tail(func: ast.expr) -> Optional[str]:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _step_of(stmt: ast.stmt) -> Optional[str]:
    """'x' for the statement `x.step()`."""
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and not stmt.value.args and not stmt.value.keywords:
        func = stmt.value.func
        if isinstance(func, ast.Attribute) and func.attr == "step" and isinstance(func.value, ast.Name):
            return func.value.id
    return None


def function_blocks(node: ast.AST, path: tuple, out: list, owner: Optional[ast.AST] = None) -> None:
    """(function path, statement list, function node) for every block, nested functions with a longer path."""
    owner = owner or node
    for field in ("body", "orelse", "finalbody", "handlers"):
        block = getattr(node, field, None)
        if isinstance(block, list) and block and isinstance(block[0], (ast.stmt, ast.ExceptHandler)):
            if isinstance(block[0], ast.stmt):
                out.append((path, block, owner))
            for child in block:
                scope = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                function_blocks(child, (*path, child.name) if scope else path, out, child if scope else owner)


def _scheduler_plan(target: str, call: ast.Call, body: list, index: int, path: tuple, blocks: list, owner: ast.AST) -> Plan:
    kind = _tail(call.func)
    args = [ast.unparse(a) for a in call.args]
    kwargs = {k.arg: ast.unparse(k.value) for k in call.keywords if k.arg is not None}
    opt_node = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "optimizer"), None)
    optimizer = opt_node.id if isinstance(opt_node, ast.Name) else ""
    plan = Plan(target, optimizer, "")
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        plan.build = "arguments passed with * or **"
        return plan
    if any("torch" in s for s in [*args, *kwargs.values()]):
        plan.build = "an argument uses torch"
        return plan
    ctor = next((i for i in range(index - 1, -1, -1) if isinstance(body[i], ast.Assign) and len(body[i].targets) == 1
                 and isinstance(body[i].targets[0], ast.Name) and body[i].targets[0].id == optimizer), None)
    if not optimizer or ctor is None or not isinstance(body[ctor].value, ast.Call) or _tail(body[ctor].value.func) not in OPTIMIZER_NAMES:
        plan.build = "the scheduler is not built right after `opt = torch.optim.X(...)` in the same block"
        plan.movable = True
        return plan
    read = {n.id for n in ast.walk(call) if isinstance(n, ast.Name)}
    for stmt in body[ctor + 1:index]:
        names = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)}
        if optimizer in names or any(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.id in read for n in ast.walk(stmt)):
            plan.build = f"statements between the optimizer and the scheduler use `{optimizer}` or set the scheduler's arguments"
            plan.movable = True
            return plan
    uses = [n for n in ast.walk(owner) if isinstance(n, ast.Name) and n.id == target]
    inside = [(p, b) for p, b, _ in blocks if p[:len(path)] == path]
    steps = [(p, b, i) for p, b in inside for i, s in enumerate(b) if _step_of(s) == target]
    if len(uses) != len(steps) + 1:
        plan.build = f"`{target}` is used for more than step() (get_last_lr, state_dict, passed to a function or assigned twice)"
        plan.movable = True
        return plan
    if not steps:
        plan.build = f"`{target}.step()` is never called"
        plan.movable = True
        return plan
    opt_steps = [(p, b, i) for p, b in inside for i, s in enumerate(b) if _step_of(s) == optimizer and p == path]
    if any(b[i].lineno < call.lineno for _, b, i in steps):
        plan.build = f"`{target}.step()` comes before the scheduler is built"
        plan.movable = True
        return plan
    for p, b, i in steps:
        if p != path or [_step_of(s) for s in b].count(target) != 1 or [_step_of(s) for s in b].count(optimizer) != 1:
            plan.build = (f"`{target}.step()` is not called once per `{optimizer}.step()` in the same block (a per-epoch scheduler):"
                          " multiply its step counts by the updates per epoch by hand")
            plan.movable = True
            return plan
        if [_step_of(s) for s in b].index(optimizer) > i:
            plan.build = f"`{target}.step()` comes before `{optimizer}.step()`"
            plan.movable = True
            return plan
    if len(opt_steps) != len(steps):
        plan.build = f"some `{optimizer}.step()` has no `{target}.step()` next to it"
        plan.movable = True
        return plan
    plan.build = schedule_builder(kind, args, kwargs)
    return plan


def _torch_scheduler_names(tree: ast.Module) -> tuple:
    """(expressions that name the torch.optim.lr_scheduler module, names imported from it)."""
    modules, names = {"torch.optim.lr_scheduler"}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "torch.optim.lr_scheduler":
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "torch.optim":
            modules.update(a.asname or a.name for a in node.names if a.name == "lr_scheduler")
        elif isinstance(node, ast.Import):
            modules.update(a.asname for a in node.names if a.name == "torch.optim.lr_scheduler" and a.asname)
    return modules, names


def _is_torch_scheduler(func: ast.expr, modules: set, names: set) -> bool:
    if isinstance(func, ast.Name):
        return func.id in names
    return isinstance(func, ast.Attribute) and ast.unparse(func.value) in modules


def scan(tree: ast.Module) -> dict:
    """{(function path, ast.dump of the scheduler statement): Plan}; also keyed by the optimizer statement."""
    modules, names = _torch_scheduler_names(tree)
    blocks: list = []
    function_blocks(tree, (), blocks)
    plans: dict = {}
    seen: dict = {}
    per_optimizer: dict = {}
    for path, body, owner in blocks:
        for i, stmt in enumerate(body):
            if (((isinstance(stmt, ast.Assign) and len(stmt.targets) == 1) or isinstance(stmt, ast.Return)) and isinstance(stmt.value, ast.Call)
                    and _tail(stmt.value.func) in (*SIGNATURES, "ReduceLROnPlateau")
                    and _is_torch_scheduler(stmt.value.func, modules, names)):
                key = (path, ast.dump(stmt))
                seen[key] = seen.get(key, 0) + 1
                kind = _tail(stmt.value.func)
                if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name) and kind in SIGNATURES:
                    plan = _scheduler_plan(stmt.targets[0].id, stmt.value, body, i, path, blocks, owner)
                else:  # `self.sched = ...`, `return lr_scheduler.X(...)`: only the helper class can run it
                    plan = Plan("", "", "", movable=True)
                if isinstance(plan.build, str) and plan.movable:
                    _helper_plan(plan, stmt.value, kind)
                opt_node = stmt.value.args[0] if stmt.value.args else next((k.value for k in stmt.value.keywords if k.arg == "optimizer"), None)
                per_optimizer.setdefault(ast.unparse(opt_node) if opt_node is not None else "", []).append(plan)
                plans[key] = plan
                if not isinstance(plan.build, str):
                    ctor = next(s for s in reversed(body[:i]) if isinstance(s, ast.Assign) and ast.unparse(s.targets[0]) == plan.optimizer)
                    plans[("optimizer", path, ast.dump(ctor))] = plan
    ctors: dict = {}
    for path, body, _ in blocks:
        for stmt in body:
            ctors[("optimizer", path, ast.dump(stmt))] = ctors.get(("optimizer", path, ast.dump(stmt)), 0) + 1
    for key, count in [*seen.items(), *((k, n) for k, n in ctors.items() if k in plans)]:
        if count > 1:
            plans[key].build = "the same scheduler or optimizer statement appears twice in one function"
            plans[key].helper = None
    for chained in per_optimizer.values():
        if len(chained) > 1:
            for plan in chained:
                plan.build, plan.helper = ("several schedulers on one optimizer (torch chains them, each scaling the "
                                           "rate the other set): write one MLX schedule with optim.join_schedules"), None
    return plans


def _dump(stmt: cst.CSTNode) -> Optional[str]:
    try:
        parsed = ast.parse(code_of(stmt))
    except SyntaxError:
        return None
    return ast.dump(parsed.body[0]) if len(parsed.body) == 1 else None


class LrSchedule(FunctionPath, Transform):
    id = RULE_ID
    description = "torch.optim.lr_scheduler.X stepped with the optimizer -> an MLX schedule as learning_rate"
    order = 85

    def __init__(self) -> None:
        self.plans: dict = {}
        self.path: list = []
        self.translated: set = set()  # scheduler names whose step() calls are dropped
        self.origin: dict = {}

    def applies_to(self, text: str) -> bool:
        return "lr_scheduler" in text

    def visit_Module(self, rw, node) -> None:
        self.plans = scan(ast.parse(node.code))
        self.translated = {p.scheduler for p in self.plans.values() if not isinstance(p.build, str)}

    def leave_Call(self, rw, original, updated):
        name = rw.qualified_name(original.func) or ""
        if not name.startswith(PREFIX):
            return updated
        stmt = rw.statement
        plan = self.plans.get((tuple(self.path), _dump(stmt))) if stmt is not None else None
        if plan is None:
            return updated
        if plan.helper is not None:
            name, code = plan.helper
            helper = rw.helper(name, lambda: mlx_statements(rw, LR_SCHEDULER if name == "LRScheduler" else REDUCE_ON_PLATEAU))
            rw.drop_flags(original)
            rw.count_conversion()
            args = [a for a in updated.args if a.keyword is None or a.keyword.value != "verbose"]
            args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            if code is None:
                return updated.with_changes(func=cst.Name(helper), args=args)
            new = mlx_expr(rw, code)  # `LRScheduler(OPTIMIZER, ...)`: the helper's name in the file, the optimizer
            opt = next((a for a in args if a.keyword is None), None) or next(a for a in args if a.keyword.value == "optimizer")
            return new.with_changes(func=cst.Name(helper), args=[new.args[0].with_changes(value=opt.value), *new.args[1:]])
        if isinstance(plan.build, str):
            rw.edit_flags(lambda f: dataclasses.replace(f, message=plan.build + GENERIC) if f.node is original else f)
        else:
            rw.drop_flags(original)
        return updated

    def leave_SimpleStatementLine(self, rw, original, updated):
        self.origin[id(updated)] = original
        plan = self.plans.get(("optimizer", tuple(self.path), _dump(original)))
        if plan is None or isinstance(plan.build, str) or not isinstance(updated.body[0], cst.Assign) or not isinstance(updated.body[0].value, cst.Call):
            return updated
        groups = rw.transform("optim-groups")
        if groups is not None and id(original) in groups.rewritten:
            return updated  # parameter groups: optim-groups put the schedule in each group's optimizer
        call = updated.body[0].value
        args = list(call.args)
        index = next((i for i, a in enumerate(args) if a.keyword is not None and a.keyword.value == "learning_rate"), None)
        translated = isinstance(call.func, cst.Attribute) and isinstance(call.func.value, cst.Name) and call.func.value.value == sentinel("optim")
        if index is None or not translated:
            plan.build = f"the optimizer `{plan.optimizer}` is not translated, so the schedule has nowhere to go"
            self.translated.discard(plan.scheduler)
            return updated
        schedule = mlx_expr(rw, plan.build(code_of(args[index].value)))
        args[index] = args[index].with_changes(value=schedule)
        rw.count_conversion()
        return updated.with_changes(body=[updated.body[0].with_changes(value=call.with_changes(args=args))])

    def _dropped(self, stmt) -> bool:
        original = self.origin.get(id(stmt), stmt)
        small = original.body[0] if isinstance(original, cst.SimpleStatementLine) and len(original.body) == 1 else None
        if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call) and not small.value.args:
            func = small.value.func
            if isinstance(func, cst.Attribute) and func.attr.value == "step" and isinstance(func.value, cst.Name):
                return func.value.value in self.translated
        plan = self.plans.get((tuple(self.path), _dump(original))) if isinstance(small, cst.Assign) else None
        return plan is not None and not isinstance(plan.build, str)

    def _filter(self, updated, body_owner):
        body = list(body_owner.body)
        kept = [s for s in body if not self._dropped(s)]
        if len(kept) == len(body) or not kept:
            return updated
        return updated.with_changes(body=kept)

    def leave_IndentedBlock(self, rw, original, updated):
        return self._filter(updated, updated)

    def leave_Module(self, rw, original, updated):
        return self._filter(updated, updated)
