"""Generated and mutated programs: the translator never crashes, its output parses, converting
the output again changes nothing, and lines it has no business touching stay byte-identical.

Fixed seed and a small budget for CI; `TORCH2MLX_FUZZ_EXAMPLES=5000` for a longer run
(see docs/robustness.md).
"""
from __future__ import annotations

from pathlib import Path

import hypothesmith
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_support import budget, check_conversion, cold_lines, hot_names

REPO = Path(__file__).resolve().parents[2]
TORCH_NN = Path(torch.__file__).parent / "nn" / "modules"
# Small real files for CI (the long run may set TORCH2MLX_FUZZ_LARGE=1 to add every nn module).
SMALL_LIMIT = 400
REAL_FILES = sorted(REPO.glob("fixtures/ops/*.py")) + sorted(
    p for p in TORCH_NN.glob("*.py") if len(p.read_text(encoding="utf-8").splitlines()) <= SMALL_LIMIT
)
SNIPPETS = [
    "y = torch.sum(x, 1)",
    "y = x.mean(dim=-1, keepdim=True)",
    "y = torch.nn.functional.relu(x)",
    "y = torch.cat([x, x], dim=0).view(-1)",
    "y = x.add_(1)",
    "y = torch.zeros(3, dtype=torch.float32)",
    "y = x.to('cuda')",
    "y = x.sum(*args)",
    "from torch import nn as F2\ny = F2.functional.softmax(x, -1)",
]
SETTINGS = dict(deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))


def _check(text: str) -> None:
    check_conversion(text, "<fuzz>")


@settings(max_examples=budget(10), **SETTINGS)  # from_node is slow (~0.5 s a program)
@given(code=hypothesmith.from_node(), snippet=st.sampled_from(SNIPPETS))
def test_generated_programs_with_torch(code, snippet):
    _check(f"import torch\n{snippet}\n{code}")


@settings(max_examples=budget(25), **SETTINGS)
@given(code=hypothesmith.from_grammar())
def test_grammar_programs(code):
    _check(code)
    _check("import torch\n" + code)


def _mutate(text: str, data) -> str:
    lines = text.splitlines(keepends=True) or ["\n"]
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        op = data.draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "truncate", "char", "wrap"]), label="op")
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        if op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = data.draw(st.integers(0, len(lines) - 1), label="other")
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert":
            lines.insert(i, indent + data.draw(st.sampled_from(SNIPPETS), label="snippet").replace("\n", "\n" + indent) + "\n")
        elif op == "truncate":
            cut = data.draw(st.integers(0, len(lines[i])), label="cut")
            lines = lines[:i] + [lines[i][:cut]]
        elif op == "char":
            cut = data.draw(st.integers(0, len(lines[i])), label="at")
            lines[i] = lines[i][:cut] + data.draw(st.sampled_from(list("([{:)]}\"'\\\t#@;,.=")), label="ch") + lines[i][cut:]
        elif op == "wrap":
            lines[i] = lines[i].replace("(", "(torch.abs(", 1).replace(")", "))", 1)
    return "".join(lines)


@pytest.fixture(scope="module")
def real_texts():
    return {p: p.read_text(encoding="utf-8") for p in REAL_FILES}


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_real_files_unmutated(path):
    assert check_conversion(path.read_text(encoding="utf-8"), str(path)) is None


@settings(max_examples=budget(40), **SETTINGS)
@given(data=st.data())
def test_mutated_real_files(real_texts, data):
    path = data.draw(st.sampled_from(REAL_FILES), label="file")
    _check(_mutate(real_texts[path], data))


def test_cold_line_detector_can_fail():
    """The untouched-lines property must be able to fail: a changed cold line is noticed."""
    text = "import torch\nx = 1\ny = torch.sum(z, 1)\n"
    assert cold_lines(text, hot_names(text)) == {"x = 1": 1}
    from collections import Counter

    assert cold_lines(text, hot_names(text)) - Counter(["x = 2"]) == Counter({"x = 1": 1})
