"""torch layer classes used the ways real code uses them (issue 12, transforms/module/layer_values.py):
constructions whose arguments come through `**kwargs` (torchvision's GoogLeNet/Inception BasicConv2d, timm's
create_conv2d / padding helpers), converted and run against torch with the same weights."""
from __future__ import annotations

import numpy as np
import pytest

from torch2mlx import convert_source, load_torch_weights
from tests.model_support import assert_close, channels_last, exec_source, randomize_batch_norm, warnings

# torchvision/models/googlenet.py:269 / inception.py:401, and a head passing **kwargs to Dropout and Linear
BASIC_CONV = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        x = self.conv(x)
        x = self.bn(x)
        return F.relu(x, inplace=True)


def create_conv2d(in_chs, out_chs, kernel_size, **kwargs):
    padding = kwargs.pop("padding", "same")
    return nn.Conv2d(in_chs, out_chs, kernel_size, padding=padding, **kwargs)


class Net(nn.Module):
    def __init__(self, num_classes=5, **kw):
        super().__init__()
        self.stem = BasicConv2d(3, 8, kernel_size=3, stride=2, padding=1)
        self.mid = BasicConv2d(8, 8, kernel_size=(1, 3), padding=(0, 1))
        self.dw = create_conv2d(8, 8, 3, groups=8, dilation=2)
        self.pool = nn.MaxPool2d(**dict(kernel_size=3, stride=2, padding=1))
        self.drop = nn.Dropout(**kw)
        self.fc = nn.Linear(8, num_classes, **dict(bias=True))

    def forward(self, x):
        x = self.stem(x)
        x = self.mid(x)
        x = self.dw(x)
        x = self.pool(x)
        x = x.mean((2, 3))
        return self.fc(self.drop(x))
'''


def _convert(source: str, name: str):
    result = convert_source(source, f"{name}.py")
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    assert convert_source(result.code).code == result.code, "converting the output again changed it"
    return result


def _run_both(source: str, name: str, build, shape: tuple, *, nhwc_input: bool, channels_last_output: bool = False):
    import mlx.core as mx
    import torch

    result = _convert(source, name)
    torch_ns = exec_source(source, f"torch_{name}")
    mlx_ns = exec_source(result.code, f"mlx_{name}")
    torch.manual_seed(0)
    torch_model = build(torch_ns)
    randomize_batch_norm(torch_model)
    torch_model.eval()
    mlx_model = build(mlx_ns)
    mlx_model.eval()
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and report.loaded, report
    x = np.random.RandomState(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    actual = mlx_model(mx.array(channels_last(x) if nhwc_input else x))
    assert_close(actual, expected, channels_last_output=channels_last_output)
    return result


def test_layer_built_with_kwargs_matches_torch():
    result = _run_both(BASIC_CONV, "basic_conv", lambda ns: ns["Net"](num_classes=5, p=0.3), (2, 3, 16, 16),
                       nhwc_input=True)
    code = result.code
    assert "self.conv = Conv2dNHWC(in_channels, out_channels, bias=False, **kwargs)" in code
    assert "return Conv2dNHWC(in_chs, out_chs, kernel_size, padding=padding, **kwargs)" in code
    assert "self.pool = MaxPool2dNHWC(**dict(" in code
    assert "self.drop = Dropout(**kw)" in code and "self.fc = Linear(8, num_classes, **dict(bias=True))" in code
    assert "# MLX layout: inputs x are channels-last" in code


@pytest.mark.parametrize("kwargs", [dict(padding_mode="reflect"), dict(dtype="float16"), dict(padding="same", kernel_size=2)])
def test_kwargs_mlx_cannot_honour_raise(kwargs):
    """What MLX cannot do raises when the layer is built, naming it (never a silently different layer)."""
    result = _convert(BASIC_CONV, "basic_conv")
    ns = exec_source(result.code, "mlx_basic_conv_raise")
    with pytest.raises(NotImplementedError):
        ns["BasicConv2d"](3, 8, **{"kernel_size": 3, **kwargs})


def test_starred_layer_name_taken_stays_flagged():
    source = '''
import torch.nn as nn

class Conv2dNHWC:
    pass

def make(**kw):
    return nn.Conv2d(3, 8, **kw)
'''
    result = convert_source(source, "taken.py")
    flagged = [d for d in warnings(result) if d.rule_id == "torch.nn.Conv2d"]
    assert flagged and "Conv2dNHWC is already used" in flagged[0].message, [d.format() for d in result.diagnostics]
