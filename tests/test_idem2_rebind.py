"""`x = x.view(...)` after `x = x.permute(...)`: the name's earlier binding (a tensor) is followed, so the first
conversion translates the view as the second did (transformers' llava_onevision, apply_pooling); the translation
runs the same under torch and MLX."""
from __future__ import annotations

import difflib
import textwrap

import mlx.core as mx
import numpy as np
import torch

from torch2mlx import convert_source

SOURCE = '''
import torch


def pool(x):
    x = x.permute(0, 2, 1)
    x = x.view(x.shape[0], -1)
    return x


def use(x, n: int):
    return pool(x).reshape(n, -1)


def _left_for_torch(flag):
    return torch.strided
'''


def test_a_name_rebound_from_itself_converts_to_itself_and_runs_the_same():
    first = convert_source(textwrap.dedent(SOURCE), "pool.py").code
    second = convert_source(first, "pool.py").code
    assert second == first, "\n".join(difflib.unified_diff(first.splitlines(), second.splitlines(), lineterm=""))
    assert ".view(" not in first.split("def _left_for_torch")[0] and "pool(x).reshape(" not in first, first
    torch_ns: dict = {}
    exec(textwrap.dedent(SOURCE), torch_ns)
    mlx_ns: dict = {}
    exec(first.split("def _left_for_torch")[0], mlx_ns)
    data = np.arange(8, dtype=np.float32).reshape(2, 1, 4)  # a size-1 dim: view after permute is legal in torch
    expected = torch_ns["use"](torch.from_numpy(data), 4).numpy()
    got = mlx_ns["use"](mx.array(data), 4)
    assert tuple(got.shape) == expected.shape and got.dtype == mx.float32
    np.testing.assert_allclose(np.array(got), expected, rtol=1e-4, atol=1e-5)
