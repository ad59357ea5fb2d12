"""torch layer classes used as values (`act_layer=nn.ReLU`, `norm_layer=nn.BatchNorm2d`, `partial(nn.LayerNorm,
eps=1e-6)`) and isinstance over BatchNorm: the nn-layer-values transform (transforms/module/layer_values.py).

Minimal reproductions of torchvision (Conv2dNormActivation, MobileNet's init loop, ResNet's norm_layer) and
timm (create_act_layer's table, Mlp with act_layer/norm_layer) idioms, converted and run against torch with
the same weights."""
from __future__ import annotations

import numpy as np
import pytest

from torch2mlx import convert_source, load_torch_weights
from tests.model_support import assert_close, exec_source, randomize_batch_norm, warnings

# torchvision.ops.misc.ConvNormActivation / Conv2dNormActivation and a MobileNetV2-like model built with them
TORCHVISION_CONV_NORM_ACT = '''
from functools import partial
from typing import Callable, List, Optional

import torch
from torch import nn


class ConvNormActivation(torch.nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: Optional[int] = None, groups: int = 1,
                 norm_layer: Optional[Callable[..., torch.nn.Module]] = torch.nn.BatchNorm2d,
                 activation_layer: Optional[Callable[..., torch.nn.Module]] = torch.nn.ReLU,
                 dilation: int = 1, inplace: Optional[bool] = True, bias: Optional[bool] = None,
                 conv_layer: Callable[..., torch.nn.Module] = torch.nn.Conv2d) -> None:
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        if bias is None:
            bias = norm_layer is None
        layers = [conv_layer(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation,
                             groups=groups, bias=bias)]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            params = {} if inplace is None else {"inplace": inplace}
            layers.append(activation_layer(**params))
        super().__init__(*layers)
        self.out_channels = out_channels


class Conv2dNormActivation(ConvNormActivation):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: Optional[int] = None, groups: int = 1,
                 norm_layer: Optional[Callable[..., torch.nn.Module]] = torch.nn.BatchNorm2d,
                 activation_layer: Optional[Callable[..., torch.nn.Module]] = torch.nn.ReLU,
                 dilation: int = 1, inplace: Optional[bool] = True, bias: Optional[bool] = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, groups, norm_layer,
                         activation_layer, dilation, inplace, bias, torch.nn.Conv2d)


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int,
                 norm_layer: Optional[Callable[..., nn.Module]] = None) -> None:
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: List[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden_dim, kernel_size=1, norm_layer=norm_layer,
                                               activation_layer=nn.ReLU6))
        layers.extend([
            Conv2dNormActivation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim, norm_layer=norm_layer,
                                 activation_layer=nn.ReLU6),
            Conv2dNormActivation(hidden_dim, oup, kernel_size=1, norm_layer=norm_layer, activation_layer=None),
        ])
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNet(nn.Module):
    def __init__(self, num_classes: int = 10, norm_layer: Optional[Callable[..., nn.Module]] = None) -> None:
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self.features = nn.Sequential(
            Conv2dNormActivation(3, 8, stride=2, norm_layer=norm_layer, activation_layer=nn.ReLU6),
            InvertedResidual(8, 8, 1, 1, norm_layer=norm_layer),
            InvertedResidual(8, 12, 2, 4, norm_layer=norm_layer),
            InvertedResidual(12, 12, 1, 4, norm_layer=norm_layer),
            Conv2dNormActivation(12, 16, kernel_size=1, norm_layer=partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01),
                                 activation_layer=nn.Hardswish),
        )
        self.classifier = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(16, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.mean((2, 3))
        return self.classifier(x)
'''

# timm.layers.create_act's table and Mlp / a norm-act block with norm_layer and act_layer values
TIMM_ACT_NORM = '''
from functools import partial

import torch
import torch.nn as nn

_ACT_LAYER_DEFAULT = dict(
    relu=nn.ReLU, relu6=nn.ReLU6, silu=nn.SiLU, swish=nn.SiLU, mish=nn.Mish, gelu=nn.GELU, sigmoid=nn.Sigmoid,
    tanh=nn.Tanh, hard_swish=nn.Hardswish, leaky_relu=nn.LeakyReLU, elu=nn.ELU, selu=nn.SELU, identity=nn.Identity,
)


def get_act_layer(name="relu"):
    return _ACT_LAYER_DEFAULT[name]


def create_act_layer(name, inplace=None, **kwargs):
    act_layer = get_act_layer(name)
    if inplace is None:
        return act_layer(**kwargs)
    return act_layer(inplace=inplace, **kwargs)


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU, norm_layer=None,
                 bias=True, drop=0.0):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.norm = norm_layer(hidden_features) if norm_layer is not None else nn.Identity()
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)

    def forward(self, x):
        x = self.fc1(x)
        x = self.act(x)
        x = self.drop1(x)
        x = self.norm(x)
        return self.fc2(x)


class Head(nn.Module):
    def __init__(self, dim, num_classes, norm_layer=partial(nn.LayerNorm, eps=1e-6), layer=nn.Linear):
        super().__init__()
        self.norm = norm_layer(dim)
        self.acts = nn.Sequential(*[create_act_layer(n, inplace=True) for n in ("relu", "relu6", "silu", "mish",
                                                                               "hard_swish", "selu")],
                                  create_act_layer("leaky_relu", negative_slope=0.2, inplace=True),
                                  create_act_layer("elu", alpha=0.5), create_act_layer("sigmoid"),
                                  create_act_layer("tanh"), create_act_layer("identity"),
                                  create_act_layer("gelu", approximate="tanh"))
        self.mlp = Mlp(dim, 2 * dim, act_layer=nn.SiLU, norm_layer=partial(nn.LayerNorm, elementwise_affine=True))
        self.bn = nn.Sequential(layer(dim, dim, bias=False), nn.BatchNorm1d(dim))
        self.fc = layer(in_features=dim, out_features=num_classes)

    def forward(self, x):
        x = x + self.mlp(self.acts(self.norm(x)))  # in-place activations on a fresh tensor (the info's assumption)
        return self.fc(self.bn(x))
'''

# every spatial layer class as a value, in a module the layout analysis leaves channels-first
SPATIAL_VALUES = '''
import torch
import torch.nn as nn

LAYERS = {"conv": nn.Conv2d, "bn": nn.BatchNorm2d, "gn": nn.GroupNorm, "max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class Block(nn.Module):
    def __init__(self, cin, cout, conv_layer=nn.Conv2d, norm_layer=nn.BatchNorm2d, pool_layer=nn.MaxPool2d):
        super().__init__()
        self.conv = conv_layer(cin, cout, kernel_size=3, padding="same", bias=False)
        self.norm = norm_layer(cout)
        self.pool = pool_layer(3, stride=2, padding=1)
        self.gn = LAYERS["gn"](2, cout, eps=1e-3)
        self.avg = LAYERS["avg"](kernel_size=2)

    def forward(self, x):
        y = self.pool(self.norm(self.conv(x)))
        return torch.cat([self.avg(self.gn(y)), self.avg(y)], dim=1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block(3, 4)
        self.conv1d = LAYERS_1D["conv"](3, 4, 3, stride=2, padding=1)
        self.bn1d = LAYERS_1D["bn"](4)
        self.conv3d = nn.Conv3d  # a class as an attribute value: never called here

    def forward(self, x, seq):
        return self.block(x), self.bn1d(self.conv1d(seq))


LAYERS_1D = {"conv": nn.Conv1d, "bn": nn.BatchNorm1d}
'''


def _convert(source: str, name: str):
    result = convert_source(source, f"{name}.py")
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    assert convert_source(result.code).code == result.code, "converting the output again changed it"
    return result


def _run_both(source: str, name: str, build, inputs: list, *, channels_last_output: bool = False):
    import mlx.core as mx
    import torch

    result = _convert(source, name)
    torch_ns = exec_source(source, f"torch_{name}")
    mlx_ns = exec_source(result.code, f"mlx_{name}")
    torch.manual_seed(0)
    torch_model = build(torch_ns)
    randomize_batch_norm(torch_model)
    torch_model.eval()
    mlx_model = build(mlx_ns)
    mlx_model.eval()
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and report.loaded, report
    arrays = [np.random.RandomState(i).standard_normal(shape).astype(np.float32) for i, shape in enumerate(inputs)]
    with torch.no_grad():
        expected = torch_model(*[torch.from_numpy(a) for a in arrays])
    actual = mlx_model(*[mx.array(a) for a in arrays])
    assert_close(actual, expected, channels_last_output=channels_last_output)
    return result


def test_torchvision_conv_norm_activation_mobilenet():
    result = _run_both(TORCHVISION_CONV_NORM_ACT, "mobilenet", lambda ns: ns["MobileNet"](num_classes=5), [(2, 3, 16, 16)])
    code = result.code
    assert "norm_layer: Optional[Callable[..., nn.Module]] = BatchNorm2dNCHW" in code
    assert "activation_layer: Optional[Callable[..., nn.Module]] = ReLU," in code
    assert "conv_layer: Callable[..., nn.Module] = Conv2dNCHW" in code
    assert "partial(BatchNorm2dNCHW, eps=1e-3, momentum=0.01)" in code
    assert "elif isinstance(m, (nn.BatchNorm, nn.GroupNorm)):" in code
    assert code.count("class BatchNorm2dNCHW(") == 1 and code.count("class ReLU6(") == 1
    infos = [d for d in result.diagnostics if d.severity.value == "info" and "inplace=True" in d.message]
    assert infos, "the in-place activation assumption is reported"


def test_timm_act_table_mlp_and_partial_layer_norm():
    result = _run_both(TIMM_ACT_NORM, "timm_like", lambda ns: ns["Head"](8, 3), [(4, 8)])
    code = result.code
    assert "relu=ReLU, relu6=ReLU6, silu=SiLU" in code and "sigmoid=nn.Sigmoid" in code
    assert "norm_layer=partial(LayerNorm, eps=1e-6), layer=Linear" in code


def test_spatial_layer_values_take_channels_first_data():
    result = _run_both(SPATIAL_VALUES, "spatial", lambda ns: ns["Net"](), [(2, 3, 8, 8), (2, 3, 9)])
    assert "# MLX layout" not in result.code.split("class Net")[1]  # the model stays channels-first
    for helper in ("Conv2dNCHW", "BatchNorm2dNCHW", "GroupNormNCHW", "MaxPool2dNCHW", "AvgPool2dNCHW", "Conv1dNCHW",
                   "BatchNorm1dNCHW", "Conv3dNCHW"):
        assert f"class {helper}(" in result.code


def test_value_built_layer_in_a_channels_last_class_is_built_channels_last():
    """A class the layout analysis makes channels-last (it builds nn.Conv2d directly) that calls a layer built
    from a value defaulting to a torch layer class: the layer is built channels-last from it (nn-layout:
    `channels_last_layer`, which raises for another class value), so the map stays channels-last."""
    import torch

    source = """
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = norm_layer(4)

    def forward(self, x):
        return self.bn(self.conv(x))
"""
    result = convert_source(source, "m.py")
    assert not warnings(result), result.code
    assert "norm_layer=BatchNorm2dNCHW" in result.code
    assert "self.bn = channels_last_layer(norm_layer, BatchNorm2dNCHW, BatchNorm2dNHWC)(4)" in result.code
    assert "transpose" not in result.code.split("class Net")[1], result.code
    torch_net = exec_source(source, "torch_net")["Net"]()
    randomize_batch_norm(torch_net)
    torch_net.eval()
    mlx_net = exec_source(result.code, "mlx_net")["Net"]()
    mlx_net.eval()
    assert load_torch_weights(mlx_net, torch_net.state_dict()).ok
    x = np.random.RandomState(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    with torch.no_grad():
        expected = torch_net(torch.from_numpy(x))
    import mlx.core as mx
    actual = mlx_net(mx.array(x.transpose(0, 2, 3, 1)))  # the class takes and gives NHWC
    assert_close(actual, expected, channels_last_output=True)


def _helpers_namespace():
    source = "import torch.nn as nn\nLAYERS = [nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.BatchNorm2d, nn.LeakyReLU, nn.GELU, nn.LayerNorm, nn.Conv3d,\n          nn.Conv1d, nn.BatchNorm1d, nn.BatchNorm3d]\n"
    return exec_source(_convert(source, "helpers").code, "mlx_helpers")


@pytest.mark.parametrize("build", [
    lambda ns: ns["Conv2dNCHW"](3, 4, 3, padding_mode="reflect"),
    lambda ns: ns["Conv2dNCHW"](3, 4, 4, padding="same"),
    lambda ns: ns["Conv3dNCHW"](4, 4, 3, groups=2),
    lambda ns: ns["MaxPool2dNCHW"](3, dilation=2),  # (ceil_mode is computed: tests/test_timm_max_pool_ceil.py)
    lambda ns: ns["BatchNorm2dNCHW"](3, momentum=None),
    lambda ns: ns["LeakyReLU"](1.5),
    lambda ns: ns["GELU"](approximate="fast"),
    lambda ns: ns["LayerNorm"]((3, 4)),
])
def test_arguments_mlx_cannot_honour_raise(build):
    with pytest.raises((NotImplementedError, ValueError)):
        build(_helpers_namespace())


def test_conv_padding_same_and_valid():
    import mlx.core as mx

    ns = _helpers_namespace()
    assert ns["Conv2dNCHW"](3, 4, (3, 5), padding="same", dilation=2)(mx.zeros((1, 3, 9, 9))).shape == (1, 4, 9, 9)
    assert ns["Conv2dNCHW"](3, 4, 3, padding="valid")(mx.zeros((1, 3, 9, 9))).shape == (1, 4, 7, 7)


@pytest.mark.parametrize("args,kwargs", [
    ((4, 8, 3), dict(padding="same")),                                           # was a (1,) tuple padding: mx.conv1d raised
    ((4, 8, 5), dict(padding="same", dilation=2, groups=4)),
    ((4, 8, (5,)), dict(padding=(2,), dilation=(2,), stride=(2,), groups=2)),   # torch's 1-tuples
])
def test_conv1d_value_matches_torch(args, kwargs):
    import mlx.core as mx
    import torch

    torch.manual_seed(0)
    torch_layer = torch.nn.Conv1d(*args, **kwargs)
    mlx_layer = _helpers_namespace()["Conv1dNCHW"](*args, **kwargs)
    assert load_torch_weights(mlx_layer, torch_layer.state_dict()).ok
    x = np.random.RandomState(0).standard_normal((2, 4, 17)).astype(np.float32)
    with torch.no_grad():
        expected = torch_layer(torch.from_numpy(x))
    assert_close(mlx_layer(mx.array(x)), expected, channels_last_output=False)


@pytest.mark.parametrize("d,shape", [(1, (8, 5, 7)), (2, (4, 5, 6, 7)), (3, (3, 5, 4, 5, 6))])
def test_batch_norm_value_running_stats_match_torch(d, shape):
    """Two training steps (momentum, unbiased running variance), then eval on the running statistics."""
    import mlx.core as mx
    import torch

    torch_layer = getattr(torch.nn, f"BatchNorm{d}d")(5, eps=1e-3, momentum=0.3)
    randomize_batch_norm(torch_layer)
    mlx_layer = _helpers_namespace()[f"BatchNorm{d}dNCHW"](5, eps=1e-3, momentum=0.3)
    assert load_torch_weights(mlx_layer, torch_layer.state_dict()).ok
    rng = np.random.RandomState(0)
    for training in (True, True, False):
        torch_layer.train(training)
        mlx_layer.train(training)
        x = rng.standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            expected = torch_layer(torch.from_numpy(x))
        assert_close(mlx_layer(mx.array(x)), expected, channels_last_output=False)


BATCH_NORMS = ("torch.nn.BatchNorm1d", "torch.nn.BatchNorm2d", "torch.nn.BatchNorm3d")


def _flags(source: str) -> list:
    result = convert_source(source, "m.py")
    return [(d.rule_id, d.severity.value) for d in result.diagnostics]


INIT_LOOP = '''
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        {extra}
        for m in self.modules():
            if isinstance(m, {classes}):
                {body}
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)
            {tail}
'''


@pytest.mark.parametrize("classes,body,extra,tail,translated", [
    ("nn.BatchNorm2d", "nn.init.constant_(m.weight, 1)\n                nn.init.constant_(m.bias, 0)", "", "", True),
    ("(nn.BatchNorm2d, nn.GroupNorm)", "m.weight.data.fill_(1)\n                m.bias.data.zero_()", "", "", True),
    ("(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)", "nn.init.constant_(m.weight, 0.5)", "", "", True),
    # a body that is not BN's default: a batch norm of another dimensionality would get it too
    ("nn.BatchNorm2d", "nn.init.constant_(m.weight, 0.5)", "", "", False),
    # the file builds another dimensionality: a later check of it would never be reached
    ("nn.BatchNorm2d", "nn.init.ones_(m.weight)", "self.bn = nn.BatchNorm1d(3)", "", False),
    # an else: that would have seen the other batch norms in torch
    ("nn.BatchNorm2d", "nn.init.ones_(m.weight)", "", "else:\n                pass", False),
])
def test_isinstance_over_batch_norm(classes, body, extra, tail, translated):
    source = INIT_LOOP.format(classes=classes, body=body, extra=extra, tail=tail)
    # the rule torch.nn.BatchNormNd.class, shown by the class the isinstance names (issue 14: no internal names)
    flagged = [rule for rule, severity in _flags(source) if rule in BATCH_NORMS and severity == "warning"]
    assert bool(flagged) != translated, convert_source(source, "m.py").code


@pytest.mark.parametrize("source", [
    "import torch.nn as nn\nact = nn.ReLU\nsame = act is nn.ReLU",                      # identity: per-file helper classes
    "import torch.nn as nn\nok = issubclass(nn.ReLU, nn.Module)",
    "import torch.nn as nn\nclass MyReLU(nn.ReLU):\n    pass",                             # a base class
    "import torch.nn as nn\nlayer = nn.Embedding",                                         # no helper for it
])
def test_left_flagged(source):
    assert any(severity == "warning" and rule.startswith("torch.nn.") for rule, severity in _flags(source)), source


def test_helper_name_taken_gets_a_fresh_name():
    """The file's own ReLU keeps its name; the helper is ReLU_1 (tests/test_architecture_helpers.py runs such files)."""
    source = "import torch.nn as nn\n\n\ndef ReLU():\n    pass\n\n\nact = nn.ReLU\n"
    result = convert_source(source, "m.py")
    assert not warnings(result)
    assert "class ReLU_1(nn.ReLU):" in result.code and "act = ReLU_1\n" in result.code
    assert "def ReLU():\n    pass" in result.code


def test_annotations_and_plain_isinstance_unchanged():
    source = ("import torch.nn as nn\n\n\ndef f(m: nn.Conv2d) -> bool:\n    return isinstance(m, nn.Conv2d)\n")
    result = convert_source(source, "m.py")
    assert "def f(m: nn.Conv2d) -> bool:\n    return isinstance(m, nn.Conv2d)" in result.code
    assert "class " not in result.code
