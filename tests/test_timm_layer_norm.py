"""timm's LayerNorm / LayerNorm2d (timm/layers/norm.py) call `F.layer_norm(x, self.normalized_shape, ...)`
with the shape held in an attribute of a class deriving from nn.LayerNorm: converted through the local helper
layer_norm_any (torch2mlx/handlers/nn_layer_norm_any.py), run under torch and MLX, compared."""
from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
import torch

from tests.model_support import exec_source, randomize_parameters, warnings
from torch2mlx import convert_source, load_torch_weights

SOURCE = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm(nn.LayerNorm):
    def __init__(self, num_channels, eps=1e-6, affine=True):
        super().__init__(num_channels, eps=eps, elementwise_affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x


class Net(nn.Module):
    def __init__(self, shape, affine):
        super().__init__()
        self.fc = nn.Linear(6, 12)
        self.norm = LayerNorm(shape, affine=affine)

    def forward(self, x):
        return self.norm(self.fc(x).reshape(2, 3, 3, 4))
'''


@pytest.mark.parametrize("shape,affine", [(4, True), ((3, 4), True), ([3, 3, 4], True), (4, False), ((3, 4), False)])
def test_layer_norm_of_an_attribute_shape_matches_torch(shape, affine):
    result = convert_source(SOURCE, "norm.py")
    assert not warnings(result), [d.format() for d in warnings(result)]
    assert "layer_norm_any(x, self.normalized_shape, self.weight, self.bias, self.eps)" in result.code
    assert "import torch" not in result.code
    torch_model = exec_source(SOURCE, "torch_norm")["Net"](shape, affine)
    randomize_parameters(torch_model)
    mlx_model = exec_source(result.code, "mlx_norm")["Net"](shape, affine)
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and report.loaded
    x = np.random.RandomState(0).standard_normal((2, 3, 6)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    actual = np.array(mlx_model(mx.array(x)))
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


def test_a_shape_that_is_not_trailing_raises_as_in_torch():
    code = convert_source(SOURCE, "norm.py").code
    mlx_model = exec_source(code, "mlx_norm")["Net"]((3, 3), True)
    with pytest.raises(ValueError):
        mlx_model(mx.zeros((2, 3, 6)))
    with pytest.raises(RuntimeError):
        exec_source(SOURCE, "torch_norm")["Net"]((3, 3), True)(torch.zeros(2, 3, 6))
