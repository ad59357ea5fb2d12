"""F.conv*d with a bias given by a name that is None at run time (timm's conv2d_same, create_conv2d_pad with
bias=False: `F.conv2d(x, weight, bias, stride, (0, 0), dilation, groups)`). MLX's convolutions take no bias: the
translation added it unconditionally (`... + b`), a TypeError for None. Now it adds `-0.0 if b is None else b`;
converted, run under torch and MLX with bias None and with a bias tensor, compared."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from torch2mlx import convert_source
from tests.model_support import exec_source, warnings

SOURCE = '''
import torch.nn.functional as F


def conv1d(x, w, b=None):
    return F.conv_transpose1d(x, w, b, 2, 1, 1)


def conv2d(x, w, b=None):
    return F.conv2d(x, w, b, 1, (0, 0), 1, 1)


def conv3d(x, w, b=None):
    return F.conv3d(x, w, bias=b, padding=1)


def conv_transpose2d(x, w, b=None):
    return F.conv_transpose2d(x, w, b, stride=2)


def conv_transpose3d(x, w, b=None):
    return F.conv_transpose3d(x, w, b)
'''

CASES = {  # function -> (input shape, weight shape, bias size)
    "conv1d": ((2, 4, 7), (4, 6, 3), 6),
    "conv2d": ((2, 3, 7, 6), (4, 3, 3, 2), 4),
    "conv3d": ((1, 2, 5, 4, 4), (3, 2, 3, 3, 3), 3),
    "conv_transpose2d": ((2, 4, 5, 5), (4, 3, 3, 3), 3),
    "conv_transpose3d": ((1, 2, 3, 4, 3), (2, 3, 2, 2, 2), 3),
}


@pytest.fixture(scope="module")
def namespaces():
    result = convert_source(SOURCE)
    assert not warnings(result), result.diagnostics
    assert "F." not in result.code and "torch" not in result.code
    return exec_source(SOURCE, "torch_conv_bias"), exec_source(result.code, "mlx_conv_bias")


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("with_bias", [False, True])
def test_bias_none_or_tensor_matches_torch(namespaces, name, with_bias):
    import mlx.core as mx

    torch_ns, mlx_ns = namespaces
    x_shape, w_shape, bias_size = CASES[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(bias_size).astype(np.float32) if with_bias else None
    expected = torch_ns[name](torch.from_numpy(x), torch.from_numpy(w),
                              None if b is None else torch.from_numpy(b)).numpy()
    actual = mlx_ns[name](mx.array(x), mx.array(w), None if b is None else mx.array(b))
    assert actual.dtype == mx.float32
    actual = np.array(actual)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


def test_a_bias_expression_is_evaluated_once_into_a_fresh_name():
    result = convert_source("import torch.nn.functional as F\n\n\ndef f(x, w, b):\n    return F.conv2d(x, w, b * 2)\n")
    assert not warnings(result) and "# torch2mlx:" not in result.code
    assert "    bias = b * 2\n" in result.code and result.code.count("b * 2") == 1
