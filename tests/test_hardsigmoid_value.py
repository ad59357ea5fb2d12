"""nn.Hardsigmoid passed as a value (torchvision's MobileNetV3: `se_layer = partial(SElayer,
scale_activation=nn.Hardsigmoid)` as a default argument) becomes the local Hardsigmoid class, the same one
`nn.Hardsigmoid()` calls get; the converted block computes torch's output."""
from functools import partial  # noqa: F401  (the converted source uses it)

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402
from tests.model_support import exec_source, randomize_parameters, warnings  # noqa: E402

SOURCE = '''from functools import partial
from typing import Callable

import torch
import torch.nn as nn


class Gate(nn.Module):
    def __init__(self, channels: int, scale_activation: Callable[..., nn.Module] = nn.Sigmoid):
        super().__init__()
        self.fc = nn.Linear(channels, channels)
        self.scale_activation = scale_activation()

    def forward(self, x):
        return x * self.scale_activation(self.fc(x))


class Block(nn.Module):
    def __init__(self, channels: int, gate_layer: Callable[..., nn.Module] = partial(Gate, scale_activation=nn.Hardsigmoid)):
        super().__init__()
        self.gate = gate_layer(channels)
        self.out = nn.Hardsigmoid()

    def forward(self, x):
        return self.out(self.gate(x) * 3)
'''


def test_hardsigmoid_as_a_default_argument_value_matches_torch():
    result = convert_source(SOURCE, "block.py")
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    assert result.code.count("class Hardsigmoid(") == 1
    assert convert_source(result.code, "block.py").code == result.code
    torch.manual_seed(0)
    torch_block = exec_source(SOURCE, "torch_block")["Block"](8)
    randomize_parameters(torch_block)
    mlx_block = exec_source(result.code, "mlx_block")["Block"](8)
    assert load_torch_weights(mlx_block, torch_block.state_dict()).ok
    x = np.random.RandomState(0).standard_normal((4, 8)).astype(np.float32) * 3
    with torch.no_grad():
        expected = torch_block(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.array(mlx_block(mx.array(x))), expected, rtol=1e-4, atol=1e-5)
    assert ((expected > 0.05) & (expected < 0.95)).mean() > 0.3  # the linear part of hardsigmoid is exercised
