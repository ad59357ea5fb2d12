"""Bind a call's arguments to a signature (positional -> named): the one binder of the converter.

`bind(args, signature)` binds a libcst call to a torch signature (a rule's, or one made with
`signature_of` for a call a transform reads, such as `register_buffer(name, tensor, persistent)`),
raising `Flag` where Python would bind differently or not at all; `try_bind` returns None there
instead, and `argument_code` gives each parameter's code with the defaults filled in. `bind_ast`
binds a stdlib `ast` call the same way (the value analysis reads the file's own functions' calls).
All of them go through `_bind`, so a star argument, a duplicate, an unknown keyword or a missing
required argument means the same everywhere.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import libcst as cst

from torch2mlx.table.model import Param, Signature

# numpy-style aliases torch accepts on most reductions and shape functions
KEYWORD_ALIASES = {"axis": "dim", "keepdims": "keepdim"}


class Flag(Exception):
    """The call cannot be translated exactly; `reason` says why (it becomes the diagnostic)."""

    def __init__(self, reason: str, kind: str = "unsupported-arg"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


_EMPTY_MODULE = cst.Module(body=[])


def code_of(node: cst.CSTNode) -> str:
    return _EMPTY_MODULE.code_for_node(node).strip()


@dataclass
class Bound:
    """Arguments by parameter name. Varargs hold a list of expressions."""

    values: dict

    def present(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str):
        return self.values.get(name)


class Argument(NamedTuple):
    """One argument of a call, whichever parser read it: `star` is "", "*" or "**"."""

    star: str
    keyword: Optional[str]
    value: Any


def signature_of(positional: Sequence[str] = (), keyword_only: Sequence[str] = (),
                 defaults: Optional[Mapping[str, str]] = None, *, optional: bool = False) -> Signature:
    """A signature made in code (`defaults`: parameter -> source text of its default; with `optional`,
    every parameter not in `defaults` defaults to `None`). Names may be Python keywords (`uniform_(from=, to=)`)."""
    defaults = dict(defaults or {})

    def param(name: str, kind: str) -> Param:
        return Param(name, defaults.get(name, "None" if optional else None), kind)

    params = tuple(param(n, "positional") for n in positional) + tuple(param(n, "keyword") for n in keyword_only)
    parts = [n if p.default is None else f"{n}={p.default}" for n, p in zip(positional, params)]
    if keyword_only:
        parts += ["*", *(n if p.default is None else f"{n}={p.default}" for n, p in zip(keyword_only, params[len(positional):]))]
    return Signature(params, ", ".join(parts))


def cst_arguments(args: Sequence[cst.Arg]) -> list:
    return [Argument(arg.star, arg.keyword.value if arg.keyword is not None else None, arg.value) for arg in args]


def ast_arguments(call: ast.Call) -> list:
    found = [Argument("*", None, a.value) if isinstance(a, ast.Starred) else Argument("", None, a) for a in call.args]
    return found + [Argument("**" if kw.arg is None else "", kw.arg, kw.value) for kw in call.keywords]


def _bind(arguments: Sequence[Argument], signature: Signature, receiver=None, *, aliases: Mapping[str, str] = KEYWORD_ALIASES,
          other_keywords: bool = False) -> Bound:
    """`arguments` by parameter name (the receiver, if any, is the first positional parameter). `aliases`: keywords
    standing for a parameter the signature lacks them for; `other_keywords`: a keyword the signature does not have is
    left out (a `**kwargs` parameter takes it) rather than flagged."""
    params = list(signature.params)
    values: dict = {}
    positional = [p for p in params if p.kind == "positional"]
    varargs = next((p for p in params if p.kind == "varargs"), None)
    if receiver is not None:
        if not positional:
            raise Flag("rule signature has no parameter for the tensor receiver", "internal-error")
        values[positional[0].name] = receiver
        positional = positional[1:]
    pos_index = 0
    for arg in arguments:
        if arg.star:
            raise Flag(f"cannot bind a {arg.star}-argument to the torch signature; translate by hand")
        if arg.keyword is None:
            if pos_index < len(positional):
                values[positional[pos_index].name] = arg.value
                pos_index += 1
            elif varargs is not None:
                values.setdefault(varargs.name, []).append(arg.value)
            else:
                raise Flag(f"too many positional arguments for ({signature.text})")
            continue
        name = arg.keyword
        if signature.get(name) is None and name in aliases and signature.get(aliases[name]):
            name = aliases[name]
        param = signature.get(name)
        if param is None:
            if other_keywords:
                continue
            raise Flag(f"unknown argument {name!r} for ({signature.text})")
        if name in values:
            raise Flag(f"argument {name!r} given twice")
        values[name] = [arg.value] if param.kind == "varargs" else arg.value
    for p in params:
        if p.name not in values and p.default is None and p.kind != "varargs":
            raise Flag(f"missing required argument {p.name!r}")
    return Bound(values)


def bind(args: Sequence[cst.Arg], signature: Signature, receiver: Optional[cst.BaseExpression] = None) -> Bound:
    """A libcst call's arguments bound to a torch signature (torch's keyword aliases `axis`, `keepdims` accepted)."""
    return _bind(cst_arguments(args), signature, receiver)


def try_bind(args: Sequence[cst.Arg], signature: Signature) -> Optional[Bound]:
    """As `bind`, None where it flags (a star argument, an unknown keyword, a missing required one, ...)."""
    try:
        return bind(args, signature)
    except Flag:
        return None


def argument_code(args: Sequence[cst.Arg], signature: Signature) -> Optional[dict]:
    """Parameter -> the code of its argument, or its default's where not passed; None where `bind` flags."""
    bound = try_bind(args, signature)
    if bound is None:
        return None
    return {p.name: code_of(bound.values[p.name]) if p.name in bound.values else p.default for p in signature.params}


def bind_ast(call: ast.Call, signature: Signature, *, other_keywords: bool = False) -> Optional[Bound]:
    """A stdlib `ast` call bound to `signature` (no torch keyword aliases: the callee is Python code);
    None where Python would not bind it so, or a starred argument hides which parameter gets what."""
    try:
        return _bind(ast_arguments(call), signature, aliases={}, other_keywords=other_keywords)
    except Flag:
        return None
