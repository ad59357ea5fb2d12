"""nn.init.trunc_normal_ with computed arguments (torchvision's VisionTransformer:
`nn.init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1 / fan_in))`): mean and std are read three
times in the MLX form, so a computed one is bound once by a lambda. The converted module's weights have
torch's distribution: the same bounds, mean and spread as torch's on a large weight."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source  # noqa: E402
from tests.model_support import exec_source, warnings  # noqa: E402

SOURCE = '''import math
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, fan_in=4):
        super().__init__()
        self.calls = 0
        self.proj = nn.Linear(256, 512)
        self.head = nn.Linear(256, 512)
        nn.init.trunc_normal_(self.proj.weight, std=math.sqrt(1 / fan_in))
        nn.init.trunc_normal_(self.head.weight, mean=0.1, std=self.scale(), a=-0.5, b=self.bound())

    def scale(self):
        self.calls += 1
        return 0.4

    def bound(self):
        self.calls += 10
        return 0.5

    def forward(self, x):
        return self.head(x) + self.proj(x)
'''


def test_computed_trunc_normal_arguments_give_torchs_distribution_once_evaluated():
    result = convert_source(SOURCE, "net.py")
    assert not warnings(result), result.code
    assert "lambda std_" in result.code
    assert convert_source(result.code, "net.py").code == result.code
    torch.manual_seed(0)
    torch_net = exec_source(SOURCE, "torch_net")["Net"]()
    mx.random.seed(0)
    mlx_net = exec_source(result.code, "mlx_net")["Net"]()
    assert mlx_net.calls == torch_net.calls == 11  # each argument evaluated once
    for name, low, high in (("proj", -2.0, 2.0), ("head", -0.5, 0.5)):
        expected = getattr(torch_net, name).weight.detach().numpy()
        actual = np.array(getattr(mlx_net, name).weight)
        assert actual.shape == expected.shape and actual.dtype == expected.dtype
        assert actual.min() >= low and actual.max() <= high
        assert expected.min() < low + 0.05 and expected.max() > high - 0.05  # the bounds really truncate
        assert actual.min() < low + 0.05 and actual.max() > high - 0.05
        # 131072 samples: the mean and spread agree with torch's well within 2 % of the spread
        assert abs(actual.mean() - expected.mean()) < 0.02 * expected.std()
        assert abs(actual.std() - expected.std()) < 0.02 * expected.std()


def test_lambda_parameter_name_clash_is_flagged():
    source = SOURCE.replace("std=self.scale(), a=-0.5, b=self.bound()", "std=self.scale(), a=-0.5, b=std_")
    source = source.replace("def __init__(self, fan_in=4):", "def __init__(self, fan_in=4, std_=0.5):")
    result = convert_source(source, "net.py")
    assert any(d.rule_id == "torch.nn.init.trunc_normal_" for d in warnings(result)), result.code
