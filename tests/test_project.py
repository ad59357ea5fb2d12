"""Cross-file awareness in directory runs: torch aliases and nn.Module bases from other files."""

import pytest
from click.testing import CliRunner

from torch2mlx.cli import main
from torch2mlx.project import build_project_index

FILES = {
    "pkg/__init__.py": "from .layers import Block\n",
    "pkg/utils.py": "import torch.nn.functional as F\nfrom torch import nn\n\n\nclass Base(nn.Module):\n    pass\n",
    "pkg/layers.py": "from .utils import F, Base\n\n\nclass Block(Base):\n    def forward(self, x):\n        return F.relu(x)\n",
    "pkg/sub/model.py": "from ..layers import Block\nfrom pkg.utils import F as G\n\n\nclass Net(Block):\n    def forward(self, x):\n        return G.gelu(super().forward(x))\n",
    "other.py": "F = object()\n\n\ndef f(x):\n    return F.relu(x)\n",
}


@pytest.fixture
def tree(tmp_path):
    for name, text in FILES.items():
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "src"


def test_index_follows_imports_and_bases(tree):
    index = build_project_index([tree], sorted(tree.rglob("*.py")))
    assert index.aliases["pkg.layers.F"] == "torch.nn.functional"
    assert index.aliases["pkg.sub.model.G"] == "torch.nn.functional"
    assert {"pkg.utils.Base", "pkg.layers.Block", "pkg.Block", "pkg.sub.model.Net"} <= index.module_classes
    assert "other.F" not in index.aliases


def test_directory_run_uses_cross_file_facts(tree, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", str(tree), "-o", str(out), "--no-cache", "-j", "1"])
    assert result.exit_code == 0, result.output
    layers = (out / "pkg" / "layers.py").read_text()
    assert "def __call__(self, x):" in layers and "nn.relu(x)" in layers and "import mlx.nn as nn" in layers
    assert "from .utils import Base\n" in layers  # F no longer needed here
    model = (out / "pkg" / "sub" / "model.py").read_text()
    assert "def __call__(self, x):" in model and "nn.gelu(super().__call__(x))" in model
    utils = (out / "pkg" / "utils.py").read_text()
    assert "torch" not in utils
    assert (out / "other.py").read_text() == FILES["other.py"]  # a user's own F is left alone


LAYOUT_FILES = {
    "vision/__init__.py": "",
    "vision/layers.py": (
        "import torch.nn as nn\n\n\ndef make_conv(c_in, c_out):\n    return nn.Conv2d(c_in, c_out, 3, padding=1)\n\n\n"
        "def make_norm(c):\n    return nn.LayerNorm(c)\n"
    ),
    "vision/blocks.py": "from .layers import make_conv as conv\n\n\ndef stem(c):\n    return conv(3, c)\n",
    "vision/model.py": (
        "import torch.nn as nn\nfrom vision.blocks import stem\nfrom vision.layers import make_norm\n\n\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.stem = stem(8)\n"
        "        self.norm = make_norm(8)\n\n    def forward(self, x):\n        return self.stem(x).mean((2, 3))\n"
    ),
}


def test_builders_of_channels_last_layers_are_known_across_files(tmp_path):
    root = tmp_path / "vision"
    for name, text in LAYOUT_FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    index = build_project_index([root], sorted(root.rglob("*.py")))
    assert {"vision.layers.make_conv", "vision.blocks.stem", "vision.blocks.conv"} <= index.layout_builders
    assert "vision.layers.make_norm" not in index.layout_builders  # LayerNorm works on the last axis alike
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", str(root), "-o", str(out), "--no-cache", "-j", "1"])
    assert result.exit_code == 1, result.output  # flagged: the stem's input is not known to be NHWC in MLX
    model = (out / "model.py").read_text()
    assert "# torch2mlx: nn-layout:" in model and "mean((2, 3))" not in model.split("# torch2mlx: nn-layout:")[0]


def test_a_permuting_class_built_by_a_builder_counts_as_one(tmp_path):
    """nn-layout may convert such a class (a LayerNorm2d) channels-last with its user: other files must know."""
    root = tmp_path / "net"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "norms.py").write_text(
        "import torch.nn as nn\n\n\nclass LayerNorm2d(nn.Module):\n    def __init__(self, c):\n        super().__init__()\n"
        "        self.norm = nn.LayerNorm(c)\n\n    def forward(self, x):\n"
        "        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)\n\n\n"
        "class Stem(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv2d(3, 4, 1)\n"
        "        self.norm = LayerNorm2d(4)\n\n\nclass Plain(nn.Module):\n    def forward(self, x):\n        return x.permute(0, 2, 1)\n"
    )
    index = build_project_index([root], sorted(root.rglob("*.py")))
    assert {"net.norms.Stem", "net.norms.LayerNorm2d"} <= index.layout_builders
    assert "net.norms.Plain" not in index.layout_builders
