"""The torch-layout build (transforms/layout/torch_layout.py): where the channels-last analysis flags a file (or,
in a directory run, any file of the project), every channels-last MLX layer is built as a helper taking torch's
(N, C, ...) layout and the code keeps torch's layout throughout. Each model runs in torch and, converted, in MLX
with the same weights and the same NCHW input."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402
from torch2mlx.cli import main  # noqa: E402
from tests.model_support import assert_close, exec_source, randomize_parameters, warnings  # noqa: E402

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"


def _matches_torch(source: str, build, shape: tuple, layout: str = "auto"):
    """Converts with no warning, in torch's layout; the MLX model with torch's weights gives torch's output for
    torch's input."""
    source = HEADER + source
    result = convert_source(source, "model.py", layout=layout)
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    assert "# MLX layout:" not in result.code  # no class takes channels-last input
    assert convert_source(result.code, "model.py").code == result.code, "converting the output again changed it"
    torch.manual_seed(0)
    torch_model = build(exec_source(source, "torch_model"))
    randomize_parameters(torch_model)
    torch_model.eval()
    mlx_model = build(exec_source(result.code, "mlx_model"))
    mlx_model.eval()
    assert load_torch_weights(mlx_model, torch_model.state_dict()).ok
    x = np.random.RandomState(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert np.abs(expected.numpy()).max() > 0.1
    assert_close(mlx_model(mx.array(x)), expected, channels_last_output=False)
    return result


# timm's EfficientNet blocks: the activation and gate are modules built from class values the analysis does not
# know (`self.act1 = act_layer(inplace=True)`: "a module whose layout the analysis does not know")
UNKNOWN_ACT = """class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class Block(nn.Module):
    def __init__(self, c, act_layer=Swish):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.act1 = act_layer()

    def forward(self, x):
        return x + self.act1(self.bn(self.conv(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.blocks = nn.Sequential(Block(8), Block(8))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward_features(self, x):
        return self.blocks(self.stem(x))

    def forward_head(self, x):
        return self.fc(self.pool(x).flatten(1))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))
"""


def test_a_file_the_channels_last_analysis_flags_is_built_in_torch_layout():
    flagged = convert_source(HEADER + UNKNOWN_ACT, "model.py", layout="channels-last")
    assert any(d.rule_id == "nn-layout" for d in warnings(flagged))
    result = _matches_torch(UNKNOWN_ACT, lambda ns: ns["Net"](), (2, 3, 8, 8))
    assert "Conv2dNCHW(c, c, 3, padding=1, bias=False)" in result.code and "BatchNorm2dNCHW(c)" in result.code


def test_a_file_the_analysis_follows_stays_channels_last():
    source = UNKNOWN_ACT.replace("act_layer=Swish", "act_layer=nn.ReLU")
    result = convert_source(HEADER + source, "model.py")
    assert not warnings(result) and "# MLX layout: inputs x are channels-last" in result.code
    assert "NCHW" not in result.code


# each layer the torch-layout build makes: a helper subclassing MLX's layer (weights load as for MLX's own), or
# MLX's channels-last translation of a layer without parameters wrapped in torch_layout_layer
LAYERS = """class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, groups=1)
        self.bn = nn.BatchNorm2d(8)
        self.gn = nn.GroupNorm(2, 8)
        self.pad = nn.ZeroPad2d((1, 0, 2, 1))
        self.max = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1)
        self.ceil = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # squeezenet's
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.shuffle = nn.PixelShuffle(2)
        self.unshuffle = nn.PixelUnshuffle(2)
        self.drop = nn.Dropout2d(0.5)
        self.adaptive = nn.AdaptiveAvgPool2d((2, 4))
        self.adaptive_max = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(8 * 2 * 4 + 8, 4)

    def forward(self, x):
        x = self.gn(self.bn(self.conv(x)))
        x = self.ceil(self.avg(self.max(self.pad(x))))
        x = self.unshuffle(self.shuffle(self.up(x)))
        x = self.drop(x)
        y = self.adaptive_max(x).flatten(1)
        return self.fc(torch.cat([self.adaptive(x).flatten(1), y], dim=1))
"""


def test_every_layer_helper_takes_torch_layout_and_matches_torch():
    result = _matches_torch(LAYERS, lambda ns: ns["Net"](), (2, 3, 12, 18), layout="torch")
    for helper in ("Conv2dNCHW(", "BatchNorm2dNCHW(", "GroupNormNCHW(", "torch_layout_layer("):
        assert helper in result.code, helper


LAYERS_1D_3D = """class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm1d(4)
        self.pool1 = nn.AdaptiveAvgPool1d(2)
        self.conv3 = nn.Conv3d(3, 4, 3, padding=1)
        self.bn3 = nn.BatchNorm3d(4)
        self.pool3 = nn.MaxPool3d(2)

    def forward(self, x):
        a = self.pool1(self.bn1(self.conv1(x.flatten(2)))).flatten(1)
        b = self.pool3(self.bn3(self.conv3(x.unsqueeze(2).expand(-1, -1, 2, -1, -1)))).flatten(1)
        return torch.cat([a, b], dim=1)
"""


def test_one_and_three_dimensional_layers_take_torch_layout_and_match_torch():
    _matches_torch(LAYERS_1D_3D, lambda ns: ns["Net"](), (2, 3, 4, 4), layout="torch")


def test_a_layer_whose_arguments_name_torch_stays_flagged():
    # (a transposed convolution, flagged here before for want of a helper, now has one: test_timm_torch_layout_transposed.py)
    source = HEADER + """class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(4, eps=torch.finfo(torch.float32).eps)

    def forward(self, x):
        return self.bn(x)
"""
    result = convert_source(source, "model.py", layout="torch")
    assert [d for d in warnings(result) if d.rule_id == "nn-layout" and "its arguments name torch" in d.message]
    assert "nn.BatchNorm2d(4, eps=torch.finfo(torch.float32).eps)" in result.code


# a directory run: the layout is one for the whole project. layers.py alone is followed channels-last; model.py
# is flagged (an activation class value the analysis does not know) and passes layers.py's Block around as a
# class value: built in torch's layout, it would hand torch-layout data to a channels-last Block unless
# layers.py is built in torch's layout too
LAYERS_FILE = HEADER + """class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x))) + x
"""
MODEL_FILE = HEADER + """from .layers import Block


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


def make_stage(block_fn, c, n):
    return nn.Sequential(*[block_fn(c) for _ in range(n)])


class Net(nn.Module):
    def __init__(self, block_fn=Block, act_layer=Swish):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.act = act_layer()
        self.stage = make_stage(block_fn, 8, 2)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stage(self.act(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
"""


def test_a_directory_run_is_built_in_torch_layout_throughout_when_any_file_is_flagged(tmp_path):
    import importlib
    import sys

    src = tmp_path / "src" / "tl_proj"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "layers.py").write_text(LAYERS_FILE)
    (src / "model.py").write_text(MODEL_FILE)
    out, report = tmp_path / "out", tmp_path / "report.json"
    run = CliRunner().invoke(main, ["convert", str(tmp_path / "src"), "-o", str(out), "--no-cache", "-j", "1",
                                    "--report-json", str(report)])
    assert run.exit_code == 0, run.output
    files = json.loads(report.read_text())["files"]
    assert not [d for f in files for d in f["diagnostics"] if d["severity"] != "info"]
    layers_code = (out / "tl_proj" / "layers.py").read_text()
    assert "Conv2dNCHW(c, c, 3, padding=1)" in layers_code and "# MLX layout:" not in layers_code

    def build(root):
        sys.path.insert(0, str(root))
        try:
            return importlib.import_module("tl_proj.model").Net()
        finally:
            sys.path.remove(str(root))
            for name in [m for m in sys.modules if m.startswith("tl_proj")]:
                del sys.modules[name]

    torch_net, mlx_net = build(tmp_path / "src"), build(out)
    torch.manual_seed(0)
    randomize_parameters(torch_net)
    torch_net.eval()
    mlx_net.eval()
    assert load_torch_weights(mlx_net, torch_net.state_dict()).ok
    x = np.random.RandomState(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    with torch.no_grad():
        expected = torch_net(torch.from_numpy(x))
    assert_close(mlx_net(mx.array(x)), expected, channels_last_output=False)


def test_a_directory_run_the_analysis_follows_stays_channels_last(tmp_path):
    src = tmp_path / "src" / "cl_proj"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "layers.py").write_text(LAYERS_FILE)
    (src / "model.py").write_text(HEADER + """from .layers import Block


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.stage = nn.Sequential(Block(8), Block(8))

    def forward(self, x):
        return self.stage(self.stem(x))
""")
    out = tmp_path / "out"
    run = CliRunner().invoke(main, ["convert", str(tmp_path / "src"), "-o", str(out), "--no-cache", "-j", "1"])
    assert run.exit_code == 0, run.output
    layers_code = (out / "cl_proj" / "layers.py").read_text()
    assert "# MLX layout: inputs x are channels-last" in layers_code and "NCHW" not in layers_code


def test_the_layout_argument_is_checked():
    with pytest.raises(ValueError):
        convert_source("import torch\n", "x.py", layout="nhwc")


# torchvision's densenet _Transition and regnet's AnyStage: nn.Sequential subclasses without a forward that set
# their modules on self (attributes, add_module): torch runs them in the order they were set (TorchSequential)
SEQUENTIAL_SUBCLASSES = """class Transition(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(cin, cout, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class Stage(nn.Sequential):
    def __init__(self, c, depth):
        super().__init__()
        for i in range(depth):
            self.add_module(f"block{i}", nn.Conv2d(c, c, 3, padding=1))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(Transition(3, 6), Stage(6, 2))

    def forward(self, x):
        return self.features(x)
"""


def test_sequential_subclasses_setting_their_modules_run_them_in_order():
    result = _matches_torch(SEQUENTIAL_SUBCLASSES, lambda ns: ns["Net"](), (2, 3, 8, 8))
    assert "class Transition(TorchSequential):" in result.code and "class Stage(TorchSequential):" in result.code


def test_the_project_key_changes_with_any_file_that_decides_the_layout(tmp_path):
    # a cached conversion of layers.py is valid only for the layout the whole project had: a flag appearing in
    # model.py (which builds no layer other files use) changes it
    from torch2mlx.project import build_project_index

    src = tmp_path / "kp"
    src.mkdir()
    (src / "__init__.py").write_text("")
    (src / "layers.py").write_text(LAYERS_FILE)
    (src / "model.py").write_text(MODEL_FILE.replace("act_layer=Swish", "act_layer=nn.ReLU"))
    files = sorted(src.rglob("*.py"))
    before = build_project_index([src], files).key()
    (src / "model.py").write_text(MODEL_FILE)
    assert build_project_index([src], files).key() != before
