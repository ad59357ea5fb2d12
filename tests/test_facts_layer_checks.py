"""`m.weight` inside `if isinstance(m, nn.Linear):` is a tensor (transforms/facts/layer_checks.py; timm's
_efficientnet_builder.py:568 `fan_out = m.weight.size(0)`): the sizes match torch's under MLX; a convolution's
weight (another layout in MLX), a name rebound in the body, and the code after the test stay flagged."""
from __future__ import annotations

import textwrap

import pytest

from tests.model_support import warnings
from torch2mlx import convert_source

SOURCE = '''
import math

import torch
from torch import nn


def fans(m, n):
    fan_out = fan_in = -1
    if isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
    elif isinstance(m, nn.Linear):
        fan_out = m.weight.size(0)  # fan-out
        fan_in = 0
        if 'routing_fn' in n:
            fan_in = m.weight.size(1)
    elif isinstance(m, (nn.Embedding, nn.Linear)):
        fan_in = m.weight.shape[1]
    return fan_out, fan_in


out = [fans(nn.Linear(3, 5), 'routing_fn'), fans(nn.Linear(3, 5), 'x'), fans(nn.Embedding(7, 2), '')]
'''


def test_a_checked_layer_weight_is_a_tensor_under_mlx():
    result = convert_source(SOURCE)
    assert not warnings(result), result.diagnostics
    mlx_ns: dict = {}
    exec(compile(result.code, "<mlx>", "exec"), mlx_ns)
    torch_ns: dict = {}
    exec(compile(SOURCE, "<torch>", "exec"), torch_ns)
    assert mlx_ns["out"] == torch_ns["out"] == [(5, 3), (5, 0), (-1, 2)]


@pytest.mark.parametrize("body", [
    "def f(m):\n    if isinstance(m, nn.Conv2d):\n        return m.weight.size(1)\n",      # MLX: (out, kh, kw, in)
    "def f(m, k):\n    if isinstance(m, nn.Linear):\n        m = k\n        return m.weight.size(1)\n",
    "def f(m):\n    if isinstance(m, nn.Linear):\n        pass\n    return m.weight.size(1)\n",
    "def f(m):\n    if isinstance(m, nn.Linear):\n        return m.bias.size(0)\n",          # bias=False: None
    "def f(m):\n    if isinstance(m, (nn.Linear, nn.Conv1d)):\n        return m.weight.size(0)\n",
])
def test_what_may_not_be_that_weight_stays_flagged(body):
    result = convert_source("import torch\nfrom torch import nn\n\n\n" + textwrap.dedent(body))
    assert any(d.rule_id == "torch.Tensor.size" for d in warnings(result)), result.code


def test_to_a_known_tensor_takes_its_dtype_under_mlx():
    """`initial_state.to(value)` of two known tensors (transformers' bailing_hybrid / qwen3_next): torch gives value's
    dtype (and device); MLX `.astype(value.dtype)`. An argument not known to be a tensor stays flagged."""
    import mlx.core as mx
    import numpy as np

    source = ("import torch\n\n\ndef f(x: torch.Tensor, value: torch.Tensor, s):\n    return x.to(value), x.to(value + 1)\n\n\n"
              "out = f(torch.tensor([1.5, -2.25]), torch.tensor([1, 2]), 'cpu')\n")
    result = convert_source(source)
    assert not warnings(result), result.diagnostics
    mlx_ns: dict = {}
    exec(compile(result.code, "<mlx>", "exec"), mlx_ns)
    torch_ns: dict = {}
    exec(compile(source, "<torch>", "exec"), torch_ns)
    for m, t in zip(mlx_ns["out"], torch_ns["out"]):
        assert m.dtype == mx.int64 and str(t.dtype) == "torch.int64"
        np.testing.assert_array_equal(np.array(m), t.numpy())
    flagged = convert_source("import torch\n\n\ndef f(x: torch.Tensor, s):\n    return x.to(s)\n")
    assert any(d.rule_id == "Tensor.to" for d in warnings(flagged)), flagged.code
