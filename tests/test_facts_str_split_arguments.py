"""`.split` with arguments Tensor.split cannot take (a string separator, none, `sep=`) is not Tensor.split: under
torch it would raise TypeError. timm's feature_info taps (densenet.py:340, cspnet.py:775, rexnet.py:316:
`f['module'].split('.', 1)` over a list of dicts) were flagged "not known to be a tensor" in code every model
runs at build."""
import mlx.core as mx
import numpy as np
import torch

from tests.model_support import exec_source, warnings
from torch2mlx import convert_source

SOURCE = '''import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.feature_info = [dict(num_chs=4, module='features.0'), dict(num_chs=4, module='features.1 x')]
        self.stage_ends = [int(info['module'].split('.')[-1].split()[0]) for info in self.feature_info]
        self.tails = [f['module'].split('.', 1)[1] for f in self.feature_info]
        self.words = [f['module'].split(sep=' ', maxsplit=1) for f in self.feature_info]

    def forward(self, x):
        a, b = x.split(2, -1)
        return a * b
'''


def test_str_splits_stay_as_written_and_tensor_splits_translate():
    result = convert_source(SOURCE, "model.py")
    assert not warnings(result), [d.format() for d in warnings(result)]
    assert "f['module'].split('.', 1)[1]" in result.code and "mx.split(x," in result.code
    torch_net, mlx_net = exec_source(SOURCE, "torch_net")["Net"](), exec_source(result.code, "mlx_net")["Net"]()
    for name in ("stage_ends", "tails", "words"):
        assert getattr(mlx_net, name) == getattr(torch_net, name)
    x = np.random.RandomState(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(np.array(mlx_net(mx.array(x))), torch_net(torch.from_numpy(x)).numpy(), rtol=1e-6)


def test_a_split_of_an_unknown_value_by_sizes_stays_flagged():
    result = convert_source("def f(x, n):\n    return x.split(n, 1)\n\n\nimport torch\n", "m.py")
    assert [d.rule_id for d in warnings(result)] == ["torch.split"]
