"""`torch.empty(1, 1, d, **dd)` where the function says `dd = {'device': device, 'dtype': dtype}` (id `keyword-dicts`).

timm builds every layer and parameter of a model with `**dd` (vision_transformer.py, convnext.py, swin, ...):
`dd = {'device': device, 'dtype': dtype}` once at the top of `__init__`, then `nn.Parameter(torch.zeros(1, 1, d, **dd))`.
The table binds a call's arguments to torch's signature (`binding.py`), and a `**`-argument hides which parameters
it fills, so the call is flagged ("cannot bind a **-argument"). Where the dict is known, the call is the same as the
call with the dict's entries as keyword arguments, and the table's rule translates that call.

Exact when (else the table's flag stays):
- the dict is bound once in the def, by a statement of the def's body itself (not in a branch or loop), to a dict
  literal whose keys are distinct string literals; a value that is a literal or a parameter of the def that the def
  never rebinds is written as itself (the same object at the call as when the dict was built), any other value as
  `dd['key']`, the value the dict holds (deit.py: `dd = {'device': kwargs.get('device', None), ...}`);
- every other occurrence of the name in the def is a `**name` argument (nothing can change the dict: no item
  assignment, no `.update`, it is not passed to anything that could keep it), and the call comes after the binding
  in the def's body (a statement after it: it runs after it, as the def's body runs in order);
- the call's own keyword arguments do not repeat a key of the dict (a TypeError in Python).
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.transforms import Transform

_CANNOT_BIND = "cannot bind a **-argument"


def _literal(node: cst.BaseExpression) -> bool:
    if isinstance(node, (cst.Integer, cst.Float, cst.SimpleString)):
        return True
    return isinstance(node, cst.Name) and node.value in ("True", "False", "None")


def _key(node) -> str | None:
    if isinstance(node, cst.SimpleString) and node.prefix == "":
        value = node.evaluated_value
        return value if isinstance(value, str) and value.isidentifier() else None
    return None


def _walk(node: cst.CSTNode):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(n.children)


def _stored_names(fn: cst.FunctionDef) -> dict:
    """name -> how often the def binds it (assignments, loops, with/except targets, walrus, imports, nested defs)."""
    counts: dict = {}

    def add(target) -> None:
        if isinstance(target, cst.Name):
            counts[target.value] = counts.get(target.value, 0) + 1
        elif isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                add(el.value)
        elif isinstance(target, cst.StarredElement):
            add(target.value)

    for n in _walk(fn.body):
        if isinstance(n, cst.AssignTarget):
            add(n.target)
        elif isinstance(n, (cst.AnnAssign, cst.AugAssign)):
            add(n.target)
        elif isinstance(n, (cst.For, cst.CompFor)):
            add(n.target)
        elif isinstance(n, cst.NamedExpr):
            add(n.target)
        elif isinstance(n, cst.AsName):
            add(n.name)
        elif isinstance(n, (cst.FunctionDef, cst.ClassDef)):
            add(n.name)
        elif isinstance(n, (cst.Global, cst.Nonlocal)):
            for item in n.names:
                counts[item.name.value] = counts.get(item.name.value, 0) + 2  # never a plain local
        elif isinstance(n, (cst.Import, cst.ImportFrom)) and not isinstance(n.names, cst.ImportStar):
            for alias in n.names:
                if alias.asname is None and isinstance(alias.name, cst.Name):
                    add(alias.name)
    return counts


def _dict_assignment(stmt) -> cst.Assign | None:
    """`name = {...}` as a statement of its own."""
    if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign)):
        return None
    assign = stmt.body[0]
    if len(assign.targets) != 1 or not isinstance(assign.targets[0].target, cst.Name) or not isinstance(assign.value, cst.Dict):
        return None
    return assign


def known_dicts(fn: cst.FunctionDef) -> dict:
    """id of each call of `fn` with a `**name` argument of a known dict -> (name, [(key, value node)])."""
    if not isinstance(fn.body, cst.IndentedBlock):
        return {}
    params = fn.params
    body = list(fn.body.body)
    if not any(_dict_assignment(stmt) for stmt in body):
        return {}  # the common case, decided from the def's own statements: no walk of its body
    names = {p.name.value for p in [*params.posonly_params, *params.params, *params.kwonly_params]}
    stored = _stored_names(fn)
    found: dict = {}
    for index, stmt in enumerate(body):
        assign = _dict_assignment(stmt)
        if assign is None:
            continue
        name = assign.targets[0].target.value
        if stored.get(name) != 1:
            continue
        entries = []
        for el in assign.value.elements:
            key = _key(el.key) if isinstance(el, cst.DictElement) else None
            value = el.value if isinstance(el, cst.DictElement) else None
            if key is None or key in (k for k, _ in entries):
                entries = None
                break
            if not (_literal(value) or (isinstance(value, cst.Name) and value.value in names and not stored.get(value.value))):
                # evaluated when the dict was built (deit.py: `kwargs.get('device', None)`): read back from the dict
                value = cst.Subscript(cst.Name(name), [cst.SubscriptElement(cst.Index(cst.SimpleString(repr(key))))])
            entries.append((key, value))
        if entries is None:
            continue
        calls: dict = {}
        star_values = set()
        for n in _walk(fn.body):
            if isinstance(n, cst.Call):
                for arg in n.args:
                    if arg.star == "**" and isinstance(arg.value, cst.Name) and arg.value.value == name:
                        calls[id(n)] = n
                        star_values.add(id(arg.value))
        loads = [n for n in _walk(fn.body) if isinstance(n, cst.Name) and n.value == name
                 and n is not assign.targets[0].target and id(n) not in star_values]
        # any other occurrence of the name (attribute names are cst.Name too: `x.dd` is read as a use, conservatively)
        if loads:
            continue
        after = set()
        for later in body[index + 1:]:
            after.update(id(n) for n in _walk(later) if isinstance(n, cst.Call))
        for key in calls:
            if key in after:
                found[key] = (name, entries)
    return found


class KeywordDicts(Transform):
    id = "keyword-dicts"
    description = "`f(..., **dd)` with `dd = {'device': device, 'dtype': dtype}` -> the call with those keywords"
    order = 20
    text_decides = True

    def __init__(self) -> None:
        self.calls: list = []  # per enclosing def: id(call) -> (name, entries)

    def applies_to(self, text: str) -> bool:
        return "**" in text and "{" in text

    def visit_FunctionDef(self, rw, node) -> None:
        self.calls.append(known_dicts(node))

    def leave_FunctionDef(self, rw, original, updated):
        self.calls.pop()
        return updated

    def leave_Call(self, rw, original, updated):
        if not self.calls or id(original) not in self.calls[-1] or not isinstance(updated, cst.Call):
            return updated
        flags = [f for f in rw.flags() if f.node is original and _CANNOT_BIND in f.message]
        if not flags:
            return updated
        name, entries = self.calls[-1][id(original)]
        given = {a.keyword.value for a in updated.args if a.keyword is not None}
        if given & {k for k, _ in entries} or sum(a.star == "**" for a in updated.args) != 1:
            return updated
        rule = self._rule(rw, original, flags[0].rule_id)
        if rule is None or rule.returns != "tensor":
            return updated  # (a layer built with `**dd` is nn-layer-values' business: a local class taking torch's arguments)
        args = []
        for arg in updated.args:
            if arg.star == "**":
                args.extend(cst.Arg(value=value.deep_clone(), keyword=cst.Name(key),
                                    equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))
                            for key, value in entries)
            else:
                args.append(arg)
        if args and args[-1].comma is not cst.MaybeSentinel.DEFAULT:
            args = [*args[:-1], args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)]
        expanded = updated.with_changes(args=[a if i == len(args) - 1 else a.with_changes(comma=cst.Comma(
            whitespace_after=cst.SimpleWhitespace(" "))) if a.comma is cst.MaybeSentinel.DEFAULT else a
            for i, a in enumerate(args)])
        receiver = None
        if rw.qualified_name(original.func) is None and isinstance(updated.func, cst.Attribute):
            receiver = updated.func.value
        rw.drop_flags(original, rule_id=rule.id, predicate=lambda f: _CANNOT_BIND in f.message)
        return rw.apply_rule(rule, original, expanded, receiver)

    @staticmethod
    def _rule(rw, call: cst.Call, rule_id: str):
        qual = rw.qualified_name(call.func)
        rule = rw.index.function(qual) if qual is not None else None
        if rule is None and qual is None and isinstance(call.func, cst.Attribute):
            rule = rw.index.method(call.func.attr.value)
        return rule if rule is not None and rule.id == rule_id else None
