"""A class deriving from nn.AvgPool2d (layer_bases.py TorchAvgPool2d): ceil_mode, count_include_pad=False and
divisor_override are computed as torch does (they raised NotImplementedError when called)."""
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source  # noqa: E402
from tests.model_support import assert_close, exec_source, warnings  # noqa: E402

SOURCE = '''import torch
import torch.nn as nn


class Pool(nn.AvgPool2d):
    """A pool with a forward of its own (timm's pools that flatten or scale their output do this)."""

    def forward(self, x):
        return super().forward(x) * 2.0


class Net(nn.Module):
    def __init__(self, k, s, p, ceil_mode, count_include_pad, divisor_override):
        super().__init__()
        self.pool = Pool(k, s, p, ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                         divisor_override=divisor_override)

    def forward(self, x):
        return self.pool(x)
'''

_GEOMETRY = [((7, 7), 2, 2, 0), ((7, 9), 3, 2, 1), ((8, 8), 3, 2, 1), ((6, 11), (2, 3), (2, 1), (1, 0)), ((5, 6), 3, None, 1)]


@pytest.mark.parametrize("layout", ["auto", "torch"])
def test_avg_pool_subclass_computes_torch_pooling(layout):
    result = convert_source(SOURCE, "model.py", layout=layout)
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    assert "class Pool(TorchAvgPool2d):" in result.code
    torch_ns, mlx_ns = exec_source(SOURCE, "torch_pool"), exec_source(result.code, "mlx_pool")
    rng = np.random.RandomState(0)
    for (size, k, s, p), (ceil_mode, count_include_pad, divisor_override) in itertools.product(
            _GEOMETRY, itertools.product([False, True], [False, True], [None, 3])):
        args = (k, s, p, ceil_mode, count_include_pad, divisor_override)
        x = rng.standard_normal((2, 3, *size)).astype(np.float32)
        with torch.no_grad():
            expected = torch_ns["Net"](*args)(torch.from_numpy(x))
        where = f"{size} {args}"
        assert_close(mlx_ns["Net"](*args)(mx.array(x)), expected, channels_last_output=False, where=where)
        unbatched = mlx_ns["Net"](*args)(mx.array(x[0]))
        assert_close(unbatched, expected[0], channels_last_output=False, where=where + " unbatched")
