"""Vision layers MLX lacks or lays out differently (group / instance norm, pixel shuffle, adaptive
pooling, F.interpolate) and two models using them: convert, load torch weights, compare
(NCHW for torch, NHWC for MLX)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402

from tests.model_support import (  # noqa: E402
    assert_close, assert_model_matches_torch, converts_clean, channels_last as _channels_last, exec_source as _exec,
    randomize_parameters as _randomize, warnings as _warnings)


def _assert_close(actual, expected, atol=1e-5, where="output"):
    """Single layers are compared at the rule examples' tolerance (atol 1e-5), whole models at ATOL."""
    assert_close(actual, expected, atol=atol, where=where)


LAYERS = [  # (torch constructor, torch input shape); MLX gets the same data channels-last
    ("nn.GroupNorm(3, 6)", (2, 6, 5, 4)),
    ("nn.GroupNorm(2, 4, eps=1e-3, affine=False)", (2, 4, 3, 5)),
    ("nn.GroupNorm(4, 4)", (2, 4, 3, 3)),
    ("nn.GroupNorm(1, 6)", (3, 6, 7)),
    ("nn.GroupNorm(2, 6)", (3, 6)),
    ("nn.InstanceNorm2d(3)", (2, 3, 4, 5)),
    ("nn.InstanceNorm2d(3, eps=1e-3, affine=True)", (2, 3, 4, 5)),
    ("nn.InstanceNorm1d(4, momentum=0.3, affine=True)", (2, 4, 7)),
    ("nn.PixelShuffle(2)", (2, 8, 3, 4)),
    ("nn.PixelShuffle(3)", (1, 18, 2, 3)),
    ("nn.PixelUnshuffle(2)", (2, 3, 4, 6)),
    ("nn.AdaptiveAvgPool2d((2, 2))", (2, 3, 4, 6)),
    ("nn.AdaptiveAvgPool2d(3)", (1, 2, 6, 9)),
    ("nn.AdaptiveAvgPool2d((None, 2))", (1, 2, 3, 4)),
    ("nn.AdaptiveAvgPool2d((1, 1))", (2, 3, 5, 4)),
    ("nn.AdaptiveAvgPool2d(4)", (2, 3, 4, 4)),
    ("nn.AdaptiveMaxPool2d((2, 3))", (1, 2, 4, 6)),
    ("nn.AdaptiveMaxPool2d(1)", (2, 3, 5, 4)),
    ("nn.AdaptiveAvgPool1d(1)", (2, 3, 5)),
    ("nn.AdaptiveAvgPool1d(3)", (2, 3, 6)),
    ("nn.AdaptiveAvgPool1d((2,))", (2, 3, 6)),
    ("nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True)", (1, 2, 3, 4)),
    ("nn.Upsample(scale_factor=(2, 3))", (1, 2, 3, 4)),
    ("nn.Upsample(scale_factor=3, mode='nearest-exact')", (1, 2, 5, 4)),
]


@pytest.mark.parametrize("ctor,shape", LAYERS, ids=[c for c, _ in LAYERS])
def test_layer_matches_torch(ctor, shape):
    source = f"import torch\nimport torch.nn as nn\n\n\ndef build():\n    return {ctor}\n"
    result = convert_source(source, layout="channels-last")
    assert not result.flagged, result.code
    assert convert_source(result.code, layout="channels-last").code == result.code
    torch.manual_seed(0)
    torch_layer = _exec(source, "torch_layer")["build"]()
    _randomize(torch_layer)
    torch_layer.eval()
    mlx_layer = _exec(result.code, "mlx_layer")["build"]()
    if hasattr(mlx_layer, "parameters"):  # output size 1 pools become plain functions
        report = load_torch_weights(mlx_layer, torch_layer.state_dict())
        assert report.ok
    x = np.random.RandomState(1).standard_normal(shape).astype(np.float32)
    _assert_close(mlx_layer(mx.array(_channels_last(x))), torch_layer(torch.from_numpy(x)))


def test_group_norm_needs_pytorch_compatible_grouping():
    """The flag the rule writes is what makes MLX group channels like torch (it fails without it)."""
    import mlx.nn

    x = np.random.RandomState(2).standard_normal((2, 6, 3, 4)).astype(np.float32)
    expected = _channels_last(torch.nn.GroupNorm(3, 6)(torch.from_numpy(x)).detach().numpy())
    plain = np.array(mlx.nn.GroupNorm(3, 6)(mx.array(_channels_last(x))))
    assert not np.allclose(plain, expected, atol=1e-3)
    assert "pytorch_compatible=True" in convert_source("import torch.nn as nn\nm = nn.GroupNorm(3, 6)\n", layout="channels-last").code


def test_adaptive_pooling_to_a_size_that_does_not_divide_raises_at_run_time():
    source = "import torch.nn as nn\n\n\ndef build():\n    return nn.AdaptiveAvgPool2d((2, 2))\n"
    layer = _exec(convert_source(source, layout="channels-last").code, "mlx_layer")["build"]()
    assert layer(mx.zeros((1, 4, 6, 3))).shape == (1, 2, 2, 3)
    with pytest.raises(ValueError, match="must divide the input size"):
        layer(mx.zeros((1, 5, 4, 3)))  # torch's uneven bins would give other values


def _net(init: str, body: str) -> str:
    return ("import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\nclass Net(nn.Module):\n"
            "    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv2d(4, 4, 3, padding=1)\n"
            + "".join(f"        {line}\n" for line in init.splitlines())
            + "\n    def forward(self, x):\n        h = self.conv(x)\n"
            + "".join(f"        {line}\n" for line in body.splitlines()))


IN_CLASSES = [  # (__init__ lines, forward body after `h = self.conv(x)`, input shape); no flag, no transpose left
    ("", "return F.interpolate(h, scale_factor=2)", (2, 4, 3, 5)),
    ("", "return F.interpolate(h, scale_factor=(2, 3), mode='bilinear', align_corners=True)", (1, 4, 3, 4)),
    ("", "u = F.upsample(h, scale_factor=2, mode='bilinear')\nreturn self.conv(u)", (1, 4, 3, 4)),
    ("", "return F.interpolate(h, size=(6, 15), mode='bilinear')", (2, 4, 3, 5)),
    ("", "return F.interpolate(h, 9, mode='bilinear', align_corners=True)", (1, 4, 3, 3)),
    ("self.down = nn.Conv2d(4, 4, 3, stride=2, padding=1)",
     "d = self.down(h)\nreturn F.interpolate(d, size=h.shape[2:], mode='bilinear', align_corners=True)", (1, 4, 6, 8)),
    ("self.down = nn.Conv2d(4, 4, 3, stride=2, padding=1)",
     "d = self.down(h)\nreturn h + F.interpolate(d, size=(h.shape[2], h.size(3)))", (2, 4, 6, 4)),
    ("", "return F.pixel_shuffle(h, 2)", (2, 4, 3, 5)),
    ("", "return torch.relu(F.pixel_unshuffle(h, 2))", (1, 4, 4, 6)),
    ("", "return F.adaptive_avg_pool2d(h, (2, 3))", (2, 4, 4, 6)),
    ("", "return F.adaptive_max_pool2d(h, output_size=2)", (2, 4, 4, 6)),
    ("self.fc = nn.Linear(16, 3)", "p = F.adaptive_avg_pool2d(h, 2)\nreturn self.fc(torch.flatten(p, 1))", (2, 4, 4, 6)),
    ("self.fc = nn.Linear(4, 3)", "p = F.adaptive_avg_pool2d(h, 1)\nreturn self.fc(p.view(p.size(0), -1))", (2, 4, 4, 6)),
    ("self.pool = nn.AdaptiveAvgPool2d(1)", "g = self.pool(h)\nreturn self.conv(F.interpolate(g, scale_factor=4))", (1, 4, 3, 3)),
    ("self.gn = nn.GroupNorm(2, 4)\nself.up = nn.PixelShuffle(2)", "u = self.up(torch.relu(self.gn(h)))\nreturn u.mean((2, 3))", (2, 4, 3, 3)),
    ("self.pool = nn.AdaptiveMaxPool2d((2, 2))\nself.fc = nn.Linear(16, 2)", "p = self.pool(h)\nreturn self.fc(p.flatten(1))", (2, 4, 4, 4)),
    ("self.norm = nn.InstanceNorm2d(4, affine=True)", "return torch.cat([self.norm(h), h], dim=1)", (2, 4, 3, 5)),
]


@pytest.mark.parametrize("init,body,shape", IN_CLASSES, ids=[b.splitlines()[-1] for _, b, _ in IN_CLASSES])
def test_vision_ops_in_channels_last_classes_match_torch(init, body, shape):
    source = _net(init, body)
    result = convert_source(source, layout="channels-last")
    assert not _warnings(result), result.code
    forward = result.code[result.code.index("def __call__"):]
    assert "(0, 2, 3, 1)" not in forward, result.code  # the NCHW form's transposes are dropped
    assert convert_source(result.code, layout="channels-last").code == result.code
    torch.manual_seed(0)
    torch_net = _exec(source, "torch_net")["Net"]()
    _randomize(torch_net)
    torch_net.eval()
    mlx_net = _exec(result.code, "mlx_net")["Net"]()
    mlx_net.eval()
    assert load_torch_weights(mlx_net, torch_net.state_dict()).ok
    x = np.random.RandomState(3).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = torch_net(torch.from_numpy(x))
    _assert_close(mlx_net(mx.array(_channels_last(x))), expected)


def test_adaptive_pool1d_then_flatten_matches_torch():
    source = ("import torch\nimport torch.nn as nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n"
              "        super().__init__()\n        self.conv = nn.Conv1d(3, 4, 3)\n        self.pool = nn.AdaptiveAvgPool1d(2)\n"
              "        self.fc = nn.Linear(8, 2)\n\n    def forward(self, x):\n        h = self.pool(self.conv(x))\n"
              "        return self.fc(torch.flatten(h, 1))\n")
    result = convert_source(source, layout="channels-last")
    assert not _warnings(result) and "mx.transpose(h, (0, 2, 1))" in result.code, result.code
    torch.manual_seed(0)
    torch_net, mlx_net = _exec(source, "torch_net")["Net"](), _exec(result.code, "mlx_net")["Net"]()
    assert load_torch_weights(mlx_net, torch_net.state_dict()).ok
    x = np.random.RandomState(6).standard_normal((2, 3, 10)).astype(np.float32)
    _assert_close(mlx_net(mx.array(_channels_last(x))), torch_net(torch.from_numpy(x)))


FLAGGED = [  # (__init__ lines, forward body after `h = self.conv(x)`)
    ("", "return F.interpolate(h, scale_factor=2, mode='bicubic')"),
    ("", "return F.interpolate(h, scale_factor=2, mode='area')"),
    ("", "return F.interpolate(h, scale_factor=2, mode='bilinear', antialias=True)"),
    ("", "return F.interpolate(h, scale_factor=1.5)"),
    ("", "return F.pixel_shuffle(h.view(2, 16, 2, 2), 2)"),
    ("", "return F.interpolate(h, size=h.shape[1:])"),
    ("self.norm = nn.InstanceNorm2d(4, track_running_stats=True)", "return self.norm(h)"),
    ("self.pool = nn.AdaptiveMaxPool2d(2, return_indices=True)", "return self.pool(h)"),
]


@pytest.mark.parametrize("init,body", FLAGGED, ids=[b for _, b in FLAGGED])
def test_what_cannot_be_matched_is_flagged(init, body):
    result = convert_source(_net(init, body), layout="channels-last")
    assert _warnings(result) and "# torch2mlx:" in result.code, result.code


def test_interpolate_of_a_plain_nchw_array_keeps_its_transposes():
    source = "import torch\nimport torch.nn.functional as F\n\n\ndef up(x: torch.Tensor):\n    return F.interpolate(x, scale_factor=2)\n"
    result = convert_source(source, layout="channels-last")
    assert "mx.transpose(nn.Upsample(scale_factor=2)(mx.transpose(x, (0, 2, 3, 1))), (0, 3, 1, 2))" in result.code
    x = np.random.RandomState(4).standard_normal((1, 2, 3, 4)).astype(np.float32)
    expected = _exec(source, "torch_up")["up"](torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.array(_exec(result.code, "mlx_up")["up"](mx.array(x))), expected, rtol=1e-4, atol=1e-5)


SIZES = [(3, 4, 2), (3, 4, 3), (5, 3, 4), (7, 6, 3), (1, 4, 4)]  # input height, width, whole multiple


@pytest.mark.parametrize("mode", ["'nearest'", "'nearest-exact'", "'bilinear', align_corners=False", "'bilinear', align_corners=True"])
@pytest.mark.parametrize("h,w,k", SIZES)
def test_interpolate_by_whole_multiples_matches_torch(mode, h, w, k):
    """size= k times the input and scale_factor=k sample the same source pixels as torch."""
    source = ("import torch\nimport torch.nn.functional as F\n\n\ndef up(x: torch.Tensor):\n"
              f"    return F.interpolate(x, size=({h * k}, {w * k}), mode={mode}), F.interpolate(x, scale_factor={k}, mode={mode})\n")
    result = convert_source(source, layout="channels-last")
    assert not result.flagged, result.code
    x = np.random.RandomState(5).standard_normal((1, 2, h, w)).astype(np.float32)
    expected = _exec(source, "torch_up")["up"](torch.from_numpy(x))
    actual = _exec(result.code, "mlx_up")["up"](mx.array(x))
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(np.array(a), e.numpy(), rtol=1e-4, atol=1e-5)


def test_interpolate_to_a_size_that_is_not_a_multiple_raises_at_run_time():
    source = "import torch\nimport torch.nn.functional as F\n\n\ndef up(x: torch.Tensor):\n    return F.interpolate(x, size=(5, 8))\n"
    up = _exec(convert_source(source, layout="channels-last").code, "mlx_up")["up"]
    assert up(mx.zeros((1, 2, 5, 4))).shape == (1, 2, 5, 8)
    with pytest.raises(ValueError, match="whole multiple"):
        up(mx.zeros((1, 2, 3, 4)))  # torch would sample other pixels


def test_helpers_are_not_written_over_a_name_the_file_uses():
    """The file's own PixelShuffle keeps its name; the helper class is PixelShuffle_1 (and the function it calls,
    free in the file, keeps its own)."""
    source = "import torch.nn as nn\n\n\ndef PixelShuffle(r):\n    return r\n\n\nlayer = nn.PixelShuffle(2)\n"
    result = convert_source(source, layout="channels-last")
    assert not any(d.rule_id == "torch.nn.PixelShuffle" for d in result.diagnostics), result.code
    assert "class PixelShuffle(" not in result.code and "def PixelShuffle(r):\n    return r" in result.code
    assert "class PixelShuffle_1(nn.Module):" in result.code and "layer = PixelShuffle_1(2)\n" in result.code
    assert "return pixel_shuffle(x, self.upscale_factor)" in result.code and "def pixel_shuffle(" in result.code


MODELS = {  # file, class, torch input shape (NCHW)
    "espcn_sr": ("espcn_sr.py", "ESPCN", (2, 3, 6, 5)),
    "vgg_adaptive": ("vgg_adaptive.py", "VGGAdaptive", (2, 3, 16, 16)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_vision_model_converts_without_flags_and_matches_torch(name):
    file, cls, shape = MODELS[name]
    converts_clean(file)
    assert_model_matches_torch(file, lambda ns: ns[cls](), shape, randomize=_randomize)