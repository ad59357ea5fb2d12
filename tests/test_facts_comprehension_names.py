"""A comprehension's or lambda's own names (transforms/facts/comprehension_names.py): `[x.split('_') for x in names]`
inside a function whose `x` is a tensor is str.split, never Tensor.split (it used to be translated: silently
wrong); a comprehension over a display of tensors, unpacked into names (transformers' falcon
`query, key, value = [x.flatten(2, 3) for x in (query, key, value)]`, bailing_hybrid's
`[x.to(torch.float32) for x in (query, key, value, g, beta)]`), gives tensors, run under torch and MLX."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from tests.model_support import warnings
from torch2mlx import convert_source

HEADER = "import torch\n\n\n"

FALCON = '''
def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor):
    query, key, value = [x.flatten(2, 3) for x in (query, key, value)]
    query, key = [x.to(torch.float32) for x in (query, key)]
    scores = torch.matmul(query, key.transpose(-1, -2))
    return torch.matmul(scores.softmax(dim=-1), value)


def last(x: torch.Tensor, names):
    parts = [x.lower() for x in names]   # the comprehension's x: a str
    return x.split(2), parts
'''


def test_comprehension_names_under_torch_and_mlx():
    import mlx.core as mx
    import torch

    q, k, v = (np.random.default_rng(i).standard_normal((2, 3, 2, 2)).astype(np.float32) for i in range(3))
    source = HEADER + FALCON + "".join(f"{n} = torch.tensor({a.tolist()})\n" for n, a in zip("qkv", (q, k, v))) + (
        "out = (attend(q, k, v), *last(torch.arange(5.0), ['A_b', 'C']))\n")
    result = convert_source(source)
    assert not warnings(result), result.diagnostics
    assert convert_source(result.code).code == result.code
    mlx_ns: dict = {}
    exec(compile(result.code, "<mlx>", "exec"), mlx_ns)
    torch_ns: dict = {}
    exec(compile(source, "<torch>", "exec"), torch_ns)
    (m_att, m_split, m_parts), (t_att, t_split, t_parts) = mlx_ns["out"], torch_ns["out"]
    assert isinstance(m_att, mx.array) and m_att.dtype == mx.float32 and tuple(m_att.shape) == tuple(t_att.shape)
    np.testing.assert_allclose(np.array(m_att), t_att.numpy(), rtol=1e-4, atol=1e-5)
    assert [np.array(a).tolist() for a in m_split] == [a.numpy().tolist() for a in t_split]
    assert m_parts == t_parts == ["a_b", "c"]
    assert all(isinstance(a, torch.Tensor) for a in t_split)


@pytest.mark.parametrize("body", [
    # the comprehension's own `x` is not the function's tensor `x`: no Tensor method translated on it
    "def f(x: torch.Tensor, names):\n    return [x.split('_') for x in names]\n",
    "def f(x: torch.Tensor, names):\n    return {x: x.split('_') for x in names}\n",
    "def f(x: torch.Tensor, names):\n    return list(map(lambda x: x.split('_'), names))\n",
    "def f(x: torch.Tensor, pairs):\n    return [x.split('_') for x, _ in pairs]\n",
    # an element of the display is not known to be a tensor
    "def f(q: torch.Tensor, k):\n    q, k = [s.view(2, -1) for s in (q, k)]\n    return k.transpose(0, 1)\n",
])
def test_what_a_comprehension_binds_is_not_the_function_value(body):
    result = convert_source(HEADER + textwrap.dedent(body))
    assert "split_by_sizes" not in result.code and "mx.split" not in result.code and "mx.swapaxes" not in result.code
    if "split('_')" in body:  # a string separator is never Tensor.split's (str-receivers): kept as written, unflagged
        assert "x.split('_')" in result.code, result.code
    else:
        assert warnings(result), result.code


def test_after_the_comprehension_the_function_name_is_a_tensor_again():
    result = convert_source(HEADER + "def f(x: torch.Tensor, names):\n    parts = [x.lower() for x in names]\n"
                            "    return x.split(2), parts\n")
    assert not warnings(result), result.diagnostics
    assert "mx.split(x" in result.code


DEBERTA = '''
import torch
from torch import nn


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.heads = 2

    def transpose_for_scores(self, x):
        new_x_shape = x.size()[:-1] + (self.heads, -1)
        x = x.view(new_x_shape)
        return x.permute(0, 2, 1, 3)

    def forward(self, q: torch.Tensor, k: torch.Tensor):
        q, k = [self.transpose_for_scores(x) for x in [q, k]]
        return torch.matmul(q, k.transpose(-1, -2))
'''


def test_a_method_called_in_a_comprehension_over_tensors_knows_its_parameter():
    """deberta's `[self.transpose_for_scores(x) for x in [q, k, v]]`: the call sites in the comprehension give
    transpose_for_scores's `x` (value_facts reads them with the targets as tensors); the `.size()` / `.view()` in it
    translate, and match torch's."""
    import mlx.core as mx
    import torch

    result = convert_source(DEBERTA)
    assert not warnings(result), result.diagnostics
    torch_ns: dict = {}
    exec(compile(DEBERTA, "t.py", "exec"), torch_ns)
    mlx_ns: dict = {}
    exec(compile(result.code, "t_mlx.py", "exec"), mlx_ns)
    q, k = (np.random.default_rng(i).standard_normal((2, 3, 4)).astype(np.float32) for i in range(2))
    expected = torch_ns["Attention"]()(torch.from_numpy(q), torch.from_numpy(k)).numpy()
    actual = np.array(mlx_ns["Attention"]()(mx.array(q), mx.array(k)))
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("call", [
    "[self.transpose_for_scores(x) for x in [q, names]]",          # an element not known to be a tensor
    "[self.transpose_for_scores(x) for x in [q, k] if x is not None]",
    "[self.transpose_for_scores(x) for x in names]",
])
def test_a_comprehension_not_over_tensors_gives_no_parameter_fact(call):
    source = DEBERTA.replace("[self.transpose_for_scores(x) for x in [q, k]]", call).replace(
        "k: torch.Tensor):", "k: torch.Tensor, names=None):")
    result = convert_source(source)
    assert any(d.rule_id == "torch.Tensor.size" for d in warnings(result)), result.code
