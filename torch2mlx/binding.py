"""Bind a call's arguments to a torch signature (positional -> named) before any renaming."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import libcst as cst

from torch2mlx.table.model import Signature

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
    """Arguments by torch parameter name. Varargs hold a list of expressions."""

    values: dict

    def present(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str):
        return self.values.get(name)


def bind(args: Sequence[cst.Arg], signature: Signature, receiver: Optional[cst.BaseExpression] = None) -> Bound:
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
    for arg in args:
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
        name = arg.keyword.value
        if signature.get(name) is None and name in KEYWORD_ALIASES and signature.get(KEYWORD_ALIASES[name]):
            name = KEYWORD_ALIASES[name]
        param = signature.get(name)
        if param is None:
            raise Flag(f"unknown argument {name!r} for ({signature.text})")
        if name in values:
            raise Flag(f"argument {name!r} given twice")
        values[name] = [arg.value] if param.kind == "varargs" else arg.value
    for p in params:
        if p.name not in values and p.default is None and p.kind != "varargs":
            raise Flag(f"missing required argument {p.name!r}")
    return Bound(values)
