"""A generated helper whose name the file uses already takes a fresh one (issue 14: "a helper's name clashing with
the user's own ... makes the tool refuse"): the local helpers of `handlers/local_helpers.py` (torch.gather ->
`gather`), `chunk_by_count` and `split_by_sizes` (handlers/split_any.py) are written as `gather_1` etc., the
translation calls them by that name, and the file's own function keeps its name and its calls. Checked against
torch."""
from __future__ import annotations

import ast
import textwrap

import numpy as np

from torch2mlx import convert_source

SOURCE = textwrap.dedent("""
    import torch


    def gather(values):
        return values[0] * 2


    def chunk_by_count(n):
        return n + 1


    def split_by_sizes(n):
        return n - 1


    def f(x, i, sizes):
        g = torch.gather(x, 1, i) + gather([x[:, :2]])
        a, b = torch.chunk(x.exp(), 2, -1)
        p, q = torch.split(x.exp(), sizes, 1)
        return g, a, b, p, q, chunk_by_count(2), split_by_sizes(3)
""")


def _run(code: str, framework: str) -> list:
    ns: dict = {}
    exec(compile(code, f"{framework}.py", "exec"), ns)  # noqa: S102 - the test's own program
    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    i = np.array([[1, 0], [3, 3], [0, 2]], dtype=np.int64)  # smaller than x on axis 0's other axis: torch reads a block
    if framework == "torch":
        import torch

        out = ns["f"](torch.tensor(x), torch.tensor(i), [3, 1])
        return [np.asarray(o) for o in out]
    import mlx.core as mx

    out = ns["f"](mx.array(x), mx.array(i), [3, 1])
    return [np.array(o) for o in out]


def test_a_helper_whose_name_the_file_uses_gets_a_fresh_one_and_matches_torch():
    result = convert_source(SOURCE, "m.py")
    ast.parse(result.code)
    assert not [d for d in result.diagnostics if d.severity.value != "info"], [d.format() for d in result.diagnostics]
    for name in ("gather", "chunk_by_count", "split_by_sizes"):
        assert f"def {name}_1(" in result.code and f"def {name}(" in result.code
    assert "g = gather_1(x, 1, i) + gather([x[:, :2]])" in result.code  # the file's own gather is still called
    assert "return g, a, b, p, q, chunk_by_count(2), split_by_sizes(3)" in result.code
    assert convert_source(result.code, "m.py").code == result.code
    for e, a in zip(_run(SOURCE, "torch"), _run(result.code, "mlx")):
        assert e.shape == a.shape and e.dtype.kind == a.dtype.kind
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)


def test_a_free_name_is_kept():
    result = convert_source(SOURCE.replace("def gather(values)", "def pick(values)").replace("gather([x", "pick([x"), "m.py")
    assert "def gather(input, dim, index):" in result.code and "gather_1" not in result.code
