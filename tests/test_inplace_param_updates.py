"""inplace-op: in-place updates of a function's parameter (timm's layers/weight_init.py) become updates of the whole
array (`t[...] = ...`), which every reference to the caller's array sees, as torch's update of the caller's tensor.

Each case is the idiom as timm writes it, run under torch and under MLX: the caller's own tensor/array (an attribute
of an object, as `trunc_normal_(self.pos_embed, std=.02)`) must hold the update afterwards in both.
"""
import math
import textwrap

import numpy as np
import pytest

from torch2mlx import convert_source
from torch2mlx.verify import compare, to_numpy

# timm 1.0.31 layers/weight_init.py, reduced to what the idiom needs (warnings and docstrings left out)
TRUNC_NORMAL = '''
import math
import torch


def _trunc_normal_(tensor, mean, std, a, b):
    def norm_cdf(x):
        return (1. + math.erf(x / math.sqrt(2.))) / 2.

    l = norm_cdf((a - mean) / std)
    u = norm_cdf((b - mean) / std)
    tensor.uniform_(2 * l - 1, 2 * u - 1)
    tensor.erfinv_()
    tensor.mul_(std * math.sqrt(2.))
    tensor.add_(mean)
    tensor.clamp_(min=a, max=b)
    return tensor


def trunc_normal_(tensor, mean=0., std=1., a=-2., b=2.):
    with torch.no_grad():
        return _trunc_normal_(tensor, mean, std, a, b)


def trunc_normal_tf_(tensor, mean=0., std=1., a=-2., b=2.):
    with torch.no_grad():
        _trunc_normal_(tensor, 0, 1.0, a, b)
        tensor.mul_(std).add_(mean)
    return tensor


class Holder:
    pass


def example(zeros, mode):
    holder = Holder()
    holder.pos_embed = zeros
    if mode == "tf":
        trunc_normal_tf_(holder.pos_embed, mean=0.5, std=.02)
    else:
        trunc_normal_(holder.pos_embed, mean=0.5, std=.02, a=0.47, b=0.56)
    return holder.pos_embed
'''


def _run(source: str, framework: str, **inputs):
    namespace: dict = {"__name__": "example"}
    exec(compile(source, f"<{framework}>", "exec"), namespace)  # noqa: S102 - our own examples
    if framework == "torch":
        import torch
        args = {k: torch.from_numpy(v.copy()) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
    else:
        import mlx.core as mx
        args = {k: mx.array(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
    return to_numpy(namespace["example"](**args))


def _clean(result) -> None:
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    assert not warnings, "\n".join(d.format() for d in warnings) + "\n" + result.code
    assert "import torch" not in result.code, result.code


def test_timm_trunc_normal_updates_the_callers_array():
    result = convert_source(TRUNC_NORMAL)
    _clean(result)
    assert "tensor[...] = mx.random.uniform(" in result.code, result.code
    assert convert_source(result.code).code == result.code
    zeros = np.zeros((300, 400), dtype=np.float32)  # 120k draws: the sample mean/std are within 1e-3 of the truth
    # (example's calls: mean 0.5, std 0.02, cut at [0.47, 0.56]; the tf variant cuts at mean -/+ 2 std)
    for mode, low, high in [("", 0.47, 0.56), ("tf", 0.5 - 0.04, 0.5 + 0.04)]:
        got = {fw: _run(r, fw, zeros=zeros, mode=mode) for fw, r in (("torch", TRUNC_NORMAL), ("mlx", result.code))}
        for fw, values in got.items():
            assert values.shape == zeros.shape and values.dtype == np.float32, fw
            assert values.min() >= low - 1e-6 and values.max() <= high + 1e-6, (fw, values.min(), values.max())
            assert np.unique(values).size > 1000, fw  # filled with draws, not left zero
        # the same truncated distribution: its moments agree between the frameworks to sampling error
        a, b = got["torch"], got["mlx"]
        assert abs(a.mean() - b.mean()) < 5e-4, (mode, a.mean(), b.mean())
        assert abs(a.std() - b.std()) < 5e-4, (mode, a.std(), b.std())
    # the truncated normal's own mean: N(0.5, 0.02) cut at [0.47, 0.56] (alpha=-1.5, beta=3)
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: (1 + math.erf(z / math.sqrt(2))) / 2  # noqa: E731
    expected = 0.5 + 0.02 * (phi(-1.5) - phi(3.0)) / (cdf(3.0) - cdf(-1.5))
    mlx_values = _run(result.code, "mlx", zeros=zeros, mode="")
    assert abs(mlx_values.mean() - expected) < 5e-4


DETERMINISTIC = '''
import torch


def _scale_(t, s, m):
    t.mul_(s).add_(m)
    t.clamp_(min=0.0)
    return t


def shift_(t, m):
    _scale_(t, 2.0, m)
    t.sub_(1)


class Holder:
    pass


def example(a, b):
    holder = Holder()
    holder.w = a
    alias = holder.w
    shift_(holder.w, b)
    out = _scale_(a * 1, 3.0, 0.5)
    return holder.w, alias, out
'''


def test_update_of_a_parameter_reaches_every_reference_to_the_callers_array():
    result = convert_source(DETERMINISTIC)
    _clean(result)
    assert "t[...] = " in result.code, result.code
    rng = np.random.RandomState(0)
    inputs = {"a": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal((3, 4)).astype(np.float32)}
    expected = _run(DETERMINISTIC, "torch", **inputs)
    actual = _run(result.code, "mlx", **inputs)
    assert compare(expected, actual) is None, compare(expected, actual)
    assert not np.allclose(expected[0], inputs["a"])  # the update happened (and the alias saw it in both)


def test_dtype_of_the_parameter_is_kept():
    source = textwrap.dedent('''
        import torch


        def halve_(t):
            t.mul_(0.5)
            return t


        def example(a):
            halve_(a)
            return a
    ''')
    result = convert_source(source)
    _clean(result)
    inputs = {"a": (np.arange(6).reshape(2, 3) * 3).astype(np.float16)}
    expected = _run(source, "torch", **inputs)
    actual = _run(result.code, "mlx", **inputs)
    assert expected.dtype == actual.dtype == np.float16
    assert compare(expected, actual) is None, compare(expected, actual)


FLAGGED = [
    # a view of the parameter is kept: torch's view sees the update, an MLX slice is a copy
    ("def f(t):\n    first = t[0]\n    t.add_(1)\n    return first\n", "view `t[0]` is kept"),
    ("def f(t):\n    flat = t.view(-1)\n    t.mul_(2)\n    return flat\n", "view `t.view(-1)` is kept"),
    # the shape changes: the whole-array assignment would broadcast into the old shape
    ("def f(t):\n    t.squeeze_()\n    return t\n", "changes the shape"),
    ("def f(t):\n    t.t_()\n    return t\n", "changes the shape"),
    # the parameter is rebound: the name no longer holds the caller's tensor
    ("def f(t, u):\n    if u is not None:\n        t = u\n    t.add_(1)\n    return t\n", "rebound"),
    # a caller in this file passes a view to a function that updates its parameter
    ("def fill_(t):\n    t.zero_()\n\n\ndef g(w):\n    fill_(w[0])\n    return w\n", "`w[0]` is a view"),
    ("def fill_(t):\n    t.zero_()\n\n\ndef g(w):\n    fill_(t=w.t())\n    return w\n", "`w.t()` is a view"),
]


@pytest.mark.parametrize("body,why", FLAGGED, ids=[w for _, w in FLAGGED])
def test_parameter_updates_flagged_where_the_caller_could_see_a_difference(body, why):
    result = convert_source("import torch\n\n\n" + body)
    messages = [d.message for d in result.diagnostics if d.rule_id == "inplace-op"]
    assert any(why in m for m in messages), (messages, result.code)
