"""A channels-last class of another project file built from a class value inside a block built in torch's
layout (torchvision mobilenet_v3's InvertedResidual: Conv2dNormActivation blocks, torch's layout in MLX, next to
`se_layer(c)`, se_layer defaulting to `partial(SqueezeExcitation, ...)`, channels-last in its own file): the
instance is built as `torch_layout_module(se_layer(c), Gate)`, channels moved last around its call; the block
and its owners stay in torch's layout. Each project is converted as a directory and run under torch and MLX."""
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from tests.test_layout_cross_file import (  # noqa: E402
    CONV_NORM_ACT, GATE, MOBILENET, _build, _channels_last_warnings, _convert, _layout_warnings, _matches_torch)

LAYERS = CONV_NORM_ACT + GATE.replace("import torch\nimport torch.nn as nn\n", "import torch.nn as nn\n")


def _mbv3(default: str = "partial(Gate)", own_conv: bool = True) -> str:
    model = MOBILENET.replace("from .layers import Conv2dNormActivation",
                              "from .layers import Conv2dNormActivation, Gate")
    model = model.replace("def __init__(self, inp, oup, stride, expand_ratio, norm_layer=None):",
                          f"def __init__(self, inp, oup, stride, expand_ratio, norm_layer=None, se_layer={default}):")
    if own_conv:  # mobilenet_v2's conv and norm, then the gate
        model = model.replace("            norm_layer(oup),\n", "            norm_layer(oup),\n            se_layer(oup),\n")
    else:  # mobilenet_v3's: Conv2dNormActivation, the gate, Conv2dNormActivation
        model = model.replace("            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),\n            norm_layer(oup),\n",
                              "            se_layer(hidden_dim),\n            Conv2dNormActivation(hidden_dim, oup, kernel_size=1, "
                              "norm_layer=norm_layer, activation_layer=None),\n")
        assert "se_layer(hidden_dim)" in model
    return "from functools import partial\n" + model


@pytest.mark.parametrize("own_conv", [True, False], ids=["mobilenet_v2_conv", "mobilenet_v3_blocks"])
def test_a_channels_last_class_value_in_a_torch_layout_block_matches_torch(tmp_path, own_conv):
    package = f"l2_mbv3_{int(own_conv)}"
    result, out, report = _convert(tmp_path, LAYERS, package, _mbv3(own_conv=own_conv))
    code = (out / package / "model.py").read_text()
    assert result.exit_code == 0, result.output + code
    assert not _layout_warnings(report, "model.py"), code
    assert "torch_layout_module(se_layer(" in code and "# MLX layout:" not in code, code
    _matches_torch(tmp_path, out, package, (2, 3, 8, 8), channels_last_input=False)


def test_another_class_given_for_the_value_raises_when_built(tmp_path):
    # other code may pass any class: only the ones followed are taken (Gate itself, by its exact type)
    _, out, _ = _convert(tmp_path, LAYERS + "\n\nclass Wider(Gate):\n    pass\n", "l2_mbv3_other", _mbv3())
    net = _build(out, "l2_mbv3_other")  # the default builds
    assert net is not None
    import sys
    sys.path.insert(0, str(out))
    try:
        import importlib
        model = importlib.import_module("l2_mbv3_other.model")
        layers = importlib.import_module("l2_mbv3_other.layers")
        with pytest.raises(NotImplementedError, match="Wider"):
            model.InvertedResidual(8, 8, 1, 2, se_layer=layers.Wider)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m.startswith("l2_mbv3_other")]:
            del sys.modules[name]


def test_a_partial_given_a_class_of_the_project_stays_flagged(tmp_path):
    # what a class of the project does inside the gate is not known from the gate's own file
    layers = LAYERS.replace("    def __init__(self, channels):", "    def __init__(self, channels, act=None):")
    model = _mbv3("partial(Gate, act=Mine)").replace("from functools import partial\n",
                                                     "from functools import partial\nimport torch.nn as nn0\n\n\nclass Mine(nn0.Conv2d):\n    pass\n\n\n")
    result, out, report = _convert(tmp_path, layers, "l2_mbv3_mine", model)
    code = (out / "l2_mbv3_mine" / "model.py").read_text()
    assert "torch_layout_module" not in code, code
    assert _channels_last_warnings(tmp_path, "model.py")  # (the directory run builds it in torch's layout)


# torchvision's mobilenetv3.py MobileNetV3: `block` a class value (None, then the file's InvertedResidual, built in
# torch's layout) between Conv2dNormActivation blocks, then a global nn.AdaptiveAvgPool2d(1) layer
MBV3_NET = '''

class Net(nn.Module):
    def __init__(self, block=None, norm_layer=None):
        super().__init__()
        if block is None:
            block = InvertedResidual
        if norm_layer is None:
            norm_layer = partial(nn.BatchNorm2d, eps=0.001)
        layers = [Conv2dNormActivation(3, 8, stride=2, norm_layer=norm_layer)]
        for inp, oup, stride, ratio in ((8, 8, 1, 2), (8, 16, 2, 6)):
            layers.append(block(inp, oup, stride, ratio, norm_layer))
        layers.append(Conv2dNormActivation(16, 24, kernel_size=1, norm_layer=norm_layer))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(24, 12), nn.Hardswish(), nn.Linear(12, 5))

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)
'''


def test_a_model_of_torch_layout_blocks_given_as_a_class_value_matches_torch(tmp_path):
    model = _mbv3(own_conv=False)
    model = model[:model.index("class Net(nn.Module):")].rstrip() + "\n" + MBV3_NET
    result, out, report = _convert(tmp_path, LAYERS, "l2_mbv3_net", model)
    code = (out / "l2_mbv3_net" / "model.py").read_text()
    assert result.exit_code == 0, result.output + code
    assert not _layout_warnings(report, "model.py"), code
    # the blocks take torch's layout (transposed into); the pool is MLX's, channels-last: the model takes NHWC
    assert "# MLX layout: inputs x are channels-last" in code and "torch_layout_module(se_layer(" in code, code
    _matches_torch(tmp_path, out, "l2_mbv3_net", (2, 3, 8, 8), channels_last_input=True)


def test_a_class_of_the_project_given_in_the_call_stays_flagged(tmp_path):
    # efficientnet's `se_layer(c, s, activation=partial(nn.SiLU, inplace=True))`: a torch class is fine, a class of
    # the project is not known to keep the gate's layout
    layers = LAYERS.replace("    def __init__(self, channels):", "    def __init__(self, channels, act=None):")
    model = _mbv3().replace("            se_layer(oup),\n", "            se_layer(oup, act=Mine),\n")
    model = model.replace("class InvertedResidual(nn.Module):", "class Mine(nn.Conv2d):\n    pass\n\n\nclass InvertedResidual(nn.Module):")
    result, out, report = _convert(tmp_path, layers, "l2_mbv3_call", model)
    code = (out / "l2_mbv3_call" / "model.py").read_text()
    assert "se_layer(oup, act=Mine)" in code and "torch_layout_module" not in code, code
    assert _channels_last_warnings(tmp_path, "model.py")  # (the directory run builds it in torch's layout)
