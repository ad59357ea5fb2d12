"""F.group_norm (timm/layers/norm.py GroupNorm / GroupNorm1 forward, poolformer_s12): torch's group norm over the
channels of axis 1, translated to the local group_norm_channels_first; exact on channels-first data in both layouts,
flagged by nn-layout on a channels-last feature map."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402
from torch2mlx.handlers.nn_batch_norm import _GROUP_NORM_HELPER  # noqa: E402
from tests.model_support import assert_close, exec_source, randomize_parameters, warnings  # noqa: E402


def _helper():
    namespace = {"mx": mx}
    exec(compile(_GROUP_NORM_HELPER["group_norm_channels_first"], "helper", "exec"), namespace)  # noqa: S102
    return namespace["group_norm_channels_first"]


@pytest.mark.parametrize("shape, groups", [((2, 6), 3), ((2, 6, 5), 2), ((3, 8, 4, 5), 4), ((1, 6, 3, 2, 4), 6),
                                           ((2, 5, 7, 7), 1), ((4, 12, 1, 1), 12)])
@pytest.mark.parametrize("affine", [False, True])
def test_group_norm_helper_computes_torch_group_norm(shape, groups, affine):
    rng = np.random.RandomState(len(shape) * 10 + groups)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    w = rng.standard_normal(shape[1]).astype(np.float32) if affine else None
    b = rng.standard_normal(shape[1]).astype(np.float32) if affine else None
    t = (lambda a: None if a is None else torch.from_numpy(a))
    expected = torch.nn.functional.group_norm(torch.from_numpy(x), groups, t(w), t(b), 1e-3)
    m = (lambda a: None if a is None else mx.array(a))
    actual = _helper()(mx.array(x), groups, m(w), m(b), 1e-3)
    assert_close(actual, expected, channels_last_output=False, where=f"{shape} groups={groups}")


def test_group_norm_helper_raises_where_torch_does():
    with pytest.raises(RuntimeError, match="divisible by num_groups"):
        _helper()(mx.zeros((2, 6, 3)), 4)
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        _helper()(mx.zeros((6,)), 3)


POOLFORMER = '''import torch
import torch.nn as nn
import torch.nn.functional as F


class GroupNorm1(nn.GroupNorm):
    """ Group Normalization with 1 group. Input: tensor in shape [B, C, *] """

    def __init__(self, num_channels, **kwargs):
        super().__init__(1, num_channels, **kwargs)
        self.fast_norm = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


class GroupNorm(nn.GroupNorm):
    def __init__(self, num_channels, num_groups=32, eps=1e-5, affine=True):
        super().__init__(num_groups, num_channels, eps=eps, affine=affine)

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm1 = GroupNorm1(dim)
        self.pool = nn.AvgPool2d(3, 1, padding=1, count_include_pad=False)
        self.norm2 = GroupNorm(dim, num_groups=4, eps=1e-6)
        self.fc = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        x = x + self.pool(self.norm1(x)) - self.norm1(x)
        return x + self.fc(self.norm2(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.block = Block(8)

    def forward(self, x):
        return self.block(self.stem(x))
'''


@pytest.mark.parametrize("layout", ["auto", "torch"])
def test_poolformer_group_norms_match_torch(layout):
    result = convert_source(POOLFORMER, "model.py", layout=layout)
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    assert "group_norm_channels_first(x, self.num_groups, weight=self.weight, bias=self.bias, eps=self.eps)" in result.code
    torch.manual_seed(0)
    torch_model = exec_source(POOLFORMER, "torch_poolformer")["Net"]()
    randomize_parameters(torch_model)
    torch_model.eval()
    mlx_model = exec_source(result.code, "mlx_poolformer")["Net"]()
    mlx_model.eval()
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok, report.describe()
    x = np.random.RandomState(0).standard_normal((2, 3, 9, 10)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    channels_last = "# MLX layout: inputs x are channels-last" in result.code
    actual = mlx_model(mx.array(np.moveaxis(x, 1, -1) if channels_last else x))
    assert_close(actual, expected, channels_last_output=channels_last)


def test_group_norm_on_a_channels_last_feature_map_is_flagged():
    source = '''import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return F.group_norm(self.conv(x), 2)
'''
    result = convert_source(source, "model.py", layout="channels-last")
    assert "nn-layout" in {d.rule_id for d in warnings(result)}, result.code
    auto = convert_source(source, "model.py")  # built in torch's layout instead: exact, nothing flagged
    assert not warnings(auto) and "Conv2dNCHW(3, 8, 3)" in auto.code, auto.code
