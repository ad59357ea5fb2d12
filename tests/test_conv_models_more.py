"""More convolution models: MobileNet-style depthwise-separable blocks (groups=in_channels), against torch."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402

from tests.model_support import MODELS_DIR, exec_source as _exec  # noqa: E402


def _randomize_batch_norm(model) -> None:
    """Non-trivial statistics and affine parameters, so outputs are not near zero and eval really uses them."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) * 0.01 + 0.01)
                module.weight.copy_(torch.randn(module.num_features, generator=generator))
                module.bias.copy_(torch.randn(module.num_features, generator=generator))


@pytest.mark.parametrize("ctor", [
    "nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=6, bias=False)",
    "nn.Conv2d(4, 12, 3, padding=1, groups=4)",
])
def test_depthwise_conv_matches_torch(ctor):
    source = f"import torch\nimport torch.nn as nn\n\n\ndef build():\n    return {ctor}\n"
    result = convert_source(source)
    assert not result.flagged and "groups=" in result.code, result.code
    torch.manual_seed(0)
    torch_layer = _exec(source, "torch_layer")["build"]()
    mlx_layer = _exec(result.code, "mlx_layer")["build"]()
    load_torch_weights(mlx_layer, torch_layer.state_dict())
    x = np.random.RandomState(1).standard_normal((2, torch_layer.in_channels, 7, 8)).astype(np.float32)
    expected = np.moveaxis(torch_layer(torch.from_numpy(x)).detach().numpy(), 1, -1)
    np.testing.assert_allclose(np.array(mlx_layer(mx.array(np.moveaxis(x, 1, -1)))), expected, rtol=1e-4, atol=1e-5)


def test_mobilenet_small_matches_torch_with_loaded_weights():
    source = (MODELS_DIR / "mobilenet_small.py").read_text(encoding="utf-8")
    result = convert_source(source)
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    # the Sequential of this file's own DepthwiseSeparable blocks is followed as channels-last (no flag)
    assert not warnings, "\n".join(d.format() for d in warnings)
    torch.manual_seed(0)
    torch_model = _exec(source, "torch_mobilenet")["MobileNetSmall"](10)
    _randomize_batch_norm(torch_model)
    torch_model.eval()
    mlx_model = _exec(result.code, "mlx_mobilenet")["MobileNetSmall"](10)
    mlx_model.eval()
    assert load_torch_weights(mlx_model, torch_model.state_dict()).ok
    x = np.random.RandomState(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    assert np.abs(expected).max() > 0.1  # a discriminating comparison, not two near-zero outputs
    actual = np.array(mlx_model(mx.array(np.moveaxis(x, 1, -1))))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)
