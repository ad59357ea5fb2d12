"""`self.x` under `if self.x is not None:` (or in the `else` of `is None`) is a tensor where every store of `x` in
the class family is a tensor or None (value_facts `optional_attributes`, transforms/facts/none_checks.py): timm's
ConvNeXt layer scale `self.gamma = nn.Parameter(...) if ls_init_value is not None else None`."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from tests.model_support import warnings
from torch2mlx import convert_source

SOURCE = '''
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, dim, ls_init_value=0.5):
        super().__init__()
        self.gamma = nn.Parameter(ls_init_value * torch.linspace(0.1, 1.0, dim)) if ls_init_value is not None else None
        self.fc = nn.Linear(dim, dim)

    def forward(self, x):
        x = self.fc(x)
        if self.gamma is not None and x.shape[0] > 0:
            x = x.mul(self.gamma.view(1, -1).unsqueeze(0))
        if self.gamma is None:
            x = x * 2
        else:
            x = x + self.gamma.view(-1)
        return x
'''


@pytest.mark.parametrize("ls_init_value", [0.5, None])
def test_an_optional_parameter_checked_not_none_is_a_tensor(ls_init_value):
    import mlx.core as mx
    import torch

    result = convert_source(SOURCE)
    assert not warnings(result), result.diagnostics
    torch_ns: dict = {}
    exec(compile(SOURCE, "t.py", "exec"), torch_ns)
    mlx_ns: dict = {}
    exec(compile(result.code, "t_mlx.py", "exec"), mlx_ns)
    torch.manual_seed(0)
    ref, model = torch_ns["Block"](3, ls_init_value), mlx_ns["Block"](3, ls_init_value)
    model.load_weights([(k, mx.array(v.detach().numpy())) for k, v in ref.state_dict().items()])
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    actual = np.array(model(mx.array(x)))
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("other_store, test", [
    ("self.gamma = [1.0, 2.0]", "self.gamma is not None"),   # a list stored too: not a tensor-or-None
    ("pass", "self.gamma is None"),                          # the body of `is None`
    ("pass", "self.gamma is not None or x.shape[0] > 0"),    # `or`: either may hold
])
def test_what_is_not_shown_to_be_a_tensor_stays_flagged(other_store, test):
    source = textwrap.dedent(f'''
        import torch
        from torch import nn


        class Block(nn.Module):
            def __init__(self, dim, flag):
                super().__init__()
                self.gamma = nn.Parameter(torch.ones(dim)) if flag else None
                if flag == 2:
                    {other_store}

            def forward(self, x):
                if {test}:
                    x = x * self.gamma.view(1, -1)
                return x
        ''')
    result = convert_source(source)
    assert any(d.kind == "unknown-receiver" for d in warnings(result)), result.code
