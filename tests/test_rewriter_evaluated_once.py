"""Evaluated twice (issues 13 and 14): an argument a translation reads twice (`torch.frac(t)` -> `t - mx.trunc(t)`,
`torch.aminmax(t)` -> `(mx.min(t), mx.max(t))`) is evaluated once into a fresh local name on a line before the
statement, as a call's receiver is, where that is exact: at module level and in a function body, a call's
result, an item or arithmetic on one (`x * 2` is for the person to name), nothing with an effect evaluated before it. A
translation's literal array (`mx.array([1.5, -2.25])`) that cannot be named so (inside a
comprehension, a function) is written twice: two equal new arrays, nothing else happens; a 0-d one (`mx.array(2.75)`)
always is. Anything else stays flagged (a class body, whose names would become attributes; a comprehension). Checked against
torch: torch's docstring examples (`torch.frac(torch.tensor([1, 2.5, -3.2]))`, `torch.nanmean(torch.tensor([1., nan]))`,
`F.one_hot(torch.arange(0, 5) % 3)`) were flagged for this."""
from __future__ import annotations

import ast
import textwrap

import numpy as np

from torch2mlx import convert_source

TWICE = "would be evaluated twice"


def _convert(source: str):
    result = convert_source(textwrap.dedent(source), "once.py")
    ast.parse(result.code)
    assert convert_source(result.code, "once.py").code == result.code  # a second conversion changes nothing
    return result


def _values(code: str, framework: str, names: list) -> list:
    ns: dict = {}
    exec(compile(code, f"{framework}.py", "exec"), ns)  # noqa: S102 - the test's own program
    return [np.asarray(ns[n]) if framework == "torch" else np.array(ns[n]) for n in names]


def _same(source: str, code: str, names: list) -> None:
    for name, e, a in zip(names, _values(textwrap.dedent(source), "torch", names), _values(code, "mlx", names)):
        assert e.shape == a.shape, name
        assert e.dtype.kind == a.dtype.kind, (name, e.dtype, a.dtype)
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5, err_msg=name)


def _flags(result) -> list:
    return [d for d in result.diagnostics if d.severity.value != "info"]


def test_arguments_read_twice_at_module_level_are_evaluated_once_and_match_torch():
    source = """
        import torch
        import torch.nn.functional as F

        a = torch.frac(torch.tensor([1, 2.5, -3.2]))
        b = torch.nanmean(torch.tensor([1.0, float('nan'), 3.0]))
        c = F.one_hot(torch.arange(0, 5) % 3)
        lo, hi = torch.aminmax(torch.tensor([1, -3, 5]))
        d = torch.fmod(torch.tensor([-3.0, -2, -1, 1, 2, 3]), 2)
    """
    result = _convert(source)
    assert not _flags(result) and TWICE not in result.code
    lines = result.code.splitlines()
    assert lines[lines.index("a = (tensor - mx.trunc(tensor))") - 1] == "tensor = mx.array([1, 2.5, -3.2])"
    assert "value = mx.arange(0, 5, dtype=mx.int64) % 3\nc = " in result.code
    _same(source, result.code, ["a", "b", "c", "lo", "hi", "d"])


def test_an_argument_after_another_call_stays_flagged_and_one_in_a_function_is_named():
    source = """
        import torch

        x = torch.tensor([[0.5, -1.25], [2.0, 3.5]])
        # a comment above the statement stays above the lines it became
        w = torch.fmod(x, x.exp() + 1)
        lo, hi = torch.aminmax(x.exp())
    """
    result = _convert(source)
    assert not _flags(result)
    assert ("# a comment above the statement stays above the lines it became\nother = mx.exp(x) + 1\n"
            "w = ") in result.code  # named after fmod's parameter `other`
    assert "x_exp = mx.exp(x)\nlo, hi = " in result.code
    _same(source, result.code, ["w", "lo", "hi"])
    after_a_call = _convert("""
        import torch

        x = torch.ones(2)
        v = torch.fmod(x.abs() - 1, x.exp() + 1)  # x.abs() is evaluated before the second argument
    """)
    assert [f.line for f in _flags(after_a_call)] == [5] and "other = " not in after_a_call.code
    inside = """
        import torch

        def f(x):
            lo, hi = torch.aminmax(x.exp())
            return lo, hi

        lo, hi = f(torch.tensor([0.5, -2.0, 1.25]))
    """
    result = _convert(inside)  # in a function too (issue 14): evaluated once, into a local
    assert TWICE not in result.code and "    x_exp = mx.exp(x)\n    lo, hi = (mx.min(x_exp), mx.max(x_exp))" in result.code
    _same(inside, result.code, ["lo", "hi"])


def test_a_literal_array_in_a_comprehension_is_written_twice_and_a_0d_one_anywhere():
    source = """
        import torch

        x = torch.tensor([0.25, 1.5])
        z = [torch.frac(torch.tensor([1.5, -2.25])) + v for v in x]
        z0, z1 = z
        w = torch.frac(torch.tensor(2.75)) + x
    """
    result = _convert(source)
    assert not _flags(result)
    assert "[(mx.array([1.5, -2.25]) - mx.trunc(mx.array([1.5, -2.25]))) + v for v in x]" in result.code
    assert "w = (mx.array(2.75) - mx.trunc(mx.array(2.75))) + x" in result.code  # no name for a number
    _same(source, result.code, ["z0", "z1", "w"])


def test_where_a_fresh_name_would_not_be_exact_the_flag_stands():
    result = _convert("""
        import torch

        def f(x, w):
            y = [torch.frac(v * 2) for v in x]              # a comprehension: not a literal array
            z = torch.fmod(torch.relu(w), torch.frac(x * 2))  # after another call
            return y, z

        class C:
            y = torch.frac(torch.ones(2) * 1.5)  # a class body: a new name would be an attribute
    """)
    for value in ("v * 2", "x * 2", "mx.ones(2) * 1.5"):
        assert f"argument input ({value}) {TWICE}" in result.code
    assert "value = " not in result.code


def test_a_value_the_source_did_not_write_is_not_named():
    # torch.linalg.matrix_power's handler reads its own `mx.broadcast_to(A, ...)` twice: nothing to lift
    result = _convert("""
        import torch

        A = torch.eye(3).expand(2, 3, 3)
        B = torch.linalg.matrix_power(torch.eye(3), -1)
    """)
    assert "value = " not in result.code and "tensor = " not in result.code
