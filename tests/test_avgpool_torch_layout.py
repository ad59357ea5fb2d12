"""AvgPool as a class value (transforms/module/layer_values.py's AvgPool{1,2,3}dNCHW / NHWC helpers): PyTorch's
ceil_mode, count_include_pad=False and divisor_override are computed, not refused. timm's resnet50d,
seresnext26d_32x4d and resnest14d build `avg_pool_fn(2, avg_stride, ceil_mode=True, count_include_pad=False)` with
`avg_pool_fn = ... nn.AvgPool2d` (timm/models/resnet.py downsample_avg), which raised NotImplementedError at build."""
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")
nn = pytest.importorskip("mlx.nn")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402
from torch2mlx.transforms.module.layer_values import HELPER_CODE  # noqa: E402
from tests.model_support import assert_close, exec_source, randomize_parameters, warnings  # noqa: E402


def _helper(name: str):
    namespace = {"mx": mx, "nn": nn}
    exec(compile(HELPER_CODE[name], name, "exec"), namespace)  # noqa: S102 - the project's own helper code
    return namespace[name]


# (spatial size, kernel, stride, padding): odd and even sizes, where ceil_mode adds a last window that starts in
# the input (7 / 2), one that would start in the right padding (dropped), and padding 0 / 1
_GEOMETRY = {
    1: [((7,), 2, 2, 0), ((8,), 3, 2, 1), ((5,), 3, 2, 0), ((6,), 2, 2, 1), ((9,), 3, 3, 1)],
    2: [((7, 7), 2, 2, 0), ((7, 9), 3, 2, 1), ((8, 8), 3, 2, 1), ((6, 11), (2, 3), (2, 1), (1, 0)),
        ((5, 5), 2, 2, 1), ((5, 6), 3, None, 1)],
    3: [((5, 7, 6), 2, 2, 0), ((5, 5, 6), 3, 2, 1)],
}
_OPTIONS = list(itertools.product([False, True], [False, True], [None, 3]))


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("ceil_mode, count_include_pad, divisor_override", _OPTIONS)
def test_the_avg_pool_helpers_compute_torch_pooling(d, ceil_mode, count_include_pad, divisor_override):
    torch_pool = {1: torch.nn.AvgPool1d, 2: torch.nn.AvgPool2d, 3: torch.nn.AvgPool3d}[d]
    nchw, nhwc = _helper(f"AvgPool{d}dNCHW"), _helper(f"AvgPool{d}dNHWC")
    rng = np.random.RandomState(d)
    for size, k, s, p in _GEOMETRY[d]:
        options = dict(ceil_mode=ceil_mode, count_include_pad=count_include_pad)
        if d > 1:  # torch's AvgPool1d has no divisor_override
            options["divisor_override"] = divisor_override
        elif divisor_override is not None:
            continue
        x = rng.standard_normal((2, 3, *size)).astype(np.float32)
        expected = torch_pool(k, s, p, **options)(torch.from_numpy(x))
        where = f"AvgPool{d}d({k}, {s}, {p}, {options}) of {x.shape}"
        assert_close(nchw(k, s, p, **options)(mx.array(x)), expected, channels_last_output=False, where=where)
        channels_last = nhwc(k, s, p, **options)(mx.array(np.moveaxis(x, 1, -1)))
        assert_close(channels_last, expected, channels_last_output=True, where=where + " channels-last")


DOWNSAMPLE_AVG = '''import torch
import torch.nn as nn


class DownsampleAvg(nn.Module):
    """timm's downsample_avg: the pool class is a value, built with ceil_mode and count_include_pad=False."""

    def __init__(self, cin, cout, stride, dilation=1):
        super().__init__()
        avg_stride = stride if dilation == 1 else 1
        avg_pool_fn = nn.AvgPool2d
        self.pool = avg_pool_fn(2, avg_stride, ceil_mode=True, count_include_pad=False)
        self.conv = nn.Conv2d(cin, cout, 1, stride=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(self.pool(x)))


class Net(nn.Module):
    def __init__(self, pool_layer=nn.AvgPool2d):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.down = DownsampleAvg(8, 16, 2)
        self.extra = pool_layer(3, 2, padding=1, ceil_mode=True, count_include_pad=False)

    def forward(self, x):
        return self.extra(self.down(self.stem(x)))
'''


@pytest.mark.parametrize("layout", ["auto", "torch"])
def test_timm_downsample_avg_built_from_a_class_value_matches_torch(layout):
    result = convert_source(DOWNSAMPLE_AVG, "model.py", layout=layout)
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    assert "avg_pool_fn = AvgPool2dNCHW" in result.code  # the class value, built with torch's arguments
    assert "ceil_mode=True, count_include_pad=False)" in result.code
    # auto: nn-layout keeps the model channels-last (the pools built as AvgPool2dNHWC); torch: NCHW throughout
    channels_last = "# MLX layout: inputs x are channels-last" in result.code
    assert channels_last == (layout == "auto")
    torch.manual_seed(0)
    torch_model = exec_source(DOWNSAMPLE_AVG, "torch_model")["Net"]()
    randomize_parameters(torch_model)
    torch_model.eval()
    mlx_model = exec_source(result.code, "mlx_model")["Net"]()
    mlx_model.eval()
    assert load_torch_weights(mlx_model, torch_model.state_dict()).ok
    x = np.random.RandomState(0).standard_normal((2, 3, 7, 9)).astype(np.float32)  # odd: ceil_mode adds windows
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert tuple(expected.shape) == (2, 16, 3, 3)
    actual = mlx_model(mx.array(np.moveaxis(x, 1, -1) if channels_last else x))
    assert_close(actual, expected, channels_last_output=channels_last)


def test_what_mlx_pooling_cannot_do_still_raises():
    with pytest.raises(NotImplementedError, match="dilation"):
        _helper("MaxPool2dNCHW")(2, 2, dilation=2)
    with pytest.raises(NotImplementedError, match="return_indices"):
        _helper("MaxPool2dNCHW")(2, 2, return_indices=True)
