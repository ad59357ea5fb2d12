"""2-D pooling with ceil_mode / count_include_pad=False / divisor_override (torch2mlx/handlers/nn_pool_helpers.py):
torchvision's GoogLeNet and SqueezeNet pool with `nn.MaxPool2d(3, 2, ceil_mode=True)`, timm's ResNet-D and
TResNet downsample with `nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)`, Inception v4 averages
with `count_include_pad=False`. The converted helpers must give torch's output size and values on every
geometry, odd sizes and padding included."""
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402
from tests.model_support import assert_close, channels_last, exec_source, randomize_parameters, warnings  # noqa: E402

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"
FUNCTIONS = HEADER + """def max_ceil(x: torch.Tensor, k, s, p):
    return F.max_pool2d(x, k, s, p, ceil_mode=True)


def avg(x: torch.Tensor, k, s, p, ceil, include, divisor):
    return F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=include, divisor_override=divisor)
"""


def _geometries():
    for (h, w), k, s, p in itertools.product([(5, 5), (7, 9), (8, 8), (6, 11), (2, 3)],
                                             [1, 2, 3, (2, 3)], [1, 2, 3, (2, 1)], [0, 1, (0, 1)]):
        kk, pp = (k, k) if isinstance(k, int) else k, (p, p) if isinstance(p, int) else p
        if pp[0] <= kk[0] // 2 and pp[1] <= kk[1] // 2 and kk[0] <= h + 2 * pp[0] and kk[1] <= w + 2 * pp[1]:
            yield h, w, k, s, p


def test_functional_pools_match_torch_on_every_geometry():
    result = convert_source(FUNCTIONS, "pools.py")
    assert not warnings(result), result.code
    assert "max_pool2d_padded" in result.code and "avg_pool2d_padded" in result.code
    assert convert_source(result.code, "pools.py").code == result.code
    converted = exec_source(result.code, "pools_mlx")
    rng = np.random.default_rng(0)
    checked = 0
    for h, w, k, s, p in _geometries():
        x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
        expected = torch.nn.functional.max_pool2d(torch.from_numpy(x), k, s, p, ceil_mode=True).numpy()
        actual = np.array(converted["max_ceil"](mx.array(x), k, s, p))
        assert actual.shape == expected.shape, (h, w, k, s, p)
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5, err_msg=str((h, w, k, s, p)))
        for ceil, include, divisor in itertools.product((True, False), (True, False), (None, 5)):
            expected = torch.nn.functional.avg_pool2d(torch.from_numpy(x), k, s, p, ceil, include, divisor).numpy()
            actual = np.array(converted["avg"](mx.array(x), k, s, p, ceil, include, divisor))
            assert actual.shape == expected.shape, (h, w, k, s, p, ceil, include, divisor)
            np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5,
                                       err_msg=str((h, w, k, s, p, ceil, include, divisor)))
            checked += 1
    assert checked > 500


SQUEEZE_LIKE = """class Fire(nn.Module):
    def __init__(self, cin, squeeze, expand):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand, kernel_size=1)
        self.expand3x3 = nn.Conv2d(squeeze, expand, kernel_size=3, padding=1)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1(x), self.expand3x3(x)], 1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=3, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(8, 4, 8),
            nn.MaxPool2d(3, 2, 1, ceil_mode=True),
            nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False),
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
        )
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.pool(self.features(x))
        return self.fc(torch.flatten(x, 1))
"""


@pytest.mark.parametrize("size", [33, 40, 29])
def test_squeezenet_like_model_with_ceil_mode_pools_matches_torch(size):
    source = HEADER + SQUEEZE_LIKE
    result = convert_source(source, "model.py")
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    assert "MaxPool2dPadded(" in result.code and "AvgPool2dPadded(" in result.code
    assert convert_source(result.code, "model.py").code == result.code
    torch.manual_seed(0)
    torch_model = exec_source(source, "torch_model")["Net"]()
    randomize_parameters(torch_model)
    torch_model.eval()
    mlx_model = exec_source(result.code, "mlx_model")["Net"]()
    mlx_model.eval()
    assert load_torch_weights(mlx_model, torch_model.state_dict()).ok
    x = np.random.RandomState(0).standard_normal((2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert_close(mlx_model(mx.array(channels_last(x))), expected)


def test_pool_helper_name_taken_takes_a_fresh_name():
    source = HEADER + """MaxPool2dPadded = 3


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)

    def forward(self, x):
        return self.pool(x)
"""
    result = convert_source(source, "model.py")
    assert not warnings(result), result.code
    assert "MaxPool2dPadded = 3" in result.code and "MaxPool2dPadded_1(3, stride=2, ceil_mode=True)" in result.code
    torch_model = exec_source(source, "torch_model_taken")["Net"]()
    mlx_ns = exec_source(result.code, "mlx_model_taken")
    assert mlx_ns["MaxPool2dPadded"] == 3
    x = np.random.RandomState(0).standard_normal((1, 2, 8, 7)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert_close(mlx_ns["Net"]()(mx.array(channels_last(x))), expected)
