"""`p, q = self.heads(x)` where every store of `self.heads` builds a module class of the file whose forward returns a
tuple of tensors (value_facts `_tuple_submodules`; transformers' pre-training heads): p and q are tensors, checked
under torch and MLX; a store into the submodule, a `__call__` or another decorator keeps them unknown."""
from __future__ import annotations

import numpy as np
import pytest

from tests.model_support import warnings
from torch2mlx import convert_source

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

SOURCE = '''
import torch
from torch import nn


class Heads(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(4, 2)

    def forward(self, x):
        return self.a(x), self.b(x)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.heads = Heads()

    def forward(self, x):
        p, q = self.heads(x)
        return p.view(-1), q.transpose(0, 1)
'''


def test_a_submodule_returning_a_tuple_gives_its_tensors():
    result = convert_source(SOURCE)
    assert not warnings(result), result.diagnostics
    torch_ns: dict = {}
    exec(compile(SOURCE, "t.py", "exec"), torch_ns)
    mlx_ns: dict = {}
    exec(compile(result.code, "t_mlx.py", "exec"), mlx_ns)
    torch.manual_seed(0)
    ref, model = torch_ns["Model"]().eval(), mlx_ns["Model"]()
    for name in ("a", "b"):
        layer, torch_layer = getattr(model.heads, name), getattr(ref.heads, name)
        layer.weight = mx.array(torch_layer.weight.detach().numpy())
        layer.bias = mx.array(torch_layer.bias.detach().numpy())
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    with torch.no_grad():
        expected = [t.numpy() for t in ref(torch.from_numpy(x))]
    actual = [np.array(a) for a in model(mx.array(x))]
    for a, e in zip(actual, expected):
        assert a.shape == e.shape and a.dtype == e.dtype
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("old, new", [
    ("        self.heads = Heads()\n", "        self.heads = Heads()\n        self.heads.a = make()\n"),
    ("    def forward(self, x):\n        return self.a(x)", "    def __call__(self, *a):\n        return 1\n\n"
                                                          "    def forward(self, x):\n        return self.a(x)"),
    ("    def forward(self, x):\n        return self.a(x)", "    @wrap\n    def forward(self, x):\n        return self.a(x)"),
    ("        self.heads = Heads()\n", "        self.heads = Heads() if x else make()\n"),
])
def test_what_may_give_something_else_stays_unknown(old, new):
    assert old in SOURCE
    result = convert_source(SOURCE.replace(old, new, 1))
    assert any("not known to be a tensor" in d.message for d in warnings(result)), result.code
