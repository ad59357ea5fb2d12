"""Channels-last layers built and called in script code or a plain function (transform nn-script-layers).

Each layer runs on torch-layout data in torch and, converted, under MLX: the values and shapes must agree
(rtol 1e-4, atol 1e-5), or the call must be flagged. Inputs are sin() of a ramp, so any axis mix-up changes
the numbers; the weights of layers with parameters are copied with load_torch_weights."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from tests.model_support import exec_source, randomize_parameters, torch_names, warnings
from torch2mlx import convert_source, load_torch_weights

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"

# (torch constructor, input shape, has parameters or running statistics)
LAYERS = [
    # convolutions
    ("nn.Conv1d(3, 4, 3, padding=1)", (2, 3, 7), True),
    ("nn.Conv2d(3, 4, 3, stride=2, padding=1)", (2, 3, 6, 5), True),
    ("nn.Conv3d(3, 4, 2)", (2, 3, 4, 5, 3), True),
    ("nn.ConvTranspose1d(3, 4, 3, stride=2)", (2, 3, 5), True),
    ("nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1)", (2, 3, 4, 5), True),
    ("nn.ConvTranspose3d(3, 2, 2)", (1, 3, 3, 4, 2), True),
    # pooling
    ("nn.MaxPool1d(2)", (2, 3, 8), False),
    ("nn.MaxPool2d(3, stride=2, padding=1)", (2, 3, 7, 6), False),
    ("nn.MaxPool3d(2)", (1, 3, 4, 4, 6), False),
    ("nn.AvgPool1d(3, stride=1)", (2, 3, 8), False),
    ("nn.AvgPool2d(2)", (2, 3, 6, 4), False),
    ("nn.AvgPool3d(2, stride=1)", (1, 3, 3, 4, 5), False),
    # adaptive pooling
    ("nn.AdaptiveAvgPool1d(2)", (2, 3, 8), False),
    ("nn.AdaptiveAvgPool1d(1)", (2, 3, 8), False),
    ("nn.AdaptiveAvgPool2d((2, 3))", (2, 3, 4, 6), False),
    ("nn.AdaptiveAvgPool2d(1)", (2, 3, 4, 6), False),
    ("nn.AdaptiveMaxPool2d(2)", (2, 3, 4, 6), False),
    ("nn.AdaptiveMaxPool2d((1, 1))", (2, 3, 4, 6), False),
    # normalisation
    ("nn.BatchNorm2d(3)", (2, 3, 4, 5), True),
    ("nn.BatchNorm3d(3)", (2, 3, 2, 4, 5), True),
    ("nn.InstanceNorm1d(3)", (2, 3, 7), False),
    ("nn.InstanceNorm1d(3, affine=True)", (2, 3, 7), True),
    ("nn.GroupNorm(1, 3)", (2, 3, 7), True),
    ("nn.GroupNorm(2, 4)", (2, 4, 3, 5), True),
    ("nn.GroupNorm(2, 4)", (2, 4, 3, 2, 3), True),
    ("nn.LocalResponseNorm(3, alpha=0.5)", (2, 5, 7), False),
    ("nn.LocalResponseNorm(2, alpha=0.1)", (2, 5, 3, 4), False),
    ("nn.LocalResponseNorm(3, alpha=0.5, k=2.0)", (1, 5, 2, 3, 4), False),
    # padding
    *[(f"nn.{kind}Pad1d((1, 2){value})", (2, 3, 5), False) for kind, value in
      (("Zero", ""), ("Constant", ", 1.5"), ("Reflection", ""), ("Replication", ""))],
    *[(f"nn.{kind}Pad2d((1, 2, 0, 1){value})", (2, 3, 4, 5), False) for kind, value in
      (("Zero", ""), ("Constant", ", -0.5"), ("Reflection", ""), ("Replication", ""))],
    *[(f"nn.{kind}Pad3d((1, 0, 0, 1, 1, 1){value})", (1, 3, 3, 4, 5), False) for kind, value in
      (("Zero", ""), ("Constant", ", 2.0"), ("Reflection", ""), ("Replication", ""))],
    # upsampling, pixel shuffle
    ("nn.Upsample(scale_factor=2)", (2, 3, 5), False),
    ("nn.Upsample(scale_factor=2)", (2, 3, 4, 5), False),
    ("nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False)", (2, 3, 4, 5), False),
    ("nn.Upsample(scale_factor=(2, 3), mode='bilinear', align_corners=True)", (2, 3, 4, 5), False),
    ("nn.Upsample(scale_factor=2)", (1, 3, 2, 3, 4), False),
    ("nn.PixelShuffle(2)", (2, 8, 3, 5), False),
    ("nn.PixelUnshuffle(2)", (2, 3, 4, 6), False),
    # a Sequential of channels-last and per-position layers
    ("nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.BatchNorm2d(4))", (2, 3, 6, 7), True),
    ("nn.Sequential(nn.Conv1d(3, 4, 3), nn.BatchNorm1d(4), nn.GELU())", (2, 3, 7), True),
]
IDS = [f"{ctor.split('(')[0][3:]}-{len(shape) - 2}d-{i}" for i, (ctor, shape, _) in enumerate(LAYERS)]
FREE = [c for c in LAYERS if not c[2]]  # no parameters: the MLX layer computes torch's values as built
FREE_IDS = [i for i, c in zip(IDS, LAYERS, strict=True) if not c[2]]


def _data(shape) -> np.ndarray:
    return np.sin(np.arange(int(np.prod(shape)), dtype=np.float32) * 0.37 + 0.1).reshape(shape)


def _source(body: str) -> str:
    return HEADER + textwrap.dedent(body).strip() + "\n"


def _convert(body: str):
    return convert_source(_source(body), "script.py", layout="channels-last")


def _run_both(body: str):
    """Convert; the source must convert with no warning and no torch left; run it under torch and MLX."""
    source = _source(body)
    result = convert_source(source, "script.py", layout="channels-last")
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    assert not torch_names(result.code), result.code
    assert convert_source(result.code, layout="channels-last").code == result.code
    return result, exec_source(source, "torch_side"), exec_source(result.code, "mlx_side")


def _assert_same(actual, expected) -> None:
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    actual = np.array(actual)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


def _flagged(result) -> list:
    return [d for d in warnings(result) if d.rule_id == "nn-layout"]


def _copy_layer(torch_layer, mlx_layer) -> None:
    torch.manual_seed(0)
    randomize_parameters(torch_layer)  # norms start at weight 1, bias 0: make them matter
    torch_layer.eval()
    mlx_layer.eval()
    report = load_torch_weights(mlx_layer, torch_layer.state_dict())
    assert report.ok and report.loaded


@pytest.mark.parametrize("ctor,shape,params", LAYERS, ids=IDS)
def test_module_level_layer_called_in_a_function(ctor, shape, params):
    """`layer = nn.X(...)` at module level, `layer(x)` in a function: an argument of unknown rank."""
    import mlx.core as mx

    result, t, m = _run_both(f"layer = {ctor}\n\n\ndef run(x):\n    return layer(x)\n")
    assert "mx.moveaxis(" in result.code
    if params:
        _copy_layer(t["layer"], m["layer"])
    elif hasattr(m["layer"], "eval"):  # AdaptiveAvgPool2d(1) becomes a lambda over mx.mean
        t["layer"].eval()
        m["layer"].eval()
    x = _data(shape)
    with torch.no_grad():
        expected = t["run"](torch.from_numpy(x))
    _assert_same(m["run"](mx.array(x)), expected)


@pytest.mark.parametrize("ctor,shape,params", FREE, ids=FREE_IDS)
def test_script_builds_and_calls_layer(ctor, shape, params):
    """The whole script at module level: a tensor of known rank, the layer bound to a name and called inline."""
    size = int(np.prod(shape))
    dims = ", ".join(map(str, shape))
    body = f"""
    x = torch.sin(torch.arange({size}, dtype=torch.float32) * 0.37 + 0.1).reshape({dims})
    layer = {ctor}
    y = layer(x)
    z = {ctor}(x)
    """
    result, t, m = _run_both(body)
    assert "mx.moveaxis(x, 1, -1)" in result.code, result.code  # the rank is known: channels are axis 1
    _assert_same(m["y"], t["y"])
    _assert_same(m["z"], t["z"])


@pytest.mark.parametrize("ctor,shape,params", FREE, ids=FREE_IDS)
def test_layer_built_in_a_function(ctor, shape, params):
    import mlx.core as mx

    _, t, m = _run_both(f"def run(x):\n    pool = {ctor}\n    return pool(x)\n")
    x = _data(shape)
    _assert_same(m["run"](mx.array(x)), t["run"](torch.from_numpy(x)))


def test_unbatched_input_of_a_pad_and_a_pixel_shuffle():
    """Without a known rank the channels are counted from the end: torch's unbatched (C, H, W) works too
    (MLX's own pools and convolutions raise on it: loud, never silently wrong)."""
    import mlx.core as mx

    result, t, m = _run_both("""
    pool = nn.MaxPool2d(2)
    pad = nn.ReflectionPad1d(2)
    shuffle = nn.PixelShuffle(2)
    adaptive = nn.AdaptiveAvgPool2d((1, 2))

    def run(y, z, w):
        return pad(y), shuffle(z), adaptive(w)

    def pooled(x):
        return pool(x)
    """)
    assert "mx.moveaxis(pool(mx.moveaxis(x, -3, -1)), -1, -3)" in result.code, result.code
    inputs = [_data((3, 5)), _data((8, 3, 2)), _data((3, 4, 6))]
    expected = t["run"](*[torch.from_numpy(a) for a in inputs])
    for got, want in zip(m["run"](*[mx.array(a) for a in inputs]), expected, strict=True):
        _assert_same(got, want)
    with pytest.raises(ValueError):
        m["pooled"](mx.array(_data((3, 4, 6))))


# ----- ranks: BatchNorm1d, InstanceNorm2d, Dropout2d --------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 6)])
def test_batch_norm_1d_of_a_known_rank(shape):
    """(N, C): as written (MLX normalises the last axis); (N, C, L): the channels moved last."""
    dims = ", ".join(map(str, shape))
    body = f"""
    bn = nn.BatchNorm1d(3)

    def run(x: torch.Tensor):
        x = x.view({dims})
        return bn(x)
    """
    result, t, m = _run_both(body)
    assert ("mx.moveaxis" in result.code) == (len(shape) == 3), result.code
    _copy_layer(t["bn"], m["bn"])
    import mlx.core as mx

    x = _data(shape)
    with torch.no_grad():
        expected = t["run"](torch.from_numpy(x))
    _assert_same(m["run"](mx.array(x)), expected)


def test_batch_norm_1d_in_training_mode_on_a_sequence():
    """Batch statistics over (N, L) per channel: also right with the channels moved last."""
    body = """
    x = torch.sin(torch.arange(72, dtype=torch.float32) * 0.37).reshape(4, 3, 6)
    bn = nn.BatchNorm1d(3)
    y = bn(x)
    mean = bn.running_mean
    """
    _, t, m = _run_both(body)
    _assert_same(m["y"], t["y"].detach())
    _assert_same(m["mean"], t["mean"])


@pytest.mark.parametrize("ctor", ["nn.BatchNorm1d(3)", "nn.InstanceNorm2d(3)", "nn.Dropout2d(0.5)"])
def test_rank_dependent_layer_on_an_argument_is_flagged(ctor):
    result = _convert(f"def run(x):\n    norm = {ctor}\n    return norm(x)\n")
    assert _flagged(result) and "rank" in _flagged(result)[0].message, result.code
    assert "# torch2mlx: nn-layout:" in result.code and "mx.moveaxis" not in result.code


def test_unbatched_instance_norm_2d_is_flagged():
    result = _convert("x = torch.randn(3, 4, 5)\ny = nn.InstanceNorm2d(3)(x)\n")
    assert _flagged(result) and "3-d input" in _flagged(result)[0].message, result.code


def test_instance_norm_2d_of_a_known_rank():
    _, t, m = _run_both("""
    x = torch.sin(torch.arange(120, dtype=torch.float32) * 0.37).reshape(2, 3, 4, 5)
    y = nn.InstanceNorm2d(3)(x)
    norm = nn.InstanceNorm2d(3, affine=True)
    nn.init.constant_(norm.weight, 1.5)
    nn.init.constant_(norm.bias, -0.25)
    z = norm(x)
    """)
    _assert_same(m["y"], t["y"])
    _assert_same(m["z"], t["z"].detach())


# ----- channel dropout: whole channels of torch's layout are zeroed ---------------------------------


@pytest.mark.parametrize("ctor,shape", [("nn.Dropout1d(0.5)", (4, 6, 5)), ("nn.Dropout2d(0.5)", (4, 6, 3, 5)),
                                        ("nn.Dropout3d(0.5)", (4, 6, 2, 3, 5))])
def test_channel_dropout_zeroes_torch_channels(ctor, shape):
    size = int(np.prod(shape))
    dims = ", ".join(map(str, shape))
    _, t, m = _run_both(f"""
    x = (torch.arange({size}, dtype=torch.float32) + 1.0).reshape({dims})
    drop = {ctor}
    y = drop(x)
    drop.eval()
    z = drop(x)
    """)
    y, x = np.array(m["y"]), np.array(m["x"])
    assert y.shape == x.shape
    per_channel = y.reshape(shape[0], shape[1], -1)
    kept = np.all(np.isclose(per_channel, 2 * x.reshape(per_channel.shape)), axis=-1)
    dropped = np.all(per_channel == 0, axis=-1)
    assert np.all(kept | dropped), "MLX zeroed something other than whole (N, C) channels"
    assert kept.any() and dropped.any()
    _assert_same(m["z"], t["z"])  # eval: the identity


# ----- what is flagged ------------------------------------------------------------------------------


def test_sequential_with_flatten_is_flagged():
    result = _convert("""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(16, 2))
    y = net(torch.randn(1, 3, 4, 4))
    """)
    assert _flagged(result) and "Flatten" in _flagged(result)[0].message, result.code


def test_sequential_of_unseen_elements_is_flagged():
    result = _convert("""
    layers = [nn.Conv2d(3, 4, 3), nn.ReLU()]
    net = nn.Sequential(*layers)
    y = net(torch.randn(1, 3, 4, 4))
    """)
    assert _flagged(result), result.code


def test_rebinding_to_another_kind_is_flagged():
    result = _convert("""
    x = torch.randn(2, 3, 8)
    layer = nn.MaxPool1d(2)
    if x.sum() > 0:
        layer = nn.Linear(8, 8)
    y = layer(x)
    """)
    assert _flagged(result) and "bound more than once" in _flagged(result)[0].message, result.code


def test_same_kind_on_both_branches_converts():
    _, t, m = _run_both("""
    x = torch.sin(torch.arange(96, dtype=torch.float32)).reshape(2, 3, 4, 4)
    if x.sum() > 0:
        pool = nn.MaxPool2d(2)
    else:
        pool = nn.AvgPool2d(2)
    y = pool(x)
    """)
    _assert_same(m["y"], t["y"])


def test_global_rebinding_is_flagged():
    result = _convert("""
    pool = nn.MaxPool2d(2)

    def reset():
        global pool
        pool = nn.Identity()

    def run(x):
        return pool(x)
    """)
    assert _flagged(result) and "global" in _flagged(result)[0].message, result.code


def test_layer_passed_on_is_flagged():
    result = _convert("""
    x = torch.randn(1, 3, 4, 4)
    conv = nn.Conv2d(3, 4, 3)
    y = conv(x)
    layers = [conv, nn.ReLU()]
    """)
    flags = _flagged(result)
    assert len(flags) == 1 and "passed on" in flags[0].message, result.code
    assert "mx.moveaxis(conv(mx.moveaxis(x, 1, -1)), -1, 1)" in result.code  # the direct call is still right


def test_layer_passed_to_a_function_that_calls_it_is_flagged():
    result = _convert("""
    def apply(fn, x):
        return fn(x)

    y = apply(nn.AvgPool2d(2), torch.randn(1, 3, 4, 4))
    """)
    assert _flagged(result) and "`apply`" in _flagged(result)[0].message, result.code


def test_layer_factory_result_called_in_script_is_flagged():
    result = _convert("""
    def conv3x3(i, o):
        return nn.Conv2d(i, o, 3, padding=1)

    y = conv3x3(3, 4)(torch.randn(1, 3, 4, 4))
    """)
    assert _flagged(result) and "conv3x3" in _flagged(result)[0].message, result.code


def test_keyword_input_is_flagged():
    result = _convert("pool = nn.MaxPool2d(2)\ny = pool(input=torch.randn(1, 3, 4, 4))\n")
    assert _flagged(result), result.code


def test_layer_in_another_method_of_a_channels_last_class_is_flagged():
    result = _convert("""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(x)

        def pooled(self, x):
            return nn.MaxPool2d(2)(x)
    """)
    assert any("method of a channels-last class" in d.message for d in _flagged(result)), result.code


def test_inline_layer_on_a_plain_value_in_a_channels_last_forward():
    """In a channels-last class's forward, a layer built there and fed a torch-layout tensor is transposed too;
    fed a feature map, nn-layout flags it."""
    import mlx.core as mx

    body = """
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            z = nn.AvgPool2d(2)(torch.ones(1, 3, 4, 4) * 2)
            return y, z
    """
    _, t, m = _run_both(body)
    z = m["Net"]()(mx.zeros((1, 4, 4, 3)))[1]
    _assert_same(z, t["Net"]()(torch.zeros(1, 3, 4, 4))[1].detach())
    flagged = _convert(body.replace("torch.ones(1, 3, 4, 4) * 2", "y"))
    assert _flagged(flagged), flagged.code


MODEL = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


class Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y, y.mean()
"""


def test_output_of_a_model_transposed_back_is_torch_layout():
    import mlx.core as mx

    body = MODEL + """

model = Net()


def run(x):
    feats = model(x)
    return nn.MaxPool2d(2)(feats)
"""
    _, t, m = _run_both(body)
    load_torch_weights(m["model"], t["model"].state_dict())
    x = _data((2, 3, 4, 3))  # C == W: a missed transpose keeps the shape
    with torch.no_grad():
        expected = t["run"](torch.from_numpy(x))
    _assert_same(m["run"](mx.array(x)), expected)


@pytest.mark.parametrize("use", ["feats = two(x)[0]\n    return pool(feats)",
                                 "outs = []\n    outs.append(two(x)[0])\n    return pool(outs[0])",
                                 "return pool(Net()(x))"])
def test_input_from_a_model_not_transposed_back_is_flagged(use):
    body = MODEL + f"\n\ntwo = Two()\npool = nn.MaxPool2d(2)\n\n\ndef run(x):\n    {use}\n"
    result = _convert(body)
    assert any("may come out of a converted channels-last model" in d.message for d in _flagged(result)), result.code


def test_layer_left_as_torch_by_its_rule_gets_no_transpose():
    # dilation has no MLX pooling counterpart (ceil_mode, once the example here, now translates exactly)
    result = _convert("pool = nn.MaxPool2d(2, dilation=2)\ny = pool(torch.randn(1, 3, 5, 5))\n")
    assert warnings(result) and "moveaxis" not in result.code, result.code


def test_functional_forms_on_nchw_script_data():
    """F.interpolate, F.pixel_shuffle, F.adaptive_*_pool2d and F.pad on torch-layout data match torch
    (their rules transpose around the channels-last MLX op), F.max_pool2d and F.avg_pool2d too, and
    F.conv2d / F.avg_pool1d (their rules transpose the input and the weight); dilated pooling stays flagged."""
    import mlx.core as mx

    _, t, m = _run_both("""
    def run(x):
        a = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        b = F.pixel_shuffle(torch.cat([x, x, x, x], dim=1), 2)
        c = F.adaptive_avg_pool2d(x, (2, 1))
        d = F.pad(x, (1, 2, 0, 1), value=0.5)
        e = F.interpolate(x, size=(8, 4))
        f = F.max_pool2d(x, 2)
        g = F.avg_pool2d(x, (2, 1), stride=1)
        h = F.max_pool2d(x, (3, 2), stride=2, ceil_mode=True)
        return a, b, c, d, e, f, g, h
    """)
    x = _data((2, 3, 4, 2))
    for got, want in zip(m["run"](mx.array(x)), t["run"](torch.from_numpy(x)), strict=True):
        _assert_same(got, want)
    _, t, m = _run_both("""
    def run(x, w, s):
        return F.conv2d(x, w), F.conv2d(x, w, stride=2, padding=1), F.avg_pool1d(s, 2)
    """)
    x, w, s = _data((2, 3, 6, 5)), _data((4, 3, 3, 2)), _data((2, 3, 7))
    for got, want in zip(m["run"](mx.array(x), mx.array(w), mx.array(s)),
                         t["run"](torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(s)), strict=True):
        _assert_same(got, want)
    for call in ("F.max_pool2d(x, 2, dilation=2)", "F.instance_norm(x)"):  # (F.group_norm: translated now)
        flagged = _convert(f"def run(x, w):\n    return {call}\n")
        assert warnings(flagged), call


@pytest.mark.parametrize("body", [
    "x = torch.randn(4, 3)\nif x.sum() > 0:\n    x = x.unsqueeze(-1)\ny = bn(x)\n",
    "x = torch.randn(4, 3, 5)\nif x.sum() > 0:\n    x = x.view(12, 5)\nelse:\n    y = bn(x)\n",
    "x = torch.randn(4, 3)\nfor _ in range(2):\n    y = bn(x)\n    x = x.unsqueeze(-1)\n",
    "x = torch.randn(4, 3)\nx, w = x.unsqueeze(-1), x\ny = bn(x)\n",
])
def test_rank_changed_on_some_path_is_flagged(body):
    result = _convert("bn = nn.BatchNorm1d(3)\n" + body)
    assert _flagged(result) and "rank" in _flagged(result)[0].message, result.code


def test_rank_of_the_last_assignment_counts():
    result, t, m = _run_both("""
    x = torch.sin(torch.arange(60, dtype=torch.float32)).reshape(4, 15)
    x = x.view(4, 3, 5)
    bn = nn.BatchNorm1d(3)
    bn.eval()
    y = bn(x)
    """)
    assert "mx.moveaxis(bn(mx.moveaxis(x, 1, -1)), -1, 1)" in result.code
    _assert_same(m["y"], t["y"].detach())


def test_submodule_of_a_converted_model_called_from_script():
    """`model.features(img)`: a channels-last submodule of a model of this file, fed torch-layout data."""
    body = """
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return self.conv(x) + x


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2))
            self.pool = nn.AvgPool2d(2)
            self.block = Block()

        def forward(self, x):
            return self.block(self.pool(self.features(x)))


    model = Net()
    img = torch.sin(torch.arange(2 * 3 * 6 * 6, dtype=torch.float32)).reshape(2, 3, 6, 6)


    def run():
        feats = model.features(img)
        return feats, model.pool(feats)
    """
    _, t, m = _run_both(body)
    load_torch_weights(m["model"], t["model"].state_dict())
    with torch.no_grad():
        expected = t["run"]()
    for got, want in zip(m["run"](), expected, strict=True):
        _assert_same(got, want)
    flagged = _convert(body + "\n    y = model.block(img)\n")
    assert any("`model.block`" in d.message for d in _flagged(flagged)), flagged.code


def test_layers_reached_through_loops_aliases_and_containers():
    """A loop over a list (or ModuleList) of layers of one kind, an alias, `a = b = ...`, a walrus, an index."""
    _, t, m = _run_both("""
    x = torch.sin(torch.arange(96, dtype=torch.float32) * 0.37).reshape(2, 3, 4, 4)
    outs = []
    for pool in [nn.MaxPool2d(2), nn.AvgPool2d(2, stride=1)]:
        outs.append(pool(x))
    pads = nn.ModuleList([nn.ZeroPad2d(1), nn.ReflectionPad2d((1, 0, 2, 1))])
    for i, pad in enumerate(pads):
        outs.append(pad(x))
    outs.append(pads[1](x))
    a = b = nn.PixelUnshuffle(2)
    alias = a
    outs.append(b(x))
    outs.append(alias(x))
    if (up := nn.Upsample(scale_factor=2)) is not None:
        outs.append(up(x))
    """)
    assert len(m["outs"]) == len(t["outs"]) == 8
    for got, want in zip(m["outs"], t["outs"], strict=True):
        _assert_same(got, want)


@pytest.mark.parametrize("body", [
    "for layer in [nn.MaxPool2d(2), nn.MaxPool1d(2)]:\n    y = layer(x)\n",
    "layers = {'a': nn.MaxPool2d(2), 'b': nn.Linear(4, 4)}\ny = layers['a'](x)\n",
    "net = nn.Sequential(nn.Conv2d(3, 3, 1))\nfor child in net.children():\n    x = child(x)\n",
    "class Cfg:\n    pool = nn.MaxPool2d(2)\n    y = pool(torch.randn(1, 3, 4, 4))\n",
])
def test_unclear_layer_through_a_container_is_flagged(body):
    result = _convert("x = torch.randn(1, 3, 4, 4)\n" + body)
    assert _flagged(result), result.code


def _prepared_script_layers(source: str):
    import ast

    from torch2mlx.api import build_index, _hot_attributes
    from torch2mlx.names import analyze
    from torch2mlx.transforms.layout.nn_script_layers import NnScriptLayersTransform

    tree = ast.parse(source)
    module_scope, _scopes = analyze(tree, _hot_attributes(build_index()))
    transform = NnScriptLayersTransform()
    transform.prepare(tree, module_scope)
    return transform


@pytest.mark.parametrize("source, needed", [
    # a layer only inside a module class: the pass may skip statements naming no torch API
    ("class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.pool = nn.AvgPool2d(2)\n", False),
    ("pool = nn.AvgPool2d(2)\ny = pool(torch.randn(1, 3, 4, 4))\n", True),  # `pool(...)` names no torch API
    ("def make():\n    return nn.MaxPool2d(2)\n\np = make()\nq = p\nz = q(x)\n", True),  # through a factory and a copy
    ("layers = [nn.AvgPool2d(2)]\nz = layers[0](x)\n", True),
])
def test_every_statement_is_visited_only_where_a_layer_may_be_called(source, needed):
    assert _prepared_script_layers(HEADER + source).needs_every_statement is needed


def test_layer_called_in_a_statement_naming_no_torch_api_is_converted():
    source = HEADER + "p = nn.AvgPool2d(2)\nq = p\nx = torch.randn(1, 3, 4, 4)\ny = q(x)\n"
    result = convert_source(source, layout="channels-last")
    assert not result.diagnostics
    assert "y = mx.moveaxis(q(mx.moveaxis(x, 1, -1)), -1, 1)" in result.code
