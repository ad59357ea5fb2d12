"""Classes deriving from nn.Conv3d / nn.Conv1d (layer_bases.py TorchConv3d / TorchConv1d), as torchvision's
video ResNet writes them (models/video/resnet.py: Conv3DSimple, Conv3DNoTemporal: keyword super().__init__,
a staticmethod, no forward of their own): converted and run against torch with the same weights. Before these
bases the classes stayed flagged, and the flag at module level kept `import torch` in the converted
torchvision.models.video.resnet, so `import torchvision.models` failed without torch."""
from __future__ import annotations

import numpy as np
import pytest

from torch2mlx import convert_source, load_torch_weights
from tests.model_support import assert_close, exec_source, warnings

VIDEO_CONVS = '''
from typing import Optional

import torch
import torch.nn as nn


class Conv3DSimple(nn.Conv3d):
    def __init__(
        self, in_planes: int, out_planes: int, midplanes: Optional[int] = None, stride: int = 1, padding: int = 1
    ) -> None:

        super().__init__(
            in_channels=in_planes,
            out_channels=out_planes,
            kernel_size=(3, 3, 3),
            stride=stride,
            padding=padding,
            bias=False,
        )

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return stride, stride, stride


class Conv3DNoTemporal(nn.Conv3d):
    def __init__(
        self, in_planes: int, out_planes: int, midplanes: Optional[int] = None, stride: int = 1, padding: int = 1
    ) -> None:

        super().__init__(
            in_channels=in_planes,
            out_channels=out_planes,
            kernel_size=(1, 3, 3),
            stride=(1, stride, stride),
            padding=(0, padding, padding),
            bias=False,
        )

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return 1, stride, stride


class CausalConv1d(nn.Conv1d):
    def __init__(self, cin, cout, kernel_size, dilation=1, **kwargs):
        super().__init__(cin, cout, kernel_size, dilation=dilation, padding=0, **kwargs)
        self.left = (kernel_size - 1) * dilation

    def forward(self, x):
        x = torch.cat([torch.zeros(x.shape[0], x.shape[1], self.left), x], dim=2)
        return self._conv_forward(x, self.weight, self.bias)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.simple = Conv3DSimple(3, 4, stride=Conv3DSimple.get_downsample_stride(2))
        self.spatial = Conv3DNoTemporal(4, 6, stride=2, padding=1)
        self.causal = CausalConv1d(4, 6, 3, dilation=2, groups=2)
        self.valid = CausalConv1d(6, 5, 1, padding_mode="zeros")

    def forward(self, clip, seq):
        return self.spatial(self.simple(clip)), self.valid(self.causal(seq))
'''


def _convert(source: str, name: str):
    result = convert_source(source, f"{name}.py")
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    assert convert_source(result.code).code == result.code, "converting the output again changed it"
    return result


def test_conv3d_and_conv1d_bases_match_torch():
    import mlx.core as mx
    import torch

    result = _convert(VIDEO_CONVS, "video_convs")
    code = result.code
    for line in ("class Conv3DSimple(TorchConv3d):", "class Conv3DNoTemporal(TorchConv3d):",
                 "class CausalConv1d(TorchConv1d):"):
        assert line in code, line
    assert "import torch" not in code
    torch_ns = exec_source(VIDEO_CONVS, "torch_video_convs")
    mlx_ns = exec_source(code, "mlx_video_convs")
    torch.manual_seed(0)
    torch_model = torch_ns["Net"]().eval()
    mlx_model = mlx_ns["Net"]()
    mlx_model.eval()
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and len(report.loaded) == len(torch_model.state_dict()), report
    rng = np.random.RandomState(0)
    clip = rng.standard_normal((2, 3, 5, 9, 10)).astype(np.float32)
    seq = rng.standard_normal((2, 4, 11)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(clip), torch.from_numpy(seq))
    actual = mlx_model(mx.array(clip), mx.array(seq))
    assert_close(actual, expected, channels_last_output=False)
    # torch's attributes, as code deriving from the layers reads them
    simple, spatial, causal = mlx_model.simple, mlx_model.spatial, mlx_model.causal
    t_simple, t_spatial, t_causal = torch_model.simple, torch_model.spatial, torch_model.causal
    for mine, theirs in ((simple, t_simple), (spatial, t_spatial), (causal, t_causal)):
        for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                     "padding_mode", "transposed", "output_padding"):
            assert getattr(mine, attr) == getattr(theirs, attr), attr
        assert mine.weight.shape == tuple(theirs.weight.shape)
        assert (mine.bias is None) == (theirs.bias is None)
    assert mlx_ns["Conv3DNoTemporal"].get_downsample_stride(2) == (1, 2, 2)


def test_unbatched_input_and_string_padding_match_torch():
    import mlx.core as mx
    import torch

    source = '''
import torch.nn as nn


class SameConv3d(nn.Conv3d):
    def __init__(self, cin, cout):
        super().__init__(cin, cout, (3, 1, 3), padding="same", dilation=(1, 2, 2))


class ValidConv1d(nn.Conv1d):
    def __init__(self, cin, cout):
        super().__init__(cin, cout, 3, padding="valid", stride=2)
'''
    result = _convert(source, "string_padding")
    torch_ns, mlx_ns = exec_source(source, "torch_string_padding"), exec_source(result.code, "mlx_string_padding")
    rng = np.random.RandomState(1)
    for name, shape in (("SameConv3d", (3, 4, 6, 7)), ("ValidConv1d", (3, 9)), ("ValidConv1d", (2, 3, 9))):
        torch.manual_seed(0)
        torch_layer = torch_ns[name](3, 4)
        mlx_layer = mlx_ns[name](3, 4)
        assert load_torch_weights(mlx_layer, torch_layer.state_dict()).ok
        x = rng.standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            expected = torch_layer(torch.from_numpy(x))
        assert_close(mlx_layer(mx.array(x)), expected, channels_last_output=False, where=f"{name}{shape}")


@pytest.mark.parametrize("kwargs", [dict(groups=2), dict(padding_mode="circular"), dict(padding="same", kernel_size=2)])
def test_conv3d_what_mlx_cannot_do_raises(kwargs):
    """MLX's 3-D convolution has no groups: building such a layer raises (torch builds it), never a different layer."""
    source = '''
import torch.nn as nn


class MyConv3d(nn.Conv3d):
    pass
'''
    result = _convert(source, "raising")
    ns = exec_source(result.code, "mlx_raising")
    with pytest.raises(NotImplementedError):
        ns["MyConv3d"](4, 4, **{"kernel_size": 3, **kwargs})
