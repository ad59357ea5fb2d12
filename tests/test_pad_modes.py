"""F.pad with computed pads and every mode (torch2mlx/handlers/nn_pad.py): torchvision's Swin pads with
`(0, 0, 0, pad_r, 0, pad_b)`, timm's Swin with a `pad_values` tuple bound first, timm's blur pool with
`mode=self.pad_mode` ('reflect'), its ECA with 'circular'. The converted function gives torch's values
over ranks, widths and modes, and raises where torch's widths are out of range (reflect widths reaching the
axis size, an odd pad length). Where torch's non-constant modes reject a rank / pad-length pair, MLX pads."""
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source  # noqa: E402
from tests.model_support import exec_source, warnings  # noqa: E402

SOURCE = '''import torch
import torch.nn.functional as F


def display(x: torch.Tensor, a, b, c, d, mode):
    return F.pad(x, (a, b, c, d), mode=mode)


def bound_first(x: torch.Tensor, pad_values, mode, value):
    return F.pad(x, pad_values, mode, value)
'''


@pytest.fixture(scope="module")
def converted():
    result = convert_source(SOURCE, "pads.py")
    assert not warnings(result), result.code
    assert convert_source(result.code, "pads.py").code == result.code
    return exec_source(result.code, "pads_mlx")


def test_every_mode_matches_torch(converted):
    rng = np.random.default_rng(0)
    checked = 0
    for shape, mode in itertools.product([(2, 3, 4, 5), (3, 5, 4)], ["constant", "replicate", "reflect", "circular"]):
        x = rng.standard_normal(shape).astype(np.float32)
        for a, b, c, d in itertools.product([0, 1, 3], [0, 2], [0, 3], [1, 4]):
            try:
                expected = torch.nn.functional.pad(torch.from_numpy(x), (a, b, c, d), mode=mode).numpy()
            except (RuntimeError, ValueError, NotImplementedError):
                with pytest.raises((ValueError, NotImplementedError)):
                    np.array(converted["display"](mx.array(x), a, b, c, d, mode))
                continue
            actual = np.array(converted["display"](mx.array(x), a, b, c, d, mode))
            assert actual.shape == expected.shape, (shape, mode, (a, b, c, d))
            np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=0, err_msg=str((shape, mode, (a, b, c, d))))
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("pad_values", [(0, 0, 0, 1, 0, 1), (2, 0, 1, 1), [0, 3, 2, 0]])
@pytest.mark.parametrize("mode, value", [("constant", 0.0), ("constant", -2.5), ("replicate", None), ("circular", None)])
def test_pad_bound_first_matches_torch(converted, pad_values, mode, value):
    x = np.random.default_rng(1).standard_normal((2, 4, 3, 5)).astype(np.float32)
    expected = torch.nn.functional.pad(torch.from_numpy(x), pad_values, mode, value).numpy()
    actual = np.array(converted["bound_first"](mx.array(x), pad_values, mode, value))
    np.testing.assert_array_equal(actual, expected)


def test_odd_pad_length_raises_as_in_torch(converted):
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(RuntimeError):
        torch.nn.functional.pad(torch.from_numpy(x), (1, 2, 3))
    with pytest.raises(ValueError):
        converted["bound_first"](mx.array(x), (1, 2, 3), "constant", 0)
