"""torchvision-style ResNet (in-place ReLUs, `out += identity`): converts, loads torch weights, matches torch."""
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source  # noqa: E402
from tests.model_support import (  # noqa: E402
    assert_model_matches_torch, converts_clean, randomize_batch_norm as _randomize_batch_norm)

PATH = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "resnet_tv.py"


def _converted():
    return convert_source(PATH.read_text(encoding="utf-8"), str(PATH))


def test_every_inplace_relu_converts():
    result = _converted()
    code = result.code.split('"""', 2)[2]  # after the docstring
    assert "inplace" not in code and code.count("nn.ReLU()") == 2
    assert not [d for d in result.diagnostics if "inplace" in d.message or d.rule_id.startswith("torch.")]
    assert "import torch" not in code
    assert convert_source(result.code).code == result.code


def test_converts_without_flags():
    converts_clean("resnet_tv.py")


def test_matches_torch_with_loaded_weights():
    assert_model_matches_torch("resnet_tv.py", lambda ns: ns["ResNetTV"](4, 5), (2, 3, 10, 12), randomize=_randomize_batch_norm)