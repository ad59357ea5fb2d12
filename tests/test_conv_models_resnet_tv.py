"""torchvision-style ResNet (in-place ReLUs, `out += identity`): converts, loads torch weights, matches torch."""
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402
from tests.test_conv_models import _assert_close, _channels_last, _exec, _randomize_batch_norm  # noqa: E402

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
    warnings = [d for d in _converted().diagnostics if d.severity.value != "info"]
    assert not warnings, "\n".join(d.format() for d in warnings)


def test_matches_torch_with_loaded_weights():
    source = PATH.read_text(encoding="utf-8")
    torch_ns, mlx_ns = _exec(source, "torch_resnet_tv"), _exec(_converted().code, "mlx_resnet_tv")
    torch.manual_seed(0)
    torch_model = torch_ns["ResNetTV"](4, 5)
    _randomize_batch_norm(torch_model)
    torch_model.eval()
    mlx_model = mlx_ns["ResNetTV"](4, 5)
    mlx_model.eval()
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and report.loaded
    x = np.random.RandomState(0).standard_normal((2, 3, 10, 12)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x.copy()))
    _assert_close(mlx_model(mx.array(_channels_last(x))), expected)
