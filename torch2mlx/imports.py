"""Resolving a relative import (`from ..utils import F` in `pkg.models.net` names `pkg.utils`).

Below both `names.py` (per-file name analysis) and `project.py` (cross-file facts), which use it.
"""
from __future__ import annotations

import ast


def absolute_import(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The module an ImportFrom names, with relative levels resolved against `module`."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join([*base, node.module] if node.module else base)
