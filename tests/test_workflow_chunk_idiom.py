"""Output an MLX expert would write (issue 14): `x.chunk(3, dim=-1)` is `mx.split(x, 3, axis=-1)` where the size
along the axis is known to be a multiple of the chunk count (torch's chunks are then equal, which is what mx.split
makes): the output of the class's one `nn.Linear(dim, dim * 3)` chunked in 3 on the last axis, or a creation call with
literal sizes. Elsewhere torch's uneven chunks need `chunk_by_count` (mx.split(x, 3) raises unless 3 divides).
Checked against torch with the same weights."""
from __future__ import annotations

import ast
import textwrap

import numpy as np
import pytest

from torch2mlx import convert_source

SOURCE = textwrap.dedent("""
    import torch
    import torch.nn as nn


    class Attn(nn.Module):
        def __init__(self, dim, hidden):
            super().__init__()
            self.qkv = nn.Linear(dim, dim * 3)
            self.gate = nn.Linear(dim, hidden)
            self.proj = nn.Linear(dim, 12)

        def forward(self, x):
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            a, b = self.gate(x).chunk(2, dim=-1)
            c, d = torch.chunk(self.proj(x), 2, -1)
            e, f = self.qkv(x).chunk(2, dim=-1)
            return q, k, v, a, b, c, d, e, f
""")


def test_a_linear_output_chunked_by_a_factor_of_its_size_is_an_even_split_and_matches_torch():
    result = convert_source(SOURCE, "m.py")
    ast.parse(result.code)
    assert "q, k, v = mx.split(self.qkv(x), 3, axis=-1)" in result.code  # dim * 3 into 3
    assert "c, d = mx.split(self.proj(x), 2, axis=-1)" in result.code  # 12 into 2
    assert "a, b = chunk_by_count(self.gate(x), 2, -1)" in result.code  # hidden: not known
    assert "e, f = chunk_by_count(self.qkv(x), 2, -1)" in result.code  # dim * 3 into 2: odd dim makes it uneven
    assert convert_source(result.code, "m.py").code == result.code

    import mlx.core as mx
    import torch

    rng = np.random.default_rng(0)
    dim, hidden = 5, 7  # odd: dim * 3 = 15 into 2 is 8, 7; hidden 7 into 2 is 4, 3
    x = rng.standard_normal((2, 3, dim), dtype=np.float32)
    weights = {name: (rng.standard_normal((out, dim), dtype=np.float32), rng.standard_normal(out, dtype=np.float32))
               for name, out in (("qkv", dim * 3), ("gate", hidden), ("proj", 12))}
    ns_t: dict = {}
    exec(compile(SOURCE, "torch.py", "exec"), ns_t)  # noqa: S102 - the test's own program
    model_t = ns_t["Attn"](dim, hidden)
    ns_m: dict = {}
    exec(compile(result.code, "mlx.py", "exec"), ns_m)  # noqa: S102 - the test's own program
    model_m = ns_m["Attn"](dim, hidden)
    with torch.no_grad():
        for name, (w, b) in weights.items():
            getattr(model_t, name).weight.copy_(torch.tensor(w))
            getattr(model_t, name).bias.copy_(torch.tensor(b))
            getattr(model_m, name).weight = mx.array(w)
            getattr(model_m, name).bias = mx.array(b)
        expected = [o.numpy() for o in model_t(torch.tensor(x))]
    actual = [np.array(o) for o in model_m(mx.array(x))]
    assert len(expected) == len(actual)
    for e, a in zip(expected, actual):
        assert e.shape == a.shape
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("store", [
    "self.qkv = nn.Linear(dim, dim * 3)\n        self.qkv = nn.Linear(dim, dim * 2 + 1)",  # set twice
    "self.qkv = nn.Linear(dim, dim * 3) if dim else nn.Identity()",                       # not one layer
    "self.qkv = nn.Linear(dim, dim * 3)\n        self.qkv += 0",                        # another store
])
def test_where_the_layer_is_not_known_the_chunk_is_not_an_even_split(store):
    source = SOURCE.replace("self.qkv = nn.Linear(dim, dim * 3)", store)
    result = convert_source(source, "m.py")
    assert "mx.split(self.qkv(x), 3" not in result.code and "chunk_by_count(self.qkv(x), 3, -1)" in result.code


def test_a_subclass_setting_the_layer_again_makes_it_unknown():
    source = SOURCE + textwrap.dedent("""

        class Wide(Attn):
            def __init__(self, dim, hidden):
                super().__init__(dim, hidden)
                self.qkv = nn.Linear(dim, dim * 3 + 1)
    """)
    result = convert_source(source, "m.py")
    assert "chunk_by_count(self.qkv(x), 3, -1)" in result.code
