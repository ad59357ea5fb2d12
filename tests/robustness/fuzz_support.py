"""Shared checks for the fuzz tests: the properties every conversion must have.

`TORCH2MLX_FUZZ_EXAMPLES=5000` raises the number of generated cases (the CI default is small).
"""
from __future__ import annotations

import ast
import io
import os
import tokenize
from collections import Counter
from typing import Optional

from torch2mlx import InputError, convert_source
from torch2mlx.api import _transform_attrs, build_index

MARKER = "# torch2mlx:"


def budget(default: int) -> int:
    """How many examples a fuzz test tries: the env var when set, else the CI default."""
    return int(os.environ.get("TORCH2MLX_FUZZ_EXAMPLES", default))


def hot_names(text: str) -> frozenset:
    """Names whose lines the translator may touch: torch, rule method names, transform
    attributes, and every name an import statement binds (aliases of torch things)."""
    names = {"torch", "mx", "mlx", "nn", "np"} | set(build_index().methods) | set(_transform_attrs())
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return frozenset(names)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add((alias.asname or alias.name).split(".")[0])
    return frozenset(names)


def cold_lines(text: str, hot: frozenset) -> Counter:
    """Physical lines that are a whole logical line and use no hot name (comment lines included).

    Keys are the lines without their indentation: removing a `with torch.no_grad():` block
    legitimately dedents its body; everything after the indentation must stay byte-identical.
    """
    lines = text.split("\n")  # not splitlines(): Python source lines end only at \n, \r\n, \r
    out: Counter = Counter()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return out
    start, names, depth = None, set(), 0
    for tok in tokens:
        if start is None and tok.type not in (tokenize.INDENT, tokenize.DEDENT):
            start = tok.start[0]
        if tok.type == tokenize.NAME:
            names.add(tok.string)
        elif tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        if tok.type == tokenize.NEWLINE or (tok.type == tokenize.NL and depth == 0):
            line = lines[start - 1].rstrip("\r\n") if 0 < start <= len(lines) else ""
            if start == tok.end[0] and not (names & hot) and line.strip():
                out[line.lstrip(" \t")] += 1
            start, names = None, set()
    return out


def check_conversion(text: str, path: str = "<fuzz>") -> Optional[str]:
    """Convert `text`; None when every property holds, "input-error" for an InputError, else raise.

    Properties: no exception other than InputError; the output parses; converting the output
    again changes nothing; lines that use no hot name are all still there, byte for byte
    after their indentation.
    """
    try:
        result = convert_source(text, path)
    except InputError:
        return "input-error"
    ast.parse(result.code)
    if "torch" not in text:
        assert result.code == text, "a file without torch changed"
    again = convert_source(result.code, path)
    assert again.code == result.code, "converting the output again changed it:\n" + _diff(result.code, again.code)
    missing = cold_lines(text, hot_names(text)) - Counter(line.rstrip("\r").lstrip(" \t") for line in result.code.split("\n"))
    assert not missing, f"untouched lines were changed or lost: {list(missing)[:5]}"
    return None


def _diff(a: str, b: str) -> str:
    import difflib

    return "\n".join(difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=1))
