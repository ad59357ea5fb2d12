"""timm's TF-"SAME" convolution (timm/layers/padding.py pad_same / get_same_padding, conv2d_same.py Conv2dSame):
a class deriving from nn.Conv2d whose forward pads by the input's size and calls F.conv2d. conv2d_same.py never
writes "Module", and the nn-module transform skipped the file: the forward stayed `forward` beside the base's
`__call__`, which ran the unpadded convolution (tf_efficientnet_b0: "[conv] Spatial dimensions of input after
padding cannot be smaller than weight"; on larger inputs the output would have been silently wrong)."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402
from tests.model_support import assert_close, exec_source, randomize_parameters, warnings  # noqa: E402

SAME = '''from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def get_same_padding(x: int, kernel_size: int, stride: int, dilation: int):
    return max((math.ceil(x / stride) - 1) * stride + (kernel_size - 1) * dilation + 1 - x, 0)


def pad_same(x: torch.Tensor, kernel_size: List[int], stride: List[int], dilation: List[int] = (1, 1), value: float = 0):
    ih, iw = x.size()[-2:]
    pad_h = get_same_padding(ih, kernel_size[0], stride[0], dilation[0])
    pad_w = get_same_padding(iw, kernel_size[1], stride[1], dilation[1])
    x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=value)
    return x


def conv2d_same(x, weight: torch.Tensor, bias=None, stride: Tuple[int, int] = (1, 1), padding=(0, 0),
                dilation: Tuple[int, int] = (1, 1), groups: int = 1):
    x = pad_same(x, weight.shape[-2:], stride, dilation)
    return F.conv2d(x, weight, bias, stride, (0, 0), dilation, groups)


def register_notrace_module(cls):
    return cls


@register_notrace_module
class Conv2dSame(nn.Conv2d):
    """ Tensorflow like 'SAME' convolution wrapper for 2D convolutions
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias)

    def forward(self, x):
        return conv2d_same(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
'''

NET = '''

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = Conv2dSame(3, 8, 3, stride=2)
        self.bn = nn.BatchNorm2d(8)
        self.dw = Conv2dSame(8, 8, 5, stride=2, groups=8, bias=False)
        self.conv = nn.Conv2d(8, 8, 1)
        self.last = Conv2dSame(8, 6, (3, 4), stride=(1, 2), dilation=(2, 1))

    def forward(self, x):
        return self.last(self.conv(self.dw(self.bn(self.stem(x)))))
'''


def test_conv2d_same_file_without_module_gets_call():
    result = convert_source(SAME, "conv2d_same.py")
    assert "def __call__(self, x):" in result.code and "def forward" not in result.code, result.code


@pytest.mark.parametrize("layout", ["auto", "torch"])
@pytest.mark.parametrize("size", [(7, 7), (9, 12), (16, 15), (2, 2)])
def test_tf_same_convolutions_match_torch(layout, size):
    source = SAME.replace("import torch\n", "import math\n\nimport torch\n", 1) + NET
    result = convert_source(source, "model.py", layout=layout)
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    torch_ns, mlx_ns = exec_source(source, "torch_same"), exec_source(result.code, "mlx_same")
    torch.manual_seed(0)
    torch_model = torch_ns["Net"]()
    randomize_parameters(torch_model)
    torch_model.eval()
    mlx_model = mlx_ns["Net"]()
    mlx_model.eval()
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok, report.describe()
    x = np.random.RandomState(0).standard_normal((2, 3, *size)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert tuple(expected.shape[-2:]) == (math.ceil(math.ceil(size[0] / 2) / 2), math.ceil(math.ceil(size[1] / 2) / 4))
    # Conv2dSame derives from a torch-exact base (channels-first): the class is built in torch's layout
    assert "# MLX layout: inputs x are channels-last" not in result.code
    assert_close(mlx_model(mx.array(x)), expected, channels_last_output=False)
