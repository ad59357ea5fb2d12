"""Layer attributes read off a layer whose class the file does not show (timm's `self.conv = create_conv2d(...)`,
an nn.Conv2d or a class of timm's own; its feature_info reads `self.conv.out_channels` while the model is built),
and `layer.bias is None` on a layer built without bias (torchvision's ViT init, timm's GluMlp): converted, run
under torch and MLX, compared (torch2mlx/layer_attributes.py)."""
from __future__ import annotations

import pytest

from tests.model_support import exec_source, warnings
from torch2mlx import convert_source

SOURCE = '''
import torch
import torch.nn as nn


class MixedConv(nn.Module):
    """A class of its own with torch's attribute names (timm's MixedConv2d)."""

    def __init__(self, in_chs, out_chs):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_chs, out_chs, (5, 5)
        self.conv = nn.Conv2d(in_chs, out_chs, 5, padding=2)
        self.bias = None

    def forward(self, x):
        return self.conv(x)


def create_conv2d(in_chs, out_chs, kernel_size, mixed=False, **kwargs):
    if mixed:
        return MixedConv(in_chs, out_chs)
    return nn.Conv2d(in_chs, out_chs, kernel_size, padding=kernel_size // 2, **kwargs)


class Embed(nn.Module):
    def __init__(self, in_chs, out_chs, bias, mixed, groups):
        super().__init__()
        self.conv = create_conv2d(in_chs, out_chs, 3, mixed=mixed, groups=groups) if mixed else \\
            create_conv2d(in_chs, out_chs, 3, bias=bias, groups=groups)
        self.head = nn.Sequential(nn.Linear(out_chs, 4, bias=bias))
        self.fc = self.head.layers[0] if hasattr(self.head, "layers") else self.head[0]
        self.width = self.conv.out_channels + self.conv.in_channels

    def feature_info(self):
        return [self.conv.out_channels, self.conv.in_channels, tuple(self.conv.kernel_size),
                self.fc.in_features, self.fc.out_features, self.width]

    def has_bias(self):
        return [self.conv.bias is None, self.conv.bias is not None, self.fc.bias is not None]

    def forward(self, x):
        return self.conv(x)
'''


@pytest.mark.parametrize("bias,mixed,groups", [(True, False, 1), (False, False, 1), (False, False, 2), (True, True, 1)])
def test_attributes_of_a_layer_of_unknown_class_match_torch(bias, mixed, groups):
    result = convert_source(SOURCE, "embed.py")
    assert not [d for d in warnings(result) if d.rule_id == "torch-layer-attribute"], \
        [d.format() for d in warnings(result)]
    assert 'torch_layer_attribute(self.conv, "out_channels")' in result.code
    assert 'getattr(self.conv, "bias", None) is None' in result.code
    torch_model = exec_source(SOURCE, "torch_embed")["Embed"](4, 6, bias, mixed, groups)
    mlx_model = exec_source(result.code, "mlx_embed")["Embed"](4, 6, bias, mixed, groups)
    assert mlx_model.feature_info() == torch_model.feature_info() == [6, 4, (3, 3) if not mixed else (5, 5), 6, 4, 10]
    expected = [mixed or not bias, bias and not mixed, bias]
    assert mlx_model.has_bias() == torch_model.has_bias() == expected


CONV1D = '''
import torch.nn as nn


def weight_norm(module):
    return module


class Conv1d(nn.Module):
    """transformers' Encodec / Mimi: a conv wrapped by a function, its stride, dilation and kernel read."""

    def __init__(self, stride, dilation):
        super().__init__()
        self.conv = weight_norm(nn.Conv1d(3, 5, 4, stride=stride, dilation=dilation))
        self.pool = nn.MaxPool1d(2)

    def geometry(self):
        return [self.conv.kernel_size[0], self.conv.stride[0], self.conv.dilation[0], self.conv.stride,
                self.conv.dilation, self.conv.weight.shape[0]]

    def forward(self, x):
        return self.pool(self.conv(x))
'''


@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 3)])
def test_conv1d_geometry_of_a_wrapped_layer_matches_torch(stride, dilation):
    result = convert_source(CONV1D, "conv1d.py")
    assert not [d for d in warnings(result) if d.rule_id == "torch-layer-attribute"]
    assert 'torch_layer_attribute(self.conv, "stride")[0]' in result.code
    torch_model = exec_source(CONV1D, "torch_conv1d")["Conv1d"](stride, dilation)
    mlx_model = exec_source(result.code, "mlx_conv1d")["Conv1d"](stride, dilation)
    assert mlx_model.geometry() == torch_model.geometry() == [4, stride, dilation, (stride,), (dilation,), 5]


STEM = '''
import torch.nn as nn


class Stem(nn.Module):
    def __init__(self, bias):
        super().__init__()
        self.conv_last = nn.Conv2d(3, 4, 1, bias=bias)


class ViT(nn.Module):
    """torchvision's VisionTransformer init: the conv stem's last conv, narrowed by isinstance."""

    def __init__(self, bias):
        super().__init__()
        self.conv_proj = Stem(bias)
        self.zeroed = False
        if isinstance(self.conv_proj.conv_last, nn.Conv2d):
            if self.conv_proj.conv_last.bias is not None:
                self.zeroed = True
'''


@pytest.mark.parametrize("bias", [True, False])
def test_bias_of_an_isinstance_narrowed_layer_matches_torch(bias):
    code = convert_source(STEM, "stem.py").code
    assert 'getattr(self.conv_proj.conv_last, "bias", None) is not None' in code
    assert exec_source(code, "mlx_stem")["ViT"](bias).zeroed == exec_source(STEM, "torch_stem")["ViT"](bias).zeroed \
        == bias


def test_second_conversion_changes_nothing():
    code = convert_source(SOURCE, "embed.py").code
    assert code.count("def torch_layer_attribute(") == 1
    assert convert_source(code, "embed.py").code == code
