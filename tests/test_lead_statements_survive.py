"""No statement of real code vanishes in conversion: every docstring of a def or class is still there.

A leftover no-op (`model.cpu()` become `model`) was recognised by the id of the node the call became; once that
node was discarded, a docstring node made later could get the same id and was dropped as a no-op (timm's
pos_embed_sincos.py lost `create_rope_embed`'s docstring, or `RotaryEmbeddingDinoV3`'s, depending on what was
converted before in the process).
"""
from __future__ import annotations

import ast
import importlib.util
from collections import Counter
from pathlib import Path

import pytest

from torch2mlx import convert_source

_FILES = [
    ("timm", "layers/pos_embed_sincos.py"),
    ("timm", "models/vision_transformer.py"),
    ("transformers", "models/bert/modeling_bert.py"),
]


def _docstrings(code: str) -> Counter:
    """Each def's and class's docstring, by text (a `forward` may be renamed `__call__`)."""
    return Counter(ast.get_docstring(node, clean=False) for node in ast.walk(ast.parse(code))
                   if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                   and ast.get_docstring(node, clean=False))


@pytest.mark.parametrize("package,relative", _FILES)
def test_every_docstring_of_a_real_file_survives(package: str, relative: str) -> None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        pytest.skip(f"{package} is not installed (real-code test)")
    path = Path(spec.origin).parent / relative
    source = path.read_text(encoding="utf-8")
    out = convert_source(source, str(path)).code
    before, after = _docstrings(source), _docstrings(out)
    lost = before - after
    assert before and not lost, [doc[:50] for doc in lost]
