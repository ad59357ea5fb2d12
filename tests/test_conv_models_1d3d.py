"""1-d and 3-d layers, pads, channel dropout and the other layers of rules/nn_layers_extra.yaml, each
checked against torch (NC... for torch, channels-last for MLX), and a 1-d audio CNN fixture:
convert, load torch weights, compare."""
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402
from tests.model_support import assert_model_matches_torch, converts_clean  # noqa: E402
from tests.test_conv_models_vision import _assert_close, _channels_last, _exec, _randomize, _warnings  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "models"
ATOL = 1e-4  # whole models (float32)


def _build(ctor: str):
    """The torch layer and its conversion (with the torch layer's weights loaded)."""
    source = f"import torch\nimport torch.nn as nn\n\n\ndef build():\n    return {ctor}\n"
    result = convert_source(source, layout="channels-last")
    assert not _warnings(result), result.code
    assert "torch" not in result.code.replace("torch2mlx", ""), result.code
    assert convert_source(result.code, layout="channels-last").code == result.code
    torch.manual_seed(0)
    torch_layer = _exec(source, "torch_layer")["build"]()
    _randomize(torch_layer)
    mlx_layer = _exec(result.code, "mlx_layer")["build"]()
    if torch_layer.state_dict():
        report = load_torch_weights(mlx_layer, torch_layer.state_dict())
        assert report.ok and report.loaded, report.describe()
    return torch_layer, mlx_layer


LAYERS = [  # (torch constructor, torch input shape); sizes differ per axis so a wrong axis shows
    ("nn.MaxPool1d(2)", (2, 3, 7)),
    ("nn.MaxPool1d(3, 2, 1)", (2, 3, 8)),
    ("nn.AvgPool1d(2)", (2, 3, 7)),
    ("nn.AvgPool1d(3, stride=2, padding=1)", (2, 3, 8)),
    ("nn.ConvTranspose1d(4, 3, 3, stride=2, padding=1, output_padding=1)", (2, 4, 5)),
    ("nn.ConvTranspose1d(4, 3, 3, 2, 1, 1, 1, False, 2)", (2, 4, 6)),
    ("nn.Conv3d(2, 4, 3, padding=1)", (2, 2, 3, 4, 5)),
    ("nn.Conv3d(2, 4, (1, 3, 2), stride=(1, 2, 1), padding=(0, 1, 1), dilation=(1, 1, 2), bias=False)", (1, 2, 3, 6, 5)),
    ("nn.ConvTranspose3d(2, 3, 3, stride=2, padding=1, output_padding=1)", (1, 2, 2, 3, 4)),
    ("nn.MaxPool3d(2)", (2, 3, 4, 5, 6)),
    ("nn.MaxPool3d(3, 2, 1)", (1, 2, 5, 6, 4)),
    ("nn.AvgPool3d(2, stride=1)", (1, 2, 3, 4, 5)),
    ("nn.AvgPool3d((1, 2, 2), padding=(0, 1, 1))", (1, 2, 3, 4, 5)),
    ("nn.BatchNorm3d(3).eval()", (2, 3, 2, 4, 5)),
    ("nn.BatchNorm3d(3, eps=1e-3, affine=False).eval()", (2, 3, 2, 4, 5)),
    ("nn.BatchNorm3d(3)", (2, 3, 2, 4, 5)),  # training mode: batch statistics
    ("nn.Dropout1d(0.3).eval()", (2, 3, 5)),
    ("nn.Dropout2d(0.3).eval()", (2, 3, 4, 5)),
    ("nn.Dropout3d().eval()", (2, 3, 2, 4, 5)),
    ("nn.ZeroPad1d(2)", (2, 3, 5)),
    ("nn.ZeroPad2d((1, 2, 3, 0))", (2, 3, 4, 5)),
    ("nn.ZeroPad3d((1, 0, 2, 1, 0, 3))", (1, 2, 3, 4, 5)),
    ("nn.ConstantPad1d((2, 1), -1.5)", (2, 3, 5)),
    ("nn.ConstantPad2d(1, 2.0)", (2, 3, 4, 5)),
    ("nn.ConstantPad3d((1, 2, 0, 1, 2, 0), 3.0)", (1, 2, 3, 4, 5)),
    ("nn.ReflectionPad1d(2)", (2, 3, 5)),
    ("nn.ReflectionPad1d((3, 1))", (2, 3, 5)),
    ("nn.ReflectionPad2d((1, 2, 3, 0))", (2, 3, 4, 5)),
    ("nn.ReflectionPad3d((1, 0, 2, 1, 0, 2))", (1, 2, 3, 4, 5)),
    ("nn.ReplicationPad1d((2, 3))", (2, 3, 5)),
    ("nn.ReplicationPad2d(2)", (2, 3, 4, 5)),
    ("nn.ReplicationPad3d((1, 2, 0, 3, 2, 1))", (1, 2, 3, 4, 5)),
    ("nn.LocalResponseNorm(3)", (2, 5, 4, 3)),
    ("nn.LocalResponseNorm(2, 1e-2, 0.5, 2.0)", (2, 6, 7)),
    ("nn.LocalResponseNorm(4, alpha=0.5, beta=1.0)", (1, 5, 2, 3, 4)),
]


@pytest.mark.parametrize("ctor, shape", LAYERS, ids=[f"{c}-{s}" for c, s in LAYERS])
def test_layer_matches_torch_on_channels_last_data(ctor, shape):
    torch_layer, mlx_layer = _build(ctor)
    if not torch_layer.training:
        mlx_layer.eval()
    x = np.random.RandomState(0).standard_normal(shape).astype(np.float32)
    expected = torch_layer(torch.from_numpy(x))
    _assert_close(mlx_layer(mx.array(_channels_last(x))), expected)
    if isinstance(torch_layer, torch.nn.BatchNorm3d) and torch_layer.training:  # the running statistics follow too
        _assert_close(mlx_layer.running_var, torch_layer.running_var, where="running_var")
        _assert_close(mlx_layer.running_mean, torch_layer.running_mean, where="running_mean")


@pytest.mark.parametrize("ctor, shape", [("nn.ZeroPad1d((1, 3))", (3, 5)), ("nn.ConstantPad2d((0, 2, 1, 3), 0.25)", (3, 4, 5)),
                                         ("nn.ReflectionPad2d((2, 1, 0, 1))", (2, 4, 5))])
def test_pad_of_unbatched_input_matches_torch(ctor, shape):
    """torch's (C, L) / (C, H, W) are MLX's (L, C) / (H, W, C)."""
    torch_layer, mlx_layer = _build(ctor)
    x = np.random.RandomState(6).standard_normal(shape).astype(np.float32)
    expected = np.moveaxis(torch_layer(torch.from_numpy(x)).numpy(), 0, -1)
    np.testing.assert_allclose(np.array(mlx_layer(mx.array(np.moveaxis(x, 0, -1)))), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("ctor, shape, mask_axes", [
    ("nn.Dropout1d(0.5)", (4, 6, 7), (1,)), ("nn.Dropout2d(0.5)", (4, 3, 5, 6), (1, 2)),
    ("nn.Dropout3d(0.5)", (4, 3, 2, 3, 4), (1, 2, 3))])
def test_channel_dropout_zeroes_whole_channels_when_training(ctor, shape, mask_axes):
    _, mlx_layer = _build(ctor)
    x = mx.array(np.random.RandomState(3).uniform(1, 2, _channels_last(np.empty(shape)).shape).astype(np.float32))
    y = np.array(mlx_layer(x))
    kept = y != 0
    assert np.all(kept == kept.any(axis=mask_axes, keepdims=True)), "a channel was zeroed only in part"
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(y[kept], np.array(x)[kept] * 2, rtol=1e-6)  # scaled by 1 / (1 - p)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_matches_torch(mode):
    torch_layer, mlx_layer = _build(f"nn.EmbeddingBag(10, 4, mode='{mode}')")
    flat = torch.tensor([1, 2, 4, 5, 4, 3, 2, 9])
    offsets = torch.tensor([0, 3, 3, 6])  # the second bag is empty: zeros in torch
    _assert_close(mlx_layer(mx.array(flat.numpy()), mx.array(offsets.numpy())), torch_layer(flat, offsets))
    rows = torch.tensor([[1, 2, 3], [9, 9, 0]])
    _assert_close(mlx_layer(mx.array(rows.numpy())), torch_layer(rows))
    if mode == "sum":
        weights = torch.rand(8)
        _assert_close(mlx_layer(mx.array(flat.numpy()), mx.array(offsets.numpy()), mx.array(weights.numpy())),
                      torch_layer(flat, offsets, per_sample_weights=weights))


def test_pairwise_distance_with_infinite_norm_matches_torch():
    torch_layer, mlx_layer = _build("nn.PairwiseDistance(p=float('inf'), keepdim=True)")
    a, b = np.random.RandomState(4).standard_normal((2, 3, 5)).astype(np.float32)
    _assert_close(mlx_layer(mx.array(a), mx.array(b)), torch_layer(torch.from_numpy(a), torch.from_numpy(b)))


@pytest.mark.parametrize("ctor", [
    "nn.Conv3d(2, 4, 3, padding='same')", "nn.Conv3d(2, 4, 3, groups=2)", "nn.ConvTranspose1d(4, 4, 3, groups=2)",
    "nn.BatchNorm3d(3, momentum=None)", "nn.MaxPool1d(2, ceil_mode=True)", "nn.AvgPool1d(3, 2, 1, count_include_pad=False)",
    "nn.CircularPad1d(1)", "nn.Dropout2d(0.5, inplace=True)", "nn.EmbeddingBag(5, 2, padding_idx=0)",
    "nn.EmbeddingBag(5, 2, include_last_offset=True)", "nn.LazyLinear(3)", "nn.LazyConv1d(4, 3)"])
def test_inexact_layers_are_flagged(ctor):
    result = convert_source(f"import torch.nn as nn\n\n\ndef build():\n    return {ctor}\n", layout="channels-last")
    assert _warnings(result) and "# torch2mlx:" in result.code, result.code


def test_pad_fed_a_torch_layout_value_is_flagged_not_run_on_it():
    """A pad (channels-last in MLX) applied to a value the analysis knows is in torch's layout is flagged."""
    source = ("import torch\nimport torch.nn as nn\n\n\nclass M(nn.Module):\n    def __init__(self):\n"
              "        super().__init__()\n        self.conv = nn.Conv1d(3, 4, 3)\n        self.pad = nn.ReflectionPad1d(1)\n\n"
              "    def forward(self, x):\n        y = self.conv(x)\n        w = self.pad(torch.ones(2, 3, 5))\n"
              "        return y, w\n")
    result = convert_source(source, layout="channels-last")
    flagged = [d for d in _warnings(result) if d.rule_id == "nn-layout"]
    assert [(d.line, d.column) for d in flagged] == [(13, 13)], result.code


def test_pads_in_a_class_follow_the_channels_last_layout():
    source = ("import torch\nimport torch.nn as nn\n\n\nclass M(nn.Module):\n    def __init__(self):\n"
              "        super().__init__()\n        self.conv = nn.Conv2d(3, 4, 3)\n        self.pad = nn.ReplicationPad2d((1, 2, 0, 1))\n"
              "        self.drop = nn.Dropout2d(0.2)\n\n"
              "    def forward(self, x):\n        h = self.drop(self.pad(self.conv(x)))\n        return torch.cat([h, h], dim=1).flatten(1)\n")
    result = convert_source(source, layout="channels-last")
    assert not _warnings(result), result.code
    torch.manual_seed(0)
    torch_model = _exec(source, "torch_pads")["M"]().eval()
    mlx_model = _exec(result.code, "mlx_pads")["M"]()
    mlx_model.eval()
    load_torch_weights(mlx_model, torch_model.state_dict())
    x = np.random.RandomState(5).standard_normal((2, 3, 6, 7)).astype(np.float32)
    _assert_close(mlx_model(mx.array(_channels_last(x))), torch_model(torch.from_numpy(x)))


def test_audio_cnn1d_converts_without_flags():
    converts_clean("audio_cnn1d.py")


def test_audio_cnn1d_matches_torch_with_loaded_weights():
    assert_model_matches_torch("audio_cnn1d.py", lambda ns: ns["AudioCNN1d"](2, 5), (3, 2, 40), randomize=_randomize)