"""Cross-file awareness in directory runs: torch aliases and nn.Module bases from other files."""
from pathlib import Path

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
