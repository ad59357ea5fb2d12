"""`.reshape(...)` / `.flatten(...)` of a value the facts do not type is left as written, unflagged: mx.array's
take torch's positional shapes and dims with torch's meaning (transforms/facts/array_methods.py). timm's ResNeSt reshapes the output of a
layer built from a class argument, ConvNeXt a layer-scale Parameter that may be None, PVT-v2 the output of an
optional downsample: flagged before, they run under MLX as under torch."""
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
    def __init__(self, dim, radix=2, act_layer=nn.ReLU, ls_init_value=0.5, downsample=True):
        super().__init__()
        self.radix = radix
        self.fc = nn.Linear(dim, dim * radix)
        self.act = act_layer()
        self.down = nn.Linear(dim * radix, dim * radix) if downsample else None
        self.gamma = nn.Parameter(ls_init_value * torch.ones(dim)) if ls_init_value is not None else None

    def forward(self, x):
        x = self.act(self.fc(x))
        if self.down is not None:
            x = self.down(x)
        B, N, RC = x.shape
        x = x.reshape((B, N, self.radix, RC // self.radix))
        x = x.sum(dim=2)
        if self.gamma is not None:
            x = x.mul(self.gamma.reshape(1, 1, -1))
        shape = (B, -1)
        y = self.act(x.reshape(B, 2, -1))
        return x.reshape(*shape) + y.flatten(1) + y.flatten(0, -1).reshape(B, -1) + y.flatten()[0]
'''


@pytest.mark.parametrize("kwargs", [{}, {"ls_init_value": None, "downsample": False}])
def test_untyped_reshapes_run_as_in_torch(kwargs):
    import mlx.core as mx
    import torch

    result = convert_source(SOURCE)
    assert not warnings(result), result.diagnostics
    assert "y.flatten(1) + y.flatten(0, -1).reshape(B, -1)" in result.code  # as written: an untyped receiver
    torch_ns: dict = {}
    exec(compile(SOURCE, "t.py", "exec"), torch_ns)
    mlx_ns: dict = {}
    exec(compile(result.code, "t_mlx.py", "exec"), mlx_ns)
    torch.manual_seed(0)
    ref, model = torch_ns["Block"](3, **kwargs), mlx_ns["Block"](3, **kwargs)
    weights = {k: mx.array(v.detach().numpy()) for k, v in ref.state_dict().items()}
    model.load_weights(list(weights.items()))
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    actual = np.array(model(mx.array(x)))
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("call", [
    "y.reshape(shape=(2, -1))",   # torch's keyword: mx.array.reshape has none
    "y.view(2, -1)",              # mx.array.view is a dtype view
    "y.flatten(start_dim=1)",     # MLX's keyword is start_axis
])
def test_other_forms_on_untyped_values_stay_flagged(call):
    source = textwrap.dedent(f'''
        import torch
        from elsewhere import make


        def f(x):
            y = make(x)
            return {call}
        ''')
    result = convert_source(source)
    assert [d.kind for d in warnings(result)] == ["unknown-receiver"], result.code
