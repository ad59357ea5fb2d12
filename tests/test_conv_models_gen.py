"""UNet and DCGAN fixtures, and nn.Upsample: convert, load torch weights, compare (NCHW for torch, NHWC for MLX)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source  # noqa: E402
from tests.model_support import (  # noqa: E402
    assert_model_matches_torch, converts_clean, assert_close as _assert_close, channels_last as _channels_last, exec_source as _exec, randomize_batch_norm as _randomize_batch_norm)


CASES = {  # name: (file, class, constructor args, torch input shape NCHW)
    "unet_small": ("unet_small.py", "UNetSmall", (3, 2, 4), (2, 3, 12, 16)),
    "dcgan_generator": ("dcgan.py", "Generator", (8, 4, 3), (2, 8, 1, 1)),
    "dcgan_discriminator": ("dcgan.py", "Discriminator", (3, 4), (3, 3, 16, 16)),
}


@pytest.mark.parametrize("file", sorted({c[0] for c in CASES.values()}))
def test_fixture_converts_without_flags(file):
    converts_clean(file)


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_matches_torch_with_loaded_weights(name):
    file, cls, args, shape = CASES[name]
    assert_model_matches_torch(file, lambda ns: ns[cls](*args), shape, randomize=_randomize_batch_norm)


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
