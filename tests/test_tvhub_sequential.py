"""nn.Sequential(OrderedDict(...)) (torchvision's ViT heads, DenseNet features, RegNet trunk, MaxViT blocks)
-> TorchSequential: the layers keep the dict's keys as names, so torch's state_dict loads under torch's keys and
`self.heads.head` still reads the layer; calling it runs them in the dict's order."""
import numpy as np
import pytest

from torch2mlx import convert_source, load_torch_weights

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

SOURCE = """
from collections import OrderedDict

import torch
import torch.nn as nn


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        layers = OrderedDict()
        layers["pre_logits"] = nn.Linear(4, 6)
        layers["act"] = nn.Tanh()
        layers["head"] = nn.Linear(6, 3)
        self.heads = nn.Sequential(layers)
        self.body = nn.Sequential(OrderedDict([("fc", nn.Linear(4, 4)), ("relu", nn.ReLU())]))

    def forward(self, x):
        x = self.body(x)
        return self.heads(x) + self.body.fc(x)[:, :3]
"""


def test_named_sequential_keeps_torch_names_and_order():
    result = convert_source(SOURCE)
    assert not [d for d in result.diagnostics if d.severity.value != "info"], [d.format() for d in result.diagnostics]
    assert "TorchSequential(layers)" in result.code and "torch2mlx:" not in result.code
    namespace_t: dict = {}
    exec(SOURCE, namespace_t)  # noqa: S102
    torch.manual_seed(0)
    net = namespace_t["Head"]().eval()
    namespace: dict = {"__name__": "converted"}
    exec(result.code, namespace)  # noqa: S102
    model = namespace["Head"]()
    report = load_torch_weights(model, net.state_dict())
    assert sorted(report.loaded) == sorted(net.state_dict())  # every torch key, under its own name
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.array(model(mx.array(x))), expected, rtol=1e-4, atol=1e-5)
    assert [type(m).__name__ for m in model.heads] == ["Linear", "Tanh", "Linear"]  # the dict's order


def test_named_sequential_with_other_arguments_stays_flagged():
    result = convert_source("import torch.nn as nn\nfrom collections import OrderedDict\n"
                            "s = nn.Sequential(OrderedDict([('a', nn.ReLU())]), nn.Tanh())\n")
    assert any(d.rule_id == "torch.nn.Sequential" and d.severity.value != "info" for d in result.diagnostics)


LOCAL_BLOCKS = """
from collections import OrderedDict

import torch.nn as nn


class Conv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x).relu()


class Net(nn.Module):
    def __init__(self, block):
        super().__init__()
        self.a = nn.Sequential(OrderedDict([("m0", Mlp()), ("m1", Mlp())]))
        self.b = nn.Sequential(OrderedDict([("c0", Conv())]))
        self.c = nn.Sequential(OrderedDict([("conv", nn.Conv2d(3, 3, 1)), ("act", nn.ReLU())]))
        self.d = nn.Sequential(OrderedDict([("x", block(3))]))
"""


def test_named_sequential_of_layers_taking_channels_last_data_stays_flagged():
    """MLX's convolutions take NHWC data: nn-layout transposes for them where it follows the calls, which it
    does not inside TorchSequential; a class of the file building none, and plain per-position layers, are
    kept by name. (With layout "auto" the flag makes the file one built in torch's layout, where every such
    Sequential is kept by name: test_modules_members.)"""
    result = convert_source(LOCAL_BLOCKS, layout="channels-last")
    flagged = sorted(d.line for d in result.diagnostics if d.severity.value != "info" and d.rule_id == "torch.nn.Sequential")
    assert flagged == [29, 30, 31], [d.format() for d in result.diagnostics]
    assert 'self.a = TorchSequential(OrderedDict([("m0", Mlp()), ("m1", Mlp())]))' in result.code
