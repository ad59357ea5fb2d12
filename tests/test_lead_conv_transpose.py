"""nn.ConvTranspose{1,2,3}d: exact up to padding = dilation * (kernel_size - 1), flagged beyond (MLX 0.32 gives a
wrong output size there), an assumption noted where the values are not literals (OpInfo's conv_transpose samples)."""
from __future__ import annotations

import mlx.core as mx
import mlx.nn as mnn
import numpy as np
import pytest
import torch

from torch2mlx import convert_source


def _mlx_like(layer: torch.nn.ConvTranspose2d, padding: int, dilation: int) -> mnn.ConvTranspose2d:
    k = layer.kernel_size[0]
    m = mnn.ConvTranspose2d(layer.in_channels, layer.out_channels, k, stride=layer.stride[0], padding=padding,
                            dilation=dilation)
    m.weight = mx.array(layer.weight.detach().numpy().transpose(1, 2, 3, 0))  # (I, O, kh, kw) -> (O, kh, kw, I)
    m.bias = mx.array(layer.bias.detach().numpy())
    return m


@pytest.mark.parametrize("kernel,padding,dilation", [(3, 2, 1), (3, 1, 1), (2, 2, 2), (1, 0, 1)])
def test_up_to_the_bound_mlx_matches_torch_and_nothing_is_flagged(kernel: int, padding: int, dilation: int) -> None:
    torch.manual_seed(0)
    layer = torch.nn.ConvTranspose2d(2, 3, kernel, stride=2, padding=padding, dilation=dilation)
    x = torch.randn(1, 2, 4, 5)
    expected = layer(x).detach().numpy().transpose(0, 2, 3, 1)
    got = np.array(_mlx_like(layer, padding, dilation)(mx.array(x.numpy().transpose(0, 2, 3, 1))))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    result = convert_source(f"import torch.nn as nn\nm = nn.ConvTranspose2d(2, 3, {kernel}, stride=2, padding={padding}, "
                            f"dilation={dilation})\n")
    assert result.flagged == 0 and "nn.ConvTranspose2d(2, 3" in result.code


@pytest.mark.parametrize("kernel,padding,dilation", [(1, 1, 1), (3, 3, 1), (2, 2, 1)])
def test_beyond_the_bound_mlx_differs_and_the_layer_is_flagged(kernel: int, padding: int, dilation: int) -> None:
    torch.manual_seed(0)
    layer = torch.nn.ConvTranspose2d(2, 3, kernel, stride=2, padding=padding, dilation=dilation)
    x = torch.randn(1, 2, 4, 5)
    expected = layer(x).detach().numpy().transpose(0, 2, 3, 1)
    got = np.array(_mlx_like(layer, padding, dilation)(mx.array(x.numpy().transpose(0, 2, 3, 1))))
    assert got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-4, atol=1e-5)
    source = f"import torch.nn as nn\nm = nn.ConvTranspose2d(2, 3, {kernel}, stride=2, padding={padding}, dilation={dilation})\n"
    result = convert_source(source)
    assert result.flagged == 1 and "torch2mlx: torch.nn.ConvTranspose2d" in result.code


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_a_padding_not_written_as_a_literal_is_converted_under_a_stated_assumption(dims: int) -> None:
    result = convert_source(f"import torch.nn as nn\n\ndef make(p):\n    return nn.ConvTranspose{dims}d(2, 3, 3, padding=p)\n")
    assert result.flagged == 0 and f"nn.ConvTranspose{dims}d(2, 3, 3" in result.code
    notes = [d for d in result.diagnostics if d.severity == "info" and "dilation * (kernel_size - 1)" in d.message]
    assert len(notes) == 1
