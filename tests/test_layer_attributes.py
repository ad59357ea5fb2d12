"""torch layer attributes read off converted MLX layers (torch2mlx/layer_attributes.py): each table entry is
checked by constructing the torch layer and the MLX layer it converts to; conversions of minimal
reproductions of what transformers' Whisper and torchvision read."""
from __future__ import annotations

import mlx.core as mx
import mlx.nn as mnn
import pytest
import torch.nn as tnn

from torch2mlx import convert_source, layer_attributes
from torch2mlx.layer_attributes import LAYER_ATTRIBUTES, RAW_INT, RULE_ID, SPATIAL

# MLX class -> (torch layer, MLX layer) built with the same arguments (non-default ones where they matter)
_PAIRS = {
    "Conv1d": lambda: (tnn.Conv1d(4, 8, 3, stride=2, padding=1, groups=2), mnn.Conv1d(4, 8, 3, stride=2, padding=1, groups=2)),
    "Conv2d": lambda: (tnn.Conv2d(6, 9, (3, 5), stride=2, padding=1, groups=3),
                       mnn.Conv2d(6, 9, (3, 5), stride=2, padding=1, groups=3)),
    "Conv3d": lambda: (tnn.Conv3d(4, 8, (1, 3, 5)), mnn.Conv3d(4, 8, (1, 3, 5))),
    "ConvTranspose1d": lambda: (tnn.ConvTranspose1d(4, 8, 3, stride=2), mnn.ConvTranspose1d(4, 8, 3, stride=2)),
    "ConvTranspose2d": lambda: (tnn.ConvTranspose2d(4, 8, (3, 5)), mnn.ConvTranspose2d(4, 8, (3, 5))),
    "ConvTranspose3d": lambda: (tnn.ConvTranspose3d(4, 8, (1, 3, 5)), mnn.ConvTranspose3d(4, 8, (1, 3, 5))),
    "Linear": lambda: (tnn.Linear(8, 16), mnn.Linear(8, 16)),
    "Embedding": lambda: (tnn.Embedding(10, 8), mnn.Embedding(10, 8)),
    "BatchNorm": lambda: (tnn.BatchNorm2d(8), mnn.BatchNorm(8)),
    "LayerNorm": lambda: (tnn.LayerNorm(8), mnn.LayerNorm(8)),
    "GroupNorm": lambda: (tnn.GroupNorm(2, 8), mnn.GroupNorm(2, 8)),
    "Dropout": lambda: (tnn.Dropout(0.2), mnn.Dropout(0.2)),
    "MaxPool1d": lambda: (tnn.MaxPool1d(2, 2), mnn.MaxPool1d(2, 2)),
    "MaxPool2d": lambda: (tnn.MaxPool2d(2, 2), mnn.MaxPool2d(2, 2)),
    "MaxPool3d": lambda: (tnn.MaxPool3d(2, 2), mnn.MaxPool3d(2, 2)),
    "AvgPool1d": lambda: (tnn.AvgPool1d(3, 1, 1), mnn.AvgPool1d(3, 1, 1)),
    "AvgPool2d": lambda: (tnn.AvgPool2d(3, 1, 1), mnn.AvgPool2d(3, 1, 1)),
    "AvgPool3d": lambda: (tnn.AvgPool3d(3, 1, 1), mnn.AvgPool3d(3, 1, 1)),
    "MultiHeadAttention": lambda: (tnn.MultiheadAttention(8, 2), mnn.MultiHeadAttention(8, 2)),
    "RNN": lambda: (tnn.RNN(4, 8), mnn.RNN(4, 8)),
    "GRU": lambda: (tnn.GRU(4, 8), mnn.GRU(4, 8)),
    "LSTM": lambda: (tnn.LSTM(4, 8), mnn.LSTM(4, 8)),
}
_ENTRIES = [(layer, attr) for layer, table in LAYER_ATTRIBUTES.items() for attr in table]


def _value(v):
    return tuple(v) if isinstance(v, (tuple, list)) else v


@pytest.mark.parametrize("layer,attr", _ENTRIES)
def test_entry_against_torch_and_mlx(layer, attr):
    t, m = _PAIRS[layer]()
    template, _why = LAYER_ATTRIBUTES[layer][attr]
    if template is None:  # flagged: MLX really lacks it, or it differs
        assert not hasattr(m, attr) or _value(getattr(m, attr)) != _value(getattr(t, attr, object()))
        return
    got = eval(template.format(x="m"), {"m": m})
    want = getattr(t, attr)
    assert type(_value(got)) is type(_value(want)) and _value(got) == _value(want), (layer, attr, got, want)


@pytest.mark.parametrize("layer", sorted(RAW_INT))
def test_raw_int_attributes(layer):
    t, m = _PAIRS[layer]()
    n = SPATIAL[layer]
    for attr in RAW_INT[layer]:
        assert isinstance(getattr(m, attr), int) and isinstance(getattr(t, attr), tuple)
        assert (getattr(m, attr),) * n == getattr(t, attr)
        assert getattr(m, attr) == getattr(t, attr)[0]


@pytest.mark.parametrize("affine", [True, False])
def test_affine_flags(affine):
    for t, m, attr in ((tnn.BatchNorm2d(8, affine=affine), mnn.BatchNorm(8, affine=affine), "affine"),
                       (tnn.GroupNorm(2, 8, affine=affine), mnn.GroupNorm(2, 8, affine=affine), "affine"),
                       (tnn.LayerNorm(8, elementwise_affine=affine), mnn.LayerNorm(8, affine=affine),
                        "elementwise_affine")):
        layer = type(m).__name__
        assert eval(LAYER_ATTRIBUTES[layer][attr][0].format(x="m"), {"m": m}) == getattr(t, attr)


def test_conv_weight_layouts_differ():
    # the reason `.weight.shape[i]` (i > 0) of a conv is flagged: OIHW against OHWI
    t, m = _PAIRS["Conv2d"]()
    assert tuple(t.weight.shape) == (9, 2, 3, 5) and tuple(m.weight.shape) == (9, 3, 5, 2)


_WHISPER = '''
import torch
import torch.nn as nn


class Encoder(nn.Module):
    def __init__(self, mels, dim):
        super().__init__()
        self.conv1 = nn.Conv1d(mels, dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, kernel_size=3, stride=2, padding=1)
        self.proj = nn.Linear(dim, 2 * dim)

    def forward(self, x):
        expected = 8 * self.conv1.stride[0] * self.conv2.stride[0]
        return expected, self.proj.out_features, self.conv2.in_channels, self.conv2.kernel_size
'''


def _run(code: str, call: str):
    scope: dict = {"mx": mx}  # the converted code imports mx only where it uses it
    exec(compile(code, "<converted>", "exec"), scope)
    return eval(call, scope)


def test_whisper_stride_reads_are_translated():
    result = convert_source(_WHISPER)
    assert RULE_ID not in result.code
    assert "self.conv1.stride[0]" not in result.code
    want = _run(_WHISPER, "Encoder(4, 6)(torch.zeros(1, 4, 32))")
    got = _run(result.code, "Encoder(4, 6)(mx.zeros((1, 32, 4)))")
    assert got == want == (16, 12, 6, (3,))


def test_conv_weight_shape_read_is_flagged():
    source = _WHISPER.replace("self.proj.out_features", "self.conv2.weight.shape[1]")
    result = convert_source(source)
    assert any(d.rule_id == RULE_ID for d in result.diagnostics)
    assert f"# torch2mlx: {RULE_ID}:" in result.code


def test_out_channels_from_conv_weight_shape_zero_passes():
    source = _WHISPER.replace("self.proj.out_features", "self.conv2.weight.shape[0]")
    result = convert_source(source)
    assert not any(d.rule_id == RULE_ID for d in result.diagnostics)
    assert _run(result.code, "Encoder(4, 6)(mx.zeros((1, 32, 4)))")[1] == 6


def test_stride_passed_as_a_name_is_flagged():
    source = _WHISPER.replace("stride=2,", "stride=s,").replace("def __init__(self, mels, dim)",
                                                                "def __init__(self, mels, dim, s=2)")
    result = convert_source(source)
    flagged = [d for d in result.diagnostics if d.rule_id == RULE_ID]
    assert flagged and "self.conv2.stride[0]" in result.code


def test_layer_stored_twice_differently_is_read_at_run_time():
    # no one MLX class is known for self.proj: the helper reads the attribute off whichever layer it holds
    source = _WHISPER.replace("self.proj = nn.Linear(dim, 2 * dim)",
                              "self.proj = nn.Linear(dim, 2 * dim)\n        self.proj = nn.Identity()")
    result = convert_source(source)
    assert 'torch_layer_attribute(self.proj, "out_features")' in result.code
    assert not [d for d in result.diagnostics if d.rule_id == RULE_ID]


def test_dropout_p_of_a_layer_not_built_in_view_is_flagged():
    # built in view (`self.drop = nn.Dropout(0.1)`) it becomes TorchDropout, which keeps p
    # (tests/test_attention_dropout_p.py); narrowed by isinstance, the layer may be any MLX Dropout
    source = _WHISPER.replace("self.proj.out_features", "self.rates()") + (
        "\n    def rates(self):\n        out = []\n        for m in self.modules():\n"
        "            if isinstance(m, nn.Dropout):\n                out.append(m.p)\n        return out\n")
    result = convert_source(source)
    assert "class TorchDropout" not in result.code
    assert any(d.rule_id == RULE_ID and "Dropout" in d.message for d in result.diagnostics)


def test_whole_conv_weight_shape_is_left_alone():
    # the MLX weight's own shape, as the translated initialisers use it: not a layout read
    source = _WHISPER.replace("self.proj.out_features", "mx_shape(self.conv2.weight.shape)")
    result = convert_source(source)
    assert not any(d.rule_id == RULE_ID for d in result.diagnostics)


def test_conv_weight_shape_unpacked_is_flagged():
    source = _WHISPER.replace("expected = 8", "o, i, k = self.conv2.weight.shape\n        expected = 8")
    result = convert_source(source)
    assert any(d.rule_id == RULE_ID for d in result.diagnostics)


_INIT_LOOP = '''
import math
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, (3, 5), groups=1), nn.Conv1d(8, 4, 3, stride=2))
        self.fans = []
        for m in self.body.layers if hasattr(self.body, "layers") else self.body:
            if isinstance(m, nn.Conv2d):
                self.fans.append(m.kernel_size[0] * m.kernel_size[1] * m.out_channels)
            elif isinstance(m, nn.Conv1d):
                self.fans.append(m.stride[0])
'''


def test_isinstance_narrowed_reads():
    result = convert_source(_INIT_LOOP)
    assert "m.weight.shape[1:-1][0] * m.weight.shape[1:-1][1] * m.weight.shape[0]" in result.code
    # the constructor of `m` is not known here: `m.stride` may hold a tuple in MLX, so it stays flagged
    flagged = [d for d in result.diagnostics if d.rule_id == RULE_ID]
    assert len(flagged) == 1 and "stride" in flagged[0].message
    scope: dict = {}
    exec(compile(result.code.replace("self.fans.append(m.stride[0])", "pass"), "<converted>", "exec"), scope)
    assert scope["Net"]().fans == [3 * 5 * 8]


def test_layer_kept_on_torch_is_left_alone():
    # a torch Conv2d the converter kept under a local `import torch.nn as nn` (the MLX import is then bound
    # to another name, but the audit must not rely on it): its in_channels is not the MLX layout's expression
    code = ("import mlx.nn as nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        import torch.nn as nn\n        self.conv = nn.Conv2d(3, 8, 3, padding_mode='circular')\n\n"
            "    def width(self):\n        return self.conv.in_channels\n")
    assert layer_attributes.audit(code) == (code, [])
    assert layer_attributes.audit(code.replace("        import torch.nn as nn\n", ""))[0].endswith(
        "return self.conv.weight.shape[-1] * self.conv.groups\n")


@pytest.mark.parametrize("source", [_WHISPER, _INIT_LOOP, _WHISPER.replace("self.proj.out_features", "self.conv2.stride")])
def test_converting_twice_changes_nothing(source):
    # converted code means MLX's attributes: `(self.conv2.stride,)` must not become `((self.conv2.stride,),)`
    keeps_torch = "\n\ndef _left_for_torch(flag):\n    torch._assert(flag, 'kept')\n"
    first = convert_source(source + keeps_torch).code
    assert "(self.conv2.stride,)" in first or "self.conv2.stride," not in first
    assert convert_source(first).code == first


def test_mlx_code_of_its_own_is_left_alone():
    code = ("import mlx.nn as nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.conv = nn.Conv2d(3, 8, 3)\n\n    def kernel_height(self):\n"
            "        return self.conv.weight.shape[1]\n")
    assert layer_attributes.audit(code, code) == (code, [])
    assert layer_attributes.audit(code)[1]  # as the output of a torch file it is flagged


def test_narrowed_layer_norm_shape_is_flagged():
    # a class deriving from nn.LayerNorm becomes a TorchLayerNorm, an MLX LayerNorm that keeps torch's
    # normalized_shape: (4, 6) there, where `dims` is only 6
    source = '''
import torch.nn as nn


class LN2d(nn.LayerNorm):
    pass


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = LN2d((4, 6))
        self.shapes = [m.normalized_shape for m in [self.norm] if isinstance(m, nn.LayerNorm)]
        for m in [self.norm]:
            if isinstance(m, nn.LayerNorm):
                self.shapes.append(m.normalized_shape)
'''
    result = convert_source(source)
    assert not [line for line in result.code.splitlines() if "m.dims" in line and not line.strip().startswith("#")]
    assert any(d.rule_id == RULE_ID and "normalized_shape" in d.message for d in result.diagnostics)


def test_layer_norm_shape_of_a_non_literal_is_flagged():
    source = '''
import torch.nn as nn


class N(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a = nn.LayerNorm(8)
        self.b = nn.LayerNorm([c])

    def forward(self, x):
        return self.a.normalized_shape, self.b.normalized_shape
'''
    result = convert_source(source)
    assert "return (self.a.dims,), self.b.normalized_shape" in result.code
    assert [d.rule_id for d in result.diagnostics if d.rule_id == RULE_ID] == [RULE_ID]


def test_conv_helper_weight_shape_is_flagged():
    # timm's halo attention: `std = self.q.weight.shape[1] ** -0.5` (fan-in) on a conv built through **kwargs,
    # which the converter writes as Conv2dNHWC, an MLX Conv2d (O, kH, kW, I): shape[1] is 1 there, not dim
    source = '''
import torch.nn as nn


class Halo(nn.Module):
    def __init__(self, dim, **dd):
        super().__init__()
        self.q = nn.Conv2d(dim, dim, 1, **dd)
        self.std = self.q.weight.shape[1] ** -0.5
'''
    result = convert_source(source)
    assert "Conv2dN" in result.code
    assert any(d.rule_id == RULE_ID and "weight.shape" in d.message for d in result.diagnostics)
