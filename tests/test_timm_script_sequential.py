"""An nn.Sequential built outside any class (a function returning it) that mixes MLX's channels-last layers with
layers whose MLX form depends on the axis order (Flatten + Linear) or with a class of this file taking torch's layout
(one deriving from nn.Conv2d, as timm's Conv2dSame): converted unflagged before, it was wrong whichever layout it was
fed (NHWC: the flatten order differs from torch's; NCHW: MLX's conv reads H as channels). Now nn-layout flags it
(layout="channels-last") and the default layout mode builds the file in torch's layout: exact."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402
from tests.model_support import assert_close, exec_source, randomize_parameters, warnings  # noqa: E402

SOURCE = '''import torch
import torch.nn as nn
import torch.nn.functional as F


class MyConv(nn.Conv2d):
    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups) * 0.5


def head():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 5 * 6, 2))


def stem():
    return nn.Sequential(MyConv(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 5, 1))


def plain():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
'''


@pytest.mark.parametrize("builder", ["head", "stem"])
def test_mixed_sequential_built_in_a_function_is_exact_or_flagged(builder):
    source = SOURCE.replace("def plain", "def unused_plain")
    if builder == "head":
        source = source.replace("def stem", "def unused_stem").replace("MyConv(3, 4, 3)", "nn.Conv2d(3, 4, 3)")
    else:
        source = source.replace("def head", "def unused_head")
    flagged = convert_source(source, "model.py", layout="channels-last")
    assert any(d.rule_id == "nn-layout" and "depends on the axis order" in d.message for d in warnings(flagged)), \
        flagged.code
    result = convert_source(source, "model.py")
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    assert "Conv2dNCHW(3, 4, 3)" in result.code or builder == "stem"
    torch.manual_seed(0)
    torch_model = exec_source(source, "torch_seq")[builder]()
    randomize_parameters(torch_model)
    torch_model.eval()
    mlx_model = exec_source(result.code, "mlx_seq")[builder]()
    mlx_model.eval()
    assert load_torch_weights(mlx_model, torch_model.state_dict()).ok
    x = np.random.RandomState(0).standard_normal((2, 3, 7, 8)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert_close(mlx_model(mx.array(x)), expected, channels_last_output=False)


def test_a_sequential_of_channels_last_layers_stays_channels_last():
    source = "import torch.nn as nn\n\n\n" + SOURCE[SOURCE.index("def plain"):]
    result = convert_source(source, "model.py")
    assert not warnings(result), result.code
    assert "nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm(4), nn.ReLU())" in result.code
