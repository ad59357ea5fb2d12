"""`.device` of a value the facts do not type never passes through to MLX, where an mx.array has no `.device`
(transforms/runtime/device_reads.py flags it; transforms/facts/device_sinks.py and device_params.py translate the
reads whose value only reaches dropped device arguments). timm's EdgeNeXt / XCiT positional encoding read
`self.token_projection.weight.device` and crashed under MLX unflagged; transformers' T5 `compute_bias` rebinds its
device parameter to `self.relative_attention_bias.weight.device`."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from tests.model_support import warnings
from torch2mlx import convert_source

SOURCE = '''
import torch
from torch import nn


class PositionalEncoding(nn.Module):
    def __init__(self, hidden_dim=4, dim=6):
        super().__init__()
        self.token_projection = nn.Linear(hidden_dim * 2, dim)
        self.hidden_dim = hidden_dim

    def forward(self, shape):
        device = self.token_projection.weight.device
        dtype = self.token_projection.weight.dtype
        inv_mask = ~torch.zeros(shape).to(device=device, dtype=torch.bool)
        y_embed = inv_mask.cumsum(1, dtype=torch.float32)
        dim_t = torch.arange(self.hidden_dim, dtype=torch.int64, device=device).to(torch.float32)
        pos = y_embed[:, :, :, None] / (dim_t + 1)
        pos = torch.cat((pos.sin(), pos.cos()), dim=3)
        return self.token_projection(pos.to(dtype))
'''


def test_a_device_read_only_by_dropped_arguments_becomes_the_default_device():
    import mlx.core as mx
    import torch

    result = convert_source(SOURCE)
    assert not warnings(result), result.diagnostics
    assert ".device" not in result.code and "device = mx.default_device()" in result.code
    torch_ns: dict = {}
    exec(compile(SOURCE, "t.py", "exec"), torch_ns)
    mlx_ns: dict = {}
    exec(compile(result.code, "t_mlx.py", "exec"), mlx_ns)
    torch.manual_seed(0)
    ref, model = torch_ns["PositionalEncoding"](), mlx_ns["PositionalEncoding"]()
    model.token_projection.weight = mx.array(ref.token_projection.weight.detach().numpy())
    model.token_projection.bias = mx.array(ref.token_projection.bias.detach().numpy())
    with torch.no_grad():
        expected = ref((2, 3, 5)).numpy()
    actual = np.array(model((2, 3, 5)))
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("read", [
    "self.proj.weight.device",      # an attribute chain the facts do not type
    "make(x).device",               # a call of an unknown function
    "xs[0].device",                 # an element of an untyped list
])
def test_device_of_an_untyped_value_is_flagged(read):
    source = textwrap.dedent(f'''
        import torch
        from torch import nn
        from elsewhere import make


        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = nn.Linear(2, 2)

            def forward(self, x, xs):
                return {read}
        ''')
    result = convert_source(source)
    flagged = [d for d in warnings(result) if d.rule_id == "Tensor.device"]
    assert len(flagged) == 1 and flagged[0].line == source.count("\n", 0, source.index("return")) + 1, result.code


@pytest.mark.parametrize("use", [
    "return torch.zeros(2).to(device=device).sum() + len(str(device))",  # the value is seen: str(device)
    "return torch.zeros(2).to(device, torch.float16)",                  # .to(device, dtype) stays a device sink,
])                                                                      # but `device` is also compared below
def test_a_device_seen_otherwise_stays_flagged(use):
    source = textwrap.dedent(f'''
        import torch
        from torch import nn


        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = nn.Linear(2, 2)

            def forward(self):
                device = self.proj.weight.device
                if device == "cpu":
                    pass
                {use}
        ''')
    result = convert_source(source)
    assert any(d.rule_id == "Tensor.device" for d in warnings(result)), result.code


def test_own_attributes_and_stores_are_not_device_reads():
    """`self.device` is the user's own attribute (no tensor), a store to `.device` no read."""
    source = textwrap.dedent('''
        import torch
        from torch import nn


        class M(nn.Module):
            def __init__(self, device="cpu"):
                super().__init__()
                self.device = device
                self.cfg = Config()
                self.cfg.device = device

            def forward(self, x: torch.Tensor):
                return x.sum() if self.device == "cpu" else x
        ''')
    result = convert_source(source)
    assert not [d for d in warnings(result) if d.rule_id == "Tensor.device"], result.code


def test_a_device_parameter_rebound_to_a_weight_device():
    """T5's `if device is None: device = self.relative_attention_bias.weight.device` in a method whose device only
    reaches torch's `device=`: the binding becomes the default device too (no `.device` is left to raise)."""
    source = textwrap.dedent('''
        import torch
        from torch import nn


        class Attention(nn.Module):
            def __init__(self):
                super().__init__()
                self.relative_attention_bias = nn.Embedding(8, 2)

            def compute_bias(self, n, device=None):
                if device is None:
                    device = self.relative_attention_bias.weight.device
                return torch.arange(n, dtype=torch.long, device=device)

            def forward(self, x: torch.Tensor):
                return self.compute_bias(x.shape[1], device=x.device), self.compute_bias(3)
        ''')
    import mlx.core as mx
    import torch

    result = convert_source(source)
    assert not warnings(result), result.diagnostics
    assert ".device" not in result.code, result.code
    torch_ns: dict = {}
    exec(compile(source, "t.py", "exec"), torch_ns)
    mlx_ns: dict = {}
    exec(compile(result.code, "t_mlx.py", "exec"), mlx_ns)
    x = np.zeros((1, 4), dtype=np.float32)
    expected = torch_ns["Attention"]()(torch.from_numpy(x))
    actual = mlx_ns["Attention"]()(mx.array(x))
    for a, e in zip(actual, expected):
        assert a.shape == tuple(e.shape) and str(a.dtype).endswith(str(e.dtype).split(".")[-1])
        np.testing.assert_array_equal(np.array(a), e.numpy())
