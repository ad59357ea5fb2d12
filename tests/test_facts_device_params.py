"""A device handed to the file's own function that only passes it to torch's `device=` becomes
`mx.default_device()` (transforms/facts/device_params.py; transformers' T5 `self.compute_bias(q_len, k_len,
device=query_states.device)`, its only flag in the real-model bench): the bias matches torch's under MLX; a device
the callee uses otherwise stays flagged."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from tests.model_support import warnings
from torch2mlx import convert_source

SOURCE = '''
import torch
from torch import nn


def positions(n, device=None):
    return torch.arange(n, dtype=torch.long, device=device)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.relative_attention_bias = nn.Embedding(8, 2)

    def compute_bias(self, query_length, key_length, device=None):
        if device is None:
            device = self.relative_attention_bias.weight.device
        context_position = torch.arange(query_length, dtype=torch.long, device=device)[:, None]
        memory_position = positions(key_length, device)[None, :]
        relative_position = (memory_position - context_position).abs().clamp(max=7)
        return self.relative_attention_bias(relative_position).permute([2, 0, 1])

    def forward(self, query_states: torch.Tensor):
        n = query_states.shape[1]
        return self.compute_bias(n, n, device=query_states.device) + positions(n, query_states.device)
'''


def test_a_device_only_passed_on_becomes_the_default_device():
    import mlx.core as mx
    import torch

    result = convert_source(SOURCE)
    assert not warnings(result), result.diagnostics
    assert result.code.count("device=mx.default_device()") == 1 and "positions(n, mx.default_device())" in result.code
    torch_ns: dict = {}
    exec(compile(SOURCE, "t.py", "exec"), torch_ns)
    mlx_ns: dict = {}
    exec(compile(result.code, "t_mlx.py", "exec"), mlx_ns)
    torch.manual_seed(0)
    ref, model = torch_ns["Attention"](), mlx_ns["Attention"]()
    model.relative_attention_bias.weight = mx.array(ref.relative_attention_bias.weight.detach().numpy())
    x = np.zeros((1, 5, 3), dtype=np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    actual = np.array(model(mx.array(x)))
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("use", [
    "    return device\n",                                   # returned: the value is seen
    "    return torch.zeros(2).to(device)\n",                # not a device= argument
    "    print(device)\n    return torch.zeros(2, device=device)\n",
    "    device = 'cpu'\n    return torch.zeros(2, device=device)\n",
])
def test_a_device_the_callee_uses_otherwise_stays_flagged(use):
    source = ("import torch\n\n\ndef f(n, device=None):\n" + use +
              "\n\ndef g(x: torch.Tensor):\n    return f(2, device=x.device)\n")
    result = convert_source(textwrap.dedent(source))
    assert any(d.rule_id == "Tensor.device" for d in warnings(result)), result.code


def test_a_method_of_another_class_may_be_another_method():
    """`self.compute_bias` in a class not deriving (by first bases) from the class that defines it in the file may
    reach another base's method: the device stays as written, flagged."""
    source = SOURCE + textwrap.dedent('''

        class Other(nn.Module):
            def forward(self, query_states: torch.Tensor):
                return self.compute_bias(2, 2, device=query_states.device)
        ''')
    result = convert_source(source)
    line = source[:source.index("return self.compute_bias(2, 2")].count("\n") + 1
    assert [d.line for d in warnings(result) if d.rule_id == "Tensor.device"] == [line], result.code
