"""`torch.relu_(x)`, `F.leaky_relu_(x, 0.2)`, `torch.clamp_(x, 0, 1)`: the function forms of in-place methods update
their first argument and return it. Where no other reference can see x's tensor (the `inplace-op` transform's check,
as for `x.relu_()`), the statement is `x = <the table's translation of the out-of-place torch.relu(x)>`; a parameter
(the caller would see the change) stays flagged. Checked against torch."""
from __future__ import annotations

import ast
import textwrap

import numpy as np

from torch2mlx import convert_source


def _convert(source: str):
    result = convert_source(textwrap.dedent(source), "inplace_fn.py")
    ast.parse(result.code)
    assert convert_source(result.code, "inplace_fn.py").code == result.code  # a second conversion changes nothing
    return result


def _flags(result) -> list:
    return [d for d in result.diagnostics if d.severity.value != "info"]


def test_function_forms_of_in_place_methods_on_an_unshared_tensor_match_torch():
    source = textwrap.dedent("""
        import torch
        import torch.nn.functional as F

        def f(x):
            y = x * 2
            torch.relu_(y)
            torch.sigmoid_(y)
            z = x + 1
            z = torch.tanh_(z)
            w = x - 1
            F.leaky_relu_(w, 0.2)
            v = x * 3
            torch.clamp_(v, -1, 1.5)
            u = x / 2
            torch.nn.functional.relu_(u)
            return y, z, w, v, u
    """)
    result = _convert(source)
    assert not _flags(result), result.code
    assert "    y = nn.relu(y)\n    y = mx.sigmoid(y)\n" in result.code and "    z = mx.tanh(z)\n" in result.code
    assert "relu_" not in result.code and "torch" not in result.code
    data = np.random.default_rng(0).standard_normal((3, 4), dtype=np.float32)
    import mlx.core as mx
    import torch

    ns_t: dict = {}
    exec(compile(source, "torch.py", "exec"), ns_t)  # noqa: S102 - the test's own program
    ns_m: dict = {}
    exec(compile(result.code, "mlx.py", "exec"), ns_m)  # noqa: S102
    for e, a in zip(ns_t["f"](torch.tensor(data)), ns_m["f"](mx.array(data))):
        e, a = e.numpy(), np.array(a)
        assert e.shape == a.shape and e.dtype == a.dtype
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)


def test_a_parameter_or_an_aliased_tensor_stays_flagged():
    result = _convert("""
        import torch

        def f(x):
            torch.relu_(x)          # the caller's tensor
            y = x * 2
            keep = y
            torch.sigmoid_(y)       # `keep` would see it
            return x, y, keep
    """)
    lines = result.code.splitlines()
    assert "    torch.relu_(x)          # the caller's tensor" in lines
    assert "    torch.sigmoid_(y)       # `keep` would see it" in lines
    assert {d.rule_id for d in _flags(result)} == {"inplace-op"}
    assert len(_flags(result)) == 2


def test_the_value_of_an_update_of_a_tensor_the_expression_creates_is_the_out_of_place_value():
    # torch's docstrings: `torch.zeros(3, 5, dtype=src.dtype).scatter_add_(0, index, src)`, `torch.randn(3, 3).triu_()`
    source = textwrap.dedent("""
        import torch

        src = torch.arange(1, 11).reshape((2, 5))
        index = torch.tensor([[0, 1, 2, 0]])
        a = torch.zeros(3, 5, dtype=src.dtype).scatter_(0, index, src)
        b = torch.zeros(3, 5, dtype=src.dtype).scatter_add_(0, index, src)
        c = torch.ones(3, 3).tril_(-1)
        d = torch.full((2, 3), 0.5).add_(src[:, :3]).mul_(2)
    """)
    result = _convert(source)
    assert not _flags(result), result.code
    assert "c = mx.tril(mx.ones((3, 3)), k=-1)\n" in result.code
    assert "_(" not in result.code
    import mlx.core  # noqa: F401 - the converted program imports it

    ns_t: dict = {}
    exec(compile(source, "torch.py", "exec"), ns_t)  # noqa: S102 - the test's own program
    ns_m: dict = {}
    exec(compile(result.code, "mlx.py", "exec"), ns_m)  # noqa: S102
    for name in "abcd":
        e, a = ns_t[name].numpy(), np.array(ns_m[name])
        assert e.shape == a.shape and e.dtype.kind == a.dtype.kind, name
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5, err_msg=name)


def test_an_update_of_a_tensor_that_may_be_shared_or_untranslatable_keeps_one_flag():
    result = _convert("""
        import numpy as np
        import torch

        a = np.zeros(3, dtype=np.float32)
        t = torch.from_numpy(a).add_(1)        # shares a's memory: a sees the update
        u = torch.full((2, 4), 2.0).scatter_(1, torch.tensor([[2], [3]]), 1.23, reduce='multiply')
    """)
    flags = _flags(result)
    assert [f.rule_id for f in flags] == ["inplace-op", "inplace-op"], flags
    assert ".add_(1)" in result.code and ".scatter_(" in result.code


def test_a_reference_taken_after_the_update_does_not_see_it_one_taken_before_or_in_a_loop_does():
    # torch's docstrings: `x.index_add_(0, index, t)`, then `out = x`; a second update after `out = x` would change out
    source = textwrap.dedent("""
        import torch

        x = torch.ones(5, 3)
        t = torch.tensor([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]])
        index = torch.tensor([0, 4, 2])
        x.index_add_(0, index, t)
        out = x
        src = torch.tensor([[4, 3, 5], [6, 7, 8]])
        src.put_(torch.tensor([1, 3]), torch.tensor([9, 10]))
        out2 = src
    """)
    result = _convert(source)
    assert not _flags(result), result.code
    assert "x = x.at[index].add(t)\nout = x\n" in result.code
    import mlx.core  # noqa: F401 - the converted program imports it

    ns_t: dict = {}
    exec(compile(source, "torch.py", "exec"), ns_t)  # noqa: S102 - the test's own program
    ns_m: dict = {}
    exec(compile(result.code, "mlx.py", "exec"), ns_m)  # noqa: S102
    for name in ("out", "out2"):
        e, a = ns_t[name].numpy(), np.array(ns_m[name])
        assert e.shape == a.shape and e.dtype.kind == a.dtype.kind, name
        np.testing.assert_array_equal(a, e)
    flagged = _convert("""
        import torch

        def f(t: torch.Tensor, index: torch.Tensor):
            x = torch.ones(5, 3)
            out = x
            x.index_add_(0, index, t)      # out sees it
            b = torch.zeros(2)
            for _ in range(2):
                b.add_(1)                  # c, from the previous turn, sees it
                c = b
            return out, c
    """)
    assert [f.rule_id for f in _flags(flagged)] == ["inplace-op", "inplace-op"]
    assert "    x.index_add_(0, index, t)      # out sees it" in flagged.code
    assert "        b.add_(1)                  # c, from the previous turn, sees it" in flagged.code


def test_a_random_fill_of_a_random_creation_draws_once_each_in_torchs_order():
    # torch's docstrings (torch.acosh, torch.atanh): `a = torch.randn(4).uniform_(1, 2)`
    result = _convert("""
        import torch

        a = torch.randn(4).uniform_(1, 2)
        c = torch.rand(2, 3).normal_(5.0, 0.01)
        def f(n: int):
            return [torch.randn(3).uniform_(1, 2) for _ in range(n)]   # no line of its own in a comprehension
    """)
    assert "randn = mx.random.normal((4,))\na = mx.random.uniform(1, 2, randn.shape, dtype=randn.dtype)\n" in result.code
    assert {f.line for f in _flags(result)} == {7} and "inplace-op" in {f.rule_id for f in _flags(result)}
    assert ".uniform_(1, 2) for _ in range(n)]" in result.code
    module = result.code.split("def f")[0]
    ns: dict = {}
    exec(compile(module, "mlx.py", "exec"), ns)  # noqa: S102 - the test's own program
    a, c = np.array(ns["a"]), np.array(ns["c"])
    assert a.shape == (4,) and a.dtype == np.float32 and ((a >= 1) & (a < 2)).all()
    assert c.shape == (2, 3) and c.dtype == np.float32 and np.abs(c - 5.0).max() < 0.1
