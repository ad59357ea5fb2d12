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


def _convert(tmp_path, layers: str, package: str):
    src = tmp_path / "src" / package
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "layers.py").write_text(layers)
    (src / "model.py").write_text(MODEL)
    out, report = tmp_path / "out", tmp_path / "report.json"
    result = CliRunner().invoke(main, ["convert", str(tmp_path / "src"), "-o", str(out), "--no-cache", "-j", "1",
                                       "--report-json", str(report)])
    return result, out, json.loads(report.read_text())


def _layout_warnings(report, name: str) -> list:
    return [d for f in report["files"] if f["path"].endswith(name) for d in f["diagnostics"]
            if d["rule_id"] == "nn-layout" and d["severity"] != "info"]


def test_a_channels_last_class_of_another_file_is_followed_and_matches_torch(tmp_path):
    result, out, report = _convert(tmp_path, GATE, "xfile_ok")
    assert result.exit_code == 0, result.output
    assert not _layout_warnings(report, "model.py")
    model_code = (out / "xfile_ok" / "model.py").read_text()
    assert "# MLX layout: inputs x are channels-last" in model_code and "torch" not in model_code
    # torch: the source package; MLX: the converted one (each imported from its own root)
    sys.path.insert(0, str(tmp_path / "src"))
    try:
        torch_net = importlib.import_module("xfile_ok.model").Net()
    finally:
        sys.path.remove(str(tmp_path / "src"))
        for name in [m for m in sys.modules if m.startswith("xfile_ok")]:
            del sys.modules[name]
    sys.path.insert(0, str(out))
    try:
        mlx_net = importlib.import_module("xfile_ok.model").Net()
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m.startswith("xfile_ok")]:
            del sys.modules[name]
    torch.manual_seed(0)
    randomize_parameters(torch_net)
    torch_net.eval()
    mlx_net.eval()
    assert load_torch_weights(mlx_net, torch_net.state_dict()).ok
    x = np.random.RandomState(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    with torch.no_grad():
        expected = torch_net(torch.from_numpy(x))
    assert np.abs(expected.numpy()).max() > 0.1
    assert_close(mlx_net(mx.array(channels_last(x))), expected)


def test_a_class_its_own_file_flags_stays_unknown_in_the_importing_file(tmp_path):
    result, out, report = _convert(tmp_path, UNFOLLOWED, "xfile_flagged")
    assert result.exit_code == 1
    assert _layout_warnings(report, "layers.py")  # flagged where it is
    # not assumed to keep a channels-last map: what feeds it and reads it is flagged in the importing file
    assert _layout_warnings(report, "model.py"), (out / "xfile_flagged" / "model.py").read_text()


def test_a_single_file_run_knows_nothing_of_the_other_file(tmp_path):
    from torch2mlx import convert_source

    result = convert_source(MODEL, "model.py")
    assert [d for d in result.diagnostics if d.rule_id == "nn-layout" and d.severity.value != "info"]
