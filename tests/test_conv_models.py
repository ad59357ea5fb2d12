"""Convolution models and layers: convert, load torch weights, compare (NCHW for torch, NHWC for MLX)."""
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402

from tests.model_support import (  # noqa: E402
    ATOL, assert_close as _assert_close, channels_last as _channels_last, exec_source as _exec,
    assert_model_matches_torch, converts_clean, randomize_batch_norm as _randomize_batch_norm)


@dataclass(frozen=True)
class Case:
    file: str
    build: Callable[[dict], object]
    input_shape: tuple  # torch's NCHW


CASES = {
    "lenet": Case("lenet.py", lambda ns: ns["LeNet"](10), (3, 1, 28, 28)),
    "vgg_small": Case("vgg_small.py", lambda ns: ns["VGGSmall"](10), (2, 3, 28, 28)),
    "resnet_block": Case("resnet_block.py", lambda ns: ns["TinyResNet"](8, 5), (2, 3, 10, 10)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_conv_model_converts_without_flags(name):
    converts_clean(CASES[name].file)


@pytest.mark.parametrize("name", sorted(CASES))
def test_conv_model_matches_torch_with_loaded_weights(name):
    case = CASES[name]
    assert_model_matches_torch(case.file, case.build, case.input_shape, randomize=_randomize_batch_norm)


LAYERS = [  # (torch constructor, torch input shape); MLX gets the same data channels-last
    ("nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2)", (2, 4, 11)),
    ("nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), bias=False)", (2, 4, 9, 7)),
    ("nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=4)", (2, 4, 6, 6)),
    ("nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1)", (2, 4, 5, 6)),
    ("nn.MaxPool2d(3, 2, 1)", (2, 3, 7, 8)),
    ("nn.MaxPool2d((2, 3))", (2, 3, 7, 8)),
    ("nn.AvgPool2d(3, stride=2, padding=1)", (2, 3, 7, 8)),
    ("nn.AvgPool2d(2, count_include_pad=True)", (2, 3, 7, 8)),
    ("nn.AdaptiveAvgPool2d(1)", (2, 3, 5, 4)),
    ("nn.BatchNorm2d(3, eps=1e-3)", (2, 3, 4, 5)),
    ("nn.BatchNorm1d(3, affine=False)", (4, 3, 6)),
    ("nn.BatchNorm1d(3)", (6, 3)),
]


@pytest.mark.parametrize("ctor,shape", LAYERS, ids=[c for c, _ in LAYERS])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_layer_matches_torch(ctor, shape, training):
    source = f"import torch\nimport torch.nn as nn\n\n\ndef build():\n    return {ctor}\n"
    result = convert_source(source, layout="channels-last")
    assert not result.flagged, result.code
    torch.manual_seed(0)
    torch_layer = _exec(source, "torch_layer")["build"]()
    _randomize_batch_norm(torch_layer)
    torch_layer.train(training)
    mlx_layer = _exec(result.code, "mlx_layer")["build"]()
    if callable(getattr(mlx_layer, "train", None)):  # AdaptiveAvgPool2d(1) becomes a plain function
        mlx_layer.train(training)
        load_torch_weights(mlx_layer, torch_layer.state_dict())
    x = np.random.RandomState(1).standard_normal(shape).astype(np.float32)
    expected = torch_layer(torch.from_numpy(x))
    _assert_close(mlx_layer(mx.array(_channels_last(x))), expected)
    for stat in ("running_mean", "running_var"):  # training updates the running statistics alike
        if hasattr(torch_layer, stat) and getattr(torch_layer, stat) is not None:
            np.testing.assert_allclose(np.array(getattr(mlx_layer, stat)), getattr(torch_layer, stat).numpy(), rtol=1e-4, atol=1e-5)


def _forward(body: str, init: str = "self.conv = nn.Conv2d(3, 4, 3)\n        self.conv2 = nn.Conv2d(4, 2, 1)") -> str:
    return ("import torch\nimport torch.nn as nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n"
            f"        super().__init__()\n        {init}\n\n    def forward(self, x):\n        h = torch.relu(self.conv(x))\n"
            + "".join(f"        {line}\n" for line in body.splitlines()))


REMAPPED = [  # forward body after `h = self.conv(x)`, what must appear in the MLX code
    ("return torch.cat([h, h], dim=1)", "axis=3"),
    ("return h.mean((2, 3))", "axis=(1, 2)"),
    ("return h.shape[1]", "h.shape[3]"),
    ("return h.size(1)", "h.shape[3]"),
    ("return h.reshape(h.shape[0], -1)", "mx.transpose(h, (0, 3, 1, 2))"),
    ("return h.flatten(1)", "mx.transpose(h, (0, 3, 1, 2))"),
    ("return h.permute(0, 2, 3, 1)", "return h\n"),
    ("return h.permute(0, 3, 2, 1)", "mx.transpose(h, (0, 2, 1, 3))"),
    ("return h.transpose(1, 2)", "mx.swapaxes(h, 2, 3)"),
    ("return h.transpose(2, 3)", "mx.swapaxes(h, 1, 3)"),
    ("return h[:, 0]", "h[:, :, :, 0]"),
    ("return h[:, 1:3, :2]", "h[:, :2, :, 1:3]"),
    ("return h.flatten(2)", "mx.flatten(h, 1, 2)"),
    ("return h.flatten(2).transpose(1, 2)", "return mx.flatten(h, 1, 2)\n"),
    ("return h.reshape(2, 4, -1)", "reshape_channels_last(h, 2, 4, -1)"),  # (N, C, H*W), checked at run time
    ("return h.mean([-2, -1])", "axis=[1, 2]"),
    ("return h.sum(dim=1, keepdim=True)", "axis=3"),
    ("return h.amax(2)", "mx.max(h, 1)"),
    ("return torch.mean(h, (2, 3), keepdim=True).flatten(1)", "axis=(1, 2)"),
    ("N, C, H, W = h.shape\nreturn h.mean((2, 3)) * C + H", "N, H, W, C = h.shape"),
    ("a, b = h.chunk(2, dim=1)\nreturn torch.cat([b, a], dim=1)", "axis=3"),
    ("if h.size(1) > 2:\n    h = h * 2\nreturn h.mean((2, 3))", "h.shape[3]"),
    ("g = h.permute(0, 2, 3, 1) * 2\nreturn self.conv2(g.permute(0, 3, 1, 2))", "self.conv2(g)"),
    ("for _ in range(2):\n    h = torch.relu(h)\nreturn h.sum((2, 3))", "axis=(1, 2)"),
    ("out = h\nout += h\nreturn out.flatten(1)", "mx.transpose(out, (0, 3, 1, 2))"),
]


@pytest.mark.parametrize("body,expected", REMAPPED, ids=[r[0] for r in REMAPPED])
def test_axis_dependent_uses_are_remapped_and_match_torch(body, expected):
    source = _forward(body)
    result = convert_source(source, layout="channels-last")
    assert not [d for d in result.diagnostics if d.severity.value != "info"], result.code
    assert expected in result.code, result.code
    torch.manual_seed(0)
    torch_net = _exec(source, "torch_net")["Net"]()
    mlx_net = _exec(result.code, "mlx_net")["Net"]()
    load_torch_weights(mlx_net, torch_net.state_dict())
    x = np.random.RandomState(2).standard_normal((2, 3, 6, 5)).astype(np.float32)
    expected_out, actual = torch_net(torch.from_numpy(x)), mlx_net(mx.array(_channels_last(x)))
    if isinstance(expected_out, int):
        assert actual == expected_out
    elif "outputs: unchanged" in result.code:  # the class comment says how to read the output
        np.testing.assert_allclose(np.array(actual), expected_out.detach().numpy(), rtol=1e-4, atol=ATOL)
    else:
        assert "outputs: channels-last" in result.code
        _assert_close(actual, expected_out)


FLAGGED = [
    "return torch.cat([h, torch.ones(2)], dim=1)",
    "return h.view(-1, 4)",
    "if h.sum() > 0:\n    h = h.flatten(1)\nreturn h",
    "for _ in range(2):\n    h = h.mean(1)\nreturn h",
    "return h[:, self.index]",
    "return h.reshape(2, 2, 2, -1)",
    "N, C = h.shape[:2]\nreturn C",
    "try:\n    h = h * 2\nexcept ValueError:\n    pass\nreturn h",
]


@pytest.mark.parametrize("body", FLAGGED)
def test_uses_the_analysis_cannot_follow_are_flagged(body):
    result = convert_source(_forward(body), layout="channels-last")
    assert any(d.rule_id == "nn-layout" and d.severity.value == "warning" for d in result.diagnostics), result.code


def test_classes_without_spatial_layers_are_left_alone():
    result = convert_source(_forward("return h.view(h.size(0), -1)", init="self.conv = nn.Linear(3, 4)"), layout="channels-last")
    assert "transpose" not in result.code and "MLX layout" not in result.code


def test_sequential_flattening_a_feature_map_is_flagged():
    source = _forward("return h", init="self.conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))")
    result = convert_source(source, layout="channels-last")
    assert any(d.rule_id == "nn-layout" for d in result.diagnostics), result.code



def test_a_flagged_statement_keeps_torch_meaning():
    """Rewrites planned inside a statement the analysis gives up on are dropped: the flagged code is
    torch's, converted op by op, not half remapped (here `g.permute(0, 2, 1)` would become `g`)."""
    body = "g = h.mean((2, 3))\nattn = g[:, None] @ torch.ones(2, 1, 3).permute(0, 2, 1) + h.sum()\nreturn attn * h.view(-1, 4)"
    result = convert_source(_forward(body), layout="channels-last")
    flagged = [d for d in result.diagnostics if d.rule_id == "nn-layout" and d.severity.value == "warning"]
    assert flagged, result.code
    assert "mx.transpose(mx.ones((2, 1, 3)), (0, 2, 1))" in result.code, result.code
