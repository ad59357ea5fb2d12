"""Building generated MLX code for transforms: parse a snippet, mark its MLX roots for the emitter."""
from __future__ import annotations

import libcst as cst

from torch2mlx.template import MLX_ROOTS, sentinel


class _MarkRoots(cst.CSTTransformer):
    def __init__(self) -> None:
        super().__init__()
        self.roots: set = set()

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.Attribute:
        if isinstance(updated.value, cst.Name) and updated.value.value in MLX_ROOTS:
            self.roots.add(updated.value.value)
            return updated.with_changes(value=cst.Name(sentinel(updated.value.value)))
        return updated


def mlx_expr(rw, text: str) -> cst.BaseExpression:
    """`text` parsed as an expression; `mx.`/`nn.`/`optim.` roots become emitter sentinels."""
    marker = _MarkRoots()
    node = cst.parse_expression(text).visit(marker)
    rw.need_import(*marker.roots)
    return node  # type: ignore[return-value]


def mlx_statements(rw, text: str) -> list:
    """`text` parsed as statements, with MLX roots marked (for generated loss functions, helpers)."""
    marker = _MarkRoots()
    module = cst.parse_module(text).visit(marker)
    rw.need_import(*marker.roots)
    return list(module.body)


def helper_statements(rw, source: str) -> list:
    """A helper's definition (`source`, a def or class) as statements, with two blank lines above each (PEP 8)."""
    return [stmt.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine(), *stmt.leading_lines])
            for stmt in mlx_statements(rw, source.lstrip("\n"))]


def add_helpers(rw, wanted, sources: dict) -> dict:
    """Add the helpers named in `wanted` (callees first; their code in `sources`) to the file, once each:
    `rw.helper`, so a name the file uses already gets a fresh one. Returns each helper's name in the file;
    a helper's code calls the helpers listed before it by the names they got."""
    names: dict = {}
    for name in wanted:
        names[name] = rw.helper(name, lambda name=name: helper_statements(rw, sources[name]), uses=list(names))
    return names
