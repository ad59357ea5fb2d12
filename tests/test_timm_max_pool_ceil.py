"""MaxPool as a class value or a base class (layer_values.py MaxPool{1,2,3}dNCHW / NHWC, layer_bases.py
TorchMaxPool2d): PyTorch's ceil_mode is computed (the input padded with -inf by what the last window reaches past
the right padding), not refused when the layer is built or called."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")
nn = pytest.importorskip("mlx.nn")

from torch2mlx import convert_source  # noqa: E402
from torch2mlx.transforms.module.layer_values import HELPER_CODE  # noqa: E402
from tests.model_support import assert_close, exec_source, warnings  # noqa: E402


def _helper(name: str):
    namespace = {"mx": mx, "nn": nn}
    exec(compile(HELPER_CODE[name], name, "exec"), namespace)  # noqa: S102 - the project's own helper code
    return namespace[name]


# (spatial size, kernel, stride, padding): the last window starting in the input (7 / 2), one that would start in
# the right padding (dropped), padding 0 / 1, stride None
_GEOMETRY = {
    1: [((7,), 2, 2, 0), ((8,), 3, 2, 1), ((5,), 3, 2, 0), ((6,), 2, 2, 1), ((9,), 3, 3, 1)],
    2: [((7, 7), 2, 2, 0), ((7, 9), 3, 2, 1), ((8, 8), 3, 2, 1), ((6, 11), (2, 3), (2, 1), (1, 0)),
        ((5, 5), 2, 2, 1), ((5, 6), 3, None, 1)],
    3: [((5, 7, 6), 2, 2, 0), ((5, 5, 6), 3, 2, 1)],
}


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_the_max_pool_helpers_compute_torch_pooling(d, ceil_mode):
    torch_pool = {1: torch.nn.MaxPool1d, 2: torch.nn.MaxPool2d, 3: torch.nn.MaxPool3d}[d]
    nchw, nhwc = _helper(f"MaxPool{d}dNCHW"), _helper(f"MaxPool{d}dNHWC")
    rng = np.random.RandomState(d)
    for size, k, s, p in _GEOMETRY[d]:
        x = rng.standard_normal((2, 3, *size)).astype(np.float32)
        x[..., -1] += 5.0  # the last column holds the maxima: a dropped or extra window shows
        expected = torch_pool(k, s, p, ceil_mode=ceil_mode)(torch.from_numpy(x))
        where = f"MaxPool{d}d({k}, {s}, {p}, ceil_mode={ceil_mode}) of {x.shape}"
        assert_close(nchw(k, s, p, ceil_mode=ceil_mode)(mx.array(x)), expected, channels_last_output=False, where=where)
        channels_last = nhwc(k, s, p, ceil_mode=ceil_mode)(mx.array(np.moveaxis(x, 1, -1)))
        assert_close(channels_last, expected, channels_last_output=True, where=where + " channels-last")


SOURCE = '''import torch
import torch.nn as nn


class Pool(nn.MaxPool2d):
    def forward(self, x):
        return super().forward(x) - 1.0


class Net(nn.Module):
    def __init__(self, k, s, p, ceil_mode, pool_layer=nn.MaxPool2d):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.pool = Pool(k, s, p, ceil_mode=ceil_mode)
        self.value = pool_layer(k, s, p, ceil_mode=ceil_mode)

    def forward(self, x):
        x = self.conv(x)
        return self.pool(x), self.value(x)
'''


@pytest.mark.parametrize("layout", ["auto", "torch"])
def test_max_pool_subclass_and_class_value_with_ceil_mode_match_torch(layout):
    result = convert_source(SOURCE, "model.py", layout=layout)
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    assert "class Pool(TorchMaxPool2d):" in result.code
    torch_ns, mlx_ns = exec_source(SOURCE, "torch_maxpool"), exec_source(result.code, "mlx_maxpool")
    channels_last = "# MLX layout: inputs x are channels-last" in result.code
    rng = np.random.RandomState(0)
    for size, k, s, p in _GEOMETRY[2]:
        for ceil_mode in (False, True):
            torch.manual_seed(0)
            torch_model = torch_ns["Net"](k, s, p, ceil_mode)
            mlx_model = mlx_ns["Net"](k, s, p, ceil_mode)
            mlx_model.conv.weight = mx.array(np.moveaxis(torch_model.conv.weight.detach().numpy(), 1, -1))
            mlx_model.conv.bias = mx.array(torch_model.conv.bias.detach().numpy())
            x = rng.standard_normal((2, 3, *size)).astype(np.float32)
            with torch.no_grad():
                expected = torch_model(torch.from_numpy(x))
            actual = mlx_model(mx.array(np.moveaxis(x, 1, -1) if channels_last else x))
            # Pool derives from a torch-exact base: it takes and gives torch's layout in either build
            assert_close(actual[0], expected[0], channels_last_output=False, where=f"{size} {k} {s} {p} {ceil_mode}")
            assert_close(actual[1], expected[1], channels_last_output=channels_last, where=f"value {size} {ceil_mode}")
