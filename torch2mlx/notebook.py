"""Jupyter notebooks: convert the code cells, keep everything else (outputs, metadata, markdown).

The code cells are converted together, as one module, so an `import torch` in the first cell
resolves names in the later ones. Cell boundaries are marked with comment lines that the
translator keeps; IPython lines (`%magic`, `!shell`) are hidden in comments while converting.

The notebook is read and written with the standard `json` module rather than `nbformat`:
nbformat re-sorts keys on writing, and a notebook whose code needs no change must come back
byte-identical. The JSON indent of the input is kept (Jupyter writes 1).
"""
from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from torch2mlx.api import ConversionResult, convert_source
from torch2mlx.diagnostics import InputError

_CELL = "# torch2mlx-notebook-cell "
_MAGIC = "#torch2mlx-notebook-magic:"
_IPYTHON_LINE = re.compile(r"^\s*[%!]")


def _cell_text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _hide_magics(code: str) -> str:
    return "".join(_MAGIC + line if _IPYTHON_LINE.match(line) else line for line in code.splitlines(keepends=True))


def _show_magics(code: str) -> str:
    return "".join(line[len(_MAGIC):] if line.startswith(_MAGIC) else line for line in code.splitlines(keepends=True))


def _load(text: str, path: str) -> dict:
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not a notebook (invalid JSON: {exc.msg})", path, exc.lineno, exc.colno) from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise InputError("not a notebook (no `cells` list; nbformat 4 is expected)", path)
    return notebook


def _indent(text: str) -> int:
    match = re.match(r"[{\[]\r?\n( *)", text)
    return len(match.group(1)) if match and match.group(1) else 1


def convert_notebook(text: str, path: str = "<notebook>", *, index=None) -> ConversionResult:
    """Translate the code cells of an `.ipynb` text; outputs, metadata and other cells are kept.

    `index` (a `RuleIndex`, e.g. with the user's `--rules`) is passed on to `convert_source`.

    Raises InputError when the text is not a notebook or its code does not parse
    (the message names the cell and the line within it).
    """
    notebook = _load(text, path)
    code_cells = [c for c in notebook["cells"] if isinstance(c, dict) and c.get("cell_type") == "code"]
    if not any("torch" in _cell_text(c) for c in code_cells):
        return ConversionResult(text, text)
    starts, parts, line = [], [], 1
    for number, cell in enumerate(code_cells):
        body = _hide_magics(_cell_text(cell))
        if body and not body.endswith("\n"):
            body += "\n"
        parts.append(f"{_CELL}{number}\n{body}")
        starts.append(line + 1)
        line += 1 + body.count("\n")
    joined = "".join(parts)
    try:
        result = convert_source(joined, path, index=index)
    except InputError as exc:
        cell, cell_line = _locate(starts, exc.line)
        raise InputError(exc.message, f"{path}[cell {cell}]" if cell is not None else path, cell_line, exc.column) from None
    pieces = re.split(rf"^{re.escape(_CELL)}(\d+)\n", result.code, flags=re.MULTILINE)
    prelude, converted = pieces[0], dict(zip((int(n) for n in pieces[1::2]), pieces[2::2]))
    if len(converted) != len(code_cells):
        raise InputError("notebook cell markers were lost while converting; convert the code by hand", path)
    changed = False
    for number, cell in enumerate(code_cells):
        new = _show_magics((prelude if number == 0 else "") + converted[number])
        old = _cell_text(cell)
        if not old.endswith("\n") and new.endswith("\n"):
            new = new[:-1]
        if new != old:
            changed = True
            cell["source"] = new.splitlines(keepends=True) if isinstance(cell.get("source"), list) else new
    diagnostics = tuple(_relocate(d, starts, path) for d in result.diagnostics)
    if not changed:
        return ConversionResult(text, text, diagnostics, result.converted)
    code = json.dumps(notebook, indent=_indent(text), ensure_ascii=False) + ("\n" if text.endswith("\n") else "")
    return ConversionResult(code, text, diagnostics, result.converted)


def _locate(starts: list[int], line: int) -> tuple[Any, int]:
    """(cell number, line within the cell) for a line of the joined module."""
    for number in range(len(starts) - 1, -1, -1):
        if line >= starts[number]:
            return number, line - starts[number] + 1
    return None, line


def _relocate(diagnostic, starts: list[int], path: str):
    cell, line = _locate(starts, diagnostic.line)
    where = f"{path}[cell {cell}]" if cell is not None else path
    return dataclasses.replace(diagnostic, path=where, line=line)
