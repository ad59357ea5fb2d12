"""Issue 14, "evaluated-twice cases translated through a fresh local name": a translation that reads an argument
twice (`F.linear`'s bias in `x @ w.T + (-0.0 if bias is None else bias)`, `torch.frac(v)` -> `v - mx.trunc(v)`)
of arithmetic or a comparison on names (`b + 1`, `x * 3`, `t % 3`) evaluates it once, on a line before the
statement, as it did for calls and items (`x.abs()`, `x[..., 0]`): `bias = b + 1`. Where moving it before the
statement is not exact (inside a lambda, after a call that may have effects) the call stays flagged. Checked against
torch."""
from __future__ import annotations

import textwrap

import numpy as np

from torch2mlx import convert_source

SOURCE = textwrap.dedent("""
    import torch
    import torch.nn.functional as F


    def f(x, w, b, t):
        y = F.linear(x, w, b + 1)
        z = torch.frac(x * 3)
        v, m = torch.var_mean(x + 1, 1)
        h = F.one_hot(t % 3)
        s = torch.sinc(x > 0.5)
        return y, z, v, m, h, s
""")


def _warnings(result) -> list:
    return [d for d in result.diagnostics if d.severity.value != "info"]


def _run(code: str, framework: str) -> list:
    ns: dict = {}
    exec(compile(code, f"{framework}.py", "exec"), ns)  # noqa: S102 - the test's own program
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    t = np.array([0, 4, 2, 5], dtype=np.int64)
    if framework == "torch":
        import torch

        out = ns["f"](*(torch.tensor(a) for a in (x, w, b, t)))
        return [o.numpy() for o in out]
    import mlx.core as mx

    out = ns["f"](*(mx.array(a) for a in (x, w, b, t)))
    return [np.array(o) for o in out]


def test_arithmetic_read_twice_is_named_once_and_matches_torch():
    result = convert_source(SOURCE, "m.py")
    assert not _warnings(result), [d.format() for d in _warnings(result)]
    for line in ("bias = b + 1", "value = x * 3", "value_2 = x + 1", "value_3 = t % 3", "mask = x > 0.5"):
        assert f"    {line}\n" in result.code, line
    assert "evaluated twice" not in result.code and "import torch" not in result.code
    assert convert_source(result.code, "m.py").code == result.code
    expected, actual = _run(SOURCE, "torch"), _run(result.code, "mlx")
    for e, a in zip(expected, actual):
        assert e.shape == a.shape and e.dtype == a.dtype, (e.dtype, a.dtype, e.shape, a.shape)
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)


def test_where_naming_it_first_is_not_exact_the_call_stays_flagged():
    result = convert_source(textwrap.dedent("""
        import torch
        import torch.nn.functional as F


        def f(x, w, b, g):
            y = F.linear(g(x), w, b + 1)
            z = (lambda v: torch.frac(v * 3))(x)
            return y, z
    """), "m.py")
    flagged = [d for d in _warnings(result) if "evaluated twice" in d.message]
    assert [d.rule_id for d in flagged] == ["torch.nn.functional.linear", "torch.frac"]
    assert "bias = " not in result.code and "value = " not in result.code
