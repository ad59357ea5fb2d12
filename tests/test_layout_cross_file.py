"""Layouts across files (issue 12): in a directory run, a class of another project file that its own file's
conversion makes take a channels-last value and give one (torchvision's SqueezeExcitation in ops/misc.py) is
followed like a class of the file itself; what is not known that way stays flagged."""
import importlib
import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import load_torch_weights  # noqa: E402
from torch2mlx.cli import main  # noqa: E402
from tests.model_support import assert_close, channels_last, randomize_parameters  # noqa: E402

GATE = '''import torch
import torch.nn as nn


class Gate(nn.Module):
    """squeeze-and-excitation: a channels-last map in, one out"""

    def __init__(self, channels):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc(self.pool(x)))
'''
# the same block, but with a line the layout analysis cannot follow: its own file flags it
UNFOLLOWED = GATE.replace("        return x * torch.sigmoid(self.fc(self.pool(x)))",
                          "        y = x.reshape(x.shape[0], -1, 2)\n        return x * torch.sigmoid(self.fc(self.pool(x))) + y.sum()")
MODEL = '''import torch
import torch.nn as nn
from .layers import Gate as SE


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), SE(8))
        self.gate = SE(8)
        self.head = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        x = self.gate(self.body(x))
        return self.head(torch.flatten(x, 1))
'''


def _convert(tmp_path, layers: str, package: str, model: str = MODEL):
    src = tmp_path / "src" / package
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "layers.py").write_text(layers)
    (src / "model.py").write_text(model)
    out, report = tmp_path / "out", tmp_path / "report.json"
    result = CliRunner().invoke(main, ["convert", str(tmp_path / "src"), "-o", str(out), "--no-cache", "-j", "1",
                                       "--report-json", str(report)])
    return result, out, json.loads(report.read_text())


def _layout_warnings(report, name: str) -> list:
    return [d for f in report["files"] if f["path"].endswith(name) for d in f["diagnostics"]
            if d["rule_id"] == "nn-layout" and d["severity"] != "info"]


def _channels_last_warnings(tmp_path, name: str) -> list:
    """The nn-layout warnings of file `name` of the project `_convert` wrote, converted channels-last (a directory
    run where it flags builds the project in torch's layout instead: test_layout_torch_build.py)."""
    from torch2mlx import convert_source
    from torch2mlx.project import build_project_index

    root = tmp_path / "src"
    files = sorted(root.rglob("*.py"))
    project = build_project_index([root], files)
    path = next(p for p in files if p.name == name)
    result = convert_source(path.read_text(), str(path), project=project, module_name=project.module_of(path),
                            layout="channels-last")
    return [d for d in result.diagnostics if d.rule_id == "nn-layout" and d.severity.value != "info"]


def test_a_channels_last_class_of_another_file_is_followed_and_matches_torch(tmp_path):
    result, out, report = _convert(tmp_path, GATE, "xfile_ok")
    assert result.exit_code == 0, result.output
    assert not _layout_warnings(report, "model.py")
    model_code = (out / "xfile_ok" / "model.py").read_text()
    assert "# MLX layout: inputs x are channels-last" in model_code and "torch" not in model_code
    # torch: the source package; MLX: the converted one (each imported from its own root)
    _matches_torch(tmp_path, out, "xfile_ok", (2, 3, 4, 4), channels_last_input=True)


def _build(root, package: str):
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module(f"{package}.model").Net()
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.startswith(package)]:
            del sys.modules[name]


def _matches_torch(tmp_path, out, package: str, shape: tuple, *, channels_last_input: bool):
    """torch runs the source package, MLX the converted one (each imported from its own root), same weights."""
    torch_net, mlx_net = _build(tmp_path / "src", package), _build(out, package)
    torch.manual_seed(0)
    randomize_parameters(torch_net)
    torch_net.eval()
    mlx_net.eval()
    assert load_torch_weights(mlx_net, torch_net.state_dict()).ok
    x = np.random.RandomState(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = torch_net(torch.from_numpy(x))
    assert np.abs(expected.numpy()).max() > 0.1
    assert_close(mlx_net(mx.array(channels_last(x) if channels_last_input else x)), expected)


def test_a_class_its_own_file_flags_stays_unknown_in_the_importing_file(tmp_path):
    result, out, report = _convert(tmp_path, UNFOLLOWED, "xfile_flagged")
    assert _channels_last_warnings(tmp_path, "layers.py")  # flagged where it is
    # not assumed to keep a channels-last map: what feeds it and reads it is flagged in the importing file
    assert _channels_last_warnings(tmp_path, "model.py")
    # the directory run builds the project in torch's layout instead: no layout flag, torch's input and output
    assert result.exit_code == 0 and not _layout_warnings(report, "model.py"), result.output
    _matches_torch(tmp_path, out, "xfile_flagged", (2, 3, 4, 4), channels_last_input=False)


def test_a_single_file_run_knows_nothing_of_the_other_file(tmp_path):
    from torch2mlx import convert_source

    result = convert_source(MODEL, "model.py", layout="channels-last")
    assert [d for d in result.diagnostics if d.rule_id == "nn-layout" and d.severity.value != "info"]


# torchvision's ops/misc.py: a Sequential built from the layer classes passed (torch's layout in MLX: NCHW helpers)
CONV_NORM_ACT = '''import torch


class ConvNormActivation(torch.nn.Sequential):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1,
                 norm_layer=torch.nn.BatchNorm2d, activation_layer=torch.nn.ReLU, conv_layer=torch.nn.Conv2d):
        padding = (kernel_size - 1) // 2
        layers = [conv_layer(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer())
        super().__init__(*layers)


class Conv2dNormActivation(ConvNormActivation):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1,
                 norm_layer=torch.nn.BatchNorm2d, activation_layer=torch.nn.ReLU):
        super().__init__(in_channels, out_channels, kernel_size, stride, groups, norm_layer, activation_layer,
                         torch.nn.Conv2d)
'''
# torchvision's mobilenetv2.py: those blocks next to a conv and a norm of its own in one nn.Sequential
MOBILENET = '''import torch
from torch import nn
from .layers import Conv2dNormActivation


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio, norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        hidden_dim = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden_dim, kernel_size=1, norm_layer=norm_layer,
                                               activation_layer=nn.ReLU6))
        layers.extend([
            Conv2dNormActivation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim, norm_layer=norm_layer,
                                 activation_layer=nn.ReLU6),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            norm_layer(oup),
        ])
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(Conv2dNormActivation(3, 8, stride=2), InvertedResidual(8, 8, 1, 2),
                                      InvertedResidual(8, 16, 2, 6))
        self.classifier = nn.Linear(16, 5)

    def forward(self, x):
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))
'''


def test_a_block_mixing_torch_layout_classes_of_another_file_with_its_own_conv_is_built_in_torch_layout(tmp_path):
    # before: InvertedResidual was channels-last through its conv, and the Sequential mixing it with
    # Conv2dNormActivation (torch's layout in MLX) was flagged; now the conv is Conv2dNCHW and the model torch's
    result, out, report = _convert(tmp_path, CONV_NORM_ACT, "xfile_mbv2", MOBILENET)
    assert result.exit_code == 0, result.output
    assert not _layout_warnings(report, "model.py")
    code = (out / "xfile_mbv2" / "model.py").read_text()
    assert "Conv2dNCHW(hidden_dim, oup, 1, 1, 0, bias=False)" in code and "# MLX layout:" not in code
    _matches_torch(tmp_path, out, "xfile_mbv2", (2, 3, 8, 8), channels_last_input=False)


def test_a_torch_layout_class_of_another_file_given_a_class_of_the_project_stays_unknown(tmp_path):
    # a class value of the project passed to it may be channels-last: not assumed to keep torch's layout
    model = MOBILENET.replace("from .layers import Conv2dNormActivation",
                              "from .layers import Conv2dNormActivation\n\n\nclass Norm(nn.BatchNorm2d):\n    pass")
    model = model.replace("        if norm_layer is None:\n            norm_layer = nn.BatchNorm2d",
                          "        if norm_layer is None:\n            norm_layer = Norm")
    _convert(tmp_path, CONV_NORM_ACT, "xfile_mbv2_own", model)
    assert _channels_last_warnings(tmp_path, "model.py")


# A block mixing torch-layout blocks with a channels-last class value (mobilenet_v3 / efficientnet's se_layer):
# tests/test_layout2_adapted_class_value.py (built as torch_layout_module(se_layer(c), Gate), compared with torch).
