"""`self.apply(self._init_weights)` as a statement -> a loop over the MLX modules (nn-init).

torch's `Module.apply(fn)` calls fn on every submodule, children first, then the module itself
(post-order); MLX's `Module.apply` maps a function over the parameters instead. MLX's
`modules()` lists self first, then each subtree (pre-order, children pushed on a stack, so the
last child's subtree comes first); reversed, it is exactly torch's post-order, children in
registration order. So the statement becomes

    for module in reversed(self.modules()):
        self._init_weights(module)

Containers differ: torch also calls fn on nn.ModuleList/ModuleDict objects, which are plain
lists/dicts in MLX (an init function's isinstance branches never match them).
Translated when the receiver is `self` in an nn.Module class (the case nn-module flags) and fn
is a name or attribute chain; the loop variable is a name the function does not use.
"""
from __future__ import annotations

from typing import Optional

import libcst as cst

from torch2mlx.binding import code_of
from torch2mlx.tensors import attribute_chain

APPLY_RULE = "torch.nn.Module.apply"
_CANDIDATES = ("module", "submodule", "child_module", "_module")


class _NamesUsed(cst.CSTVisitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set = set()

    def visit_Name(self, node: cst.Name) -> None:
        self.names.add(node.value)


def names_used(function: cst.CSTNode) -> set:
    visitor = _NamesUsed()
    function.visit(visitor)
    return visitor.names


def apply_loop_parts(call: cst.Call) -> Optional[tuple]:
    """(receiver code, fn code) for `self.apply(fn)` with a plain-name fn, else None."""
    func = call.func
    if not (isinstance(func, cst.Attribute) and func.attr.value == "apply" and isinstance(func.value, cst.Name)
            and func.value.value == "self" and len(call.args) == 1):
        return None
    arg = call.args[0]
    if arg.star or arg.keyword is not None and arg.keyword.value != "fn" or attribute_chain(arg.value) is None:
        return None
    return code_of(func.value), code_of(arg.value)


def loop_variable(used: set) -> Optional[str]:
    return next((name for name in _CANDIDATES if name not in used), None)


def apply_loop(line: cst.SimpleStatementLine, receiver: str, fn: str, variable: str) -> cst.For:
    loop = cst.parse_statement(f"for {variable} in reversed({receiver}.modules()):\n    {fn}({variable})\n")
    assert isinstance(loop, cst.For)
    return loop.with_changes(leading_lines=line.leading_lines,
                             body=loop.body.with_changes(header=line.trailing_whitespace))
