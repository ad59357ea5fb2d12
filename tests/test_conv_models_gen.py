"""UNet and DCGAN fixtures, and nn.Upsample: convert, load torch weights, compare (NCHW for torch, NHWC for MLX)."""
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402
from tests.test_conv_models import _assert_close, _channels_last, _exec, _randomize_batch_norm  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "models"

CASES = {  # name: (file, class, constructor args, torch input shape NCHW)
    "unet_small": ("unet_small.py", "UNetSmall", (3, 2, 4), (2, 3, 12, 16)),
    "dcgan_generator": ("dcgan.py", "Generator", (8, 4, 3), (2, 8, 1, 1)),
    "dcgan_discriminator": ("dcgan.py", "Discriminator", (3, 4), (3, 3, 16, 16)),
}


@pytest.mark.parametrize("file", sorted({c[0] for c in CASES.values()}))
def test_fixture_converts_without_flags(file):
    path = MODELS_DIR / file
    result = convert_source(path.read_text(encoding="utf-8"), str(path))
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    assert not warnings, "\n".join(d.format() for d in warnings)
    assert "torch" not in result.code.replace("torch2mlx", "")
    assert "# MLX layout: inputs" in result.code
    assert convert_source(result.code).code == result.code


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_matches_torch_with_loaded_weights(name):
    file, cls, args, shape = CASES[name]
    source = (MODELS_DIR / file).read_text(encoding="utf-8")
    torch_ns, mlx_ns = _exec(source, f"torch_{name}"), _exec(convert_source(source).code, f"mlx_{name}")
    torch.manual_seed(0)
    torch_model = torch_ns[cls](*args)
    _randomize_batch_norm(torch_model)
    torch_model.eval()
    mlx_model = mlx_ns[cls](*args)
    mlx_model.eval()
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and report.loaded
    x = np.random.RandomState(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    _assert_close(mlx_model(mx.array(_channels_last(x))), expected)


UPSAMPLE = [  # checked against torch on NHWC data; H != W != C so a wrong axis shows
    "nn.Upsample(scale_factor=2)",
    "nn.Upsample(scale_factor=(2, 3), mode='nearest')",
    "nn.Upsample(scale_factor=2, mode='bilinear')",
    "nn.Upsample(scale_factor=3, mode='bilinear', align_corners=True)",
    "nn.Upsample(None, 2, 'bilinear', False)",
]


@pytest.mark.parametrize("ctor", UPSAMPLE)
def test_upsample_matches_torch(ctor):
    source = f"import torch.nn as nn\n\n\ndef build():\n    return {ctor}\n"
    result = convert_source(source)
    assert not result.flagged, result.code
    x = np.random.RandomState(1).standard_normal((2, 3, 5, 4)).astype(np.float32)
    expected = _exec(source, "torch_up")["build"]()(torch.from_numpy(x))
    _assert_close(_exec(result.code, "mlx_up")["build"]()(mx.array(_channels_last(x))), expected)


@pytest.mark.parametrize("ctor", ["nn.Upsample(scale_factor=1.5)", "nn.Upsample(size=(8, 8))",
                                  "nn.Upsample(scale_factor=2, mode='bicubic')",
                                  "nn.Upsample(scale_factor=2, recompute_scale_factor=True)"])
def test_inexact_upsampling_is_flagged(ctor):
    assert convert_source(f"import torch.nn as nn\n\n\ndef build():\n    return {ctor}\n").flagged


def test_upsample_alone_makes_a_class_channels_last():
    source = ("import torch\nimport torch.nn as nn\n\n\nclass Up(nn.Module):\n    def __init__(self):\n"
              "        super().__init__()\n        self.up = nn.Upsample(scale_factor=2)\n\n"
              "    def forward(self, x):\n        h = torch.relu(self.up(x))\n        return torch.cat([h, h], dim=1)\n")
    result = convert_source(source)
    assert "axis=3" in result.code and "# MLX layout: inputs x" in result.code, result.code
    x = np.random.RandomState(2).standard_normal((2, 3, 5, 4)).astype(np.float32)
    expected = _exec(source, "torch_cls")["Up"]()(torch.from_numpy(x))
    _assert_close(_exec(result.code, "mlx_cls")["Up"]()(mx.array(_channels_last(x))), expected)
