"""fixtures/models/init_styles.py: GPT-2/BERT/timm/torchvision init code converts with no flag, the MLX
init has torch's effects, and with torch's weights loaded the outputs match torch.

Random inits are checked by moments on the weight itself: with n samples of a normal with std
sigma, the sample std is within 6 * sigma / sqrt(2n) of sigma and the mean within
6 * sigma / sqrt(n) of the target (false failure ~1e-9); uniform bounds are exact.
"""
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "init_styles.py"
ATOL = 1e-4


@pytest.fixture(scope="module")
def converted():
    source = FIXTURE.read_text(encoding="utf-8")
    result = convert_source(source, str(FIXTURE))
    torch_ns: dict = {"__name__": "torch_init_styles"}
    mlx_ns: dict = {"__name__": "mlx_init_styles"}
    exec(compile(source, "torch_init_styles", "exec"), torch_ns)  # noqa: S102 - our own fixture
    exec(compile(result.code, "mlx_init_styles", "exec"), mlx_ns)  # noqa: S102
    return result, torch_ns, mlx_ns


def _normal_like(w: np.ndarray, std: float, mean: float = 0.0) -> None:
    n = w.size
    assert abs(w.mean() - mean) < 6 * std / math.sqrt(n), (w.mean(), mean)
    assert abs(w.std() - std) < 6 * std / math.sqrt(2 * n), (w.std(), std)


def test_converts_with_no_flag_and_no_torch(converted):
    result, _, _ = converted
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    assert not warnings, "\n".join(d.format() for d in warnings)
    assert "torch" not in result.code.replace("torch2mlx", "")
    assert convert_source(result.code).code == result.code


def test_lm_init_effects(converted):
    _, _, mlx_ns = converted
    mx.random.seed(0)
    model = mlx_ns["InitStylesLM"]()
    for ln in (model.ln_1, model.ln_f):
        np.testing.assert_array_equal(np.array(ln.weight), np.ones(32, np.float32))
        np.testing.assert_array_equal(np.array(ln.bias), np.zeros(32, np.float32))
    np.testing.assert_array_equal(np.array(model.fc_in.bias), np.zeros(64, np.float32))
    assert "bias" not in model.fc_out
    _normal_like(np.array(model.fc_in.weight), 0.02)
    _normal_like(np.array(model.fc_out.weight), 0.02 / math.sqrt(2))  # the statement after apply wins
    _normal_like(np.array(model.tok.weight), 0.02)  # trunc_normal_ at +-2 absolute: no truncation at std 0.02
    # kaiming_uniform_(a=sqrt(5)) is torch's default Linear init: bound 1/sqrt(fan_in)
    head = np.array(model.head.weight)
    bound = 1 / math.sqrt(32)
    assert np.abs(head).max() <= bound and np.abs(head).max() > 0.9 * bound  # 0.9 ** 1600 ~ 0
    np.testing.assert_array_equal(np.array(model.head.bias), np.zeros(50, np.float32))


def test_cnn_init_effects(converted):
    _, torch_ns, mlx_ns = converted
    mx.random.seed(1)
    model = mlx_ns["InitStylesCNN"]()
    reference = torch_ns["InitStylesCNN"]()
    conv1, conv2 = model.features.layers[0], model.features.layers[2]
    for mine, theirs in ((conv1, reference.features[0]), (conv2, reference.features[2])):
        fan_out = theirs.weight.shape[0] * theirs.weight[0, 0].numel()  # torch: out * kh * kw
        _normal_like(np.array(mine.weight), math.sqrt(2.0 / fan_out))
    np.testing.assert_array_equal(np.array(conv1.bias), np.zeros(8, np.float32))
    assert "bias" not in conv2
    _normal_like(np.array(model.classifier.weight), 0.01)
    np.testing.assert_array_equal(np.array(model.classifier.bias), np.zeros(5, np.float32))


def _compare(mlx_model, torch_model, mlx_inputs, torch_inputs):
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and report.loaded
    with torch.no_grad():
        expected = torch_model(*torch_inputs).numpy()
    actual = np.array(mlx_model(*mlx_inputs))
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=ATOL)


def test_lm_matches_torch_with_loaded_weights(converted):
    _, torch_ns, mlx_ns = converted
    torch.manual_seed(0)
    ids = np.random.RandomState(0).randint(0, 50, size=(2, 9)).astype(np.int64)
    _compare(mlx_ns["InitStylesLM"](), torch_ns["InitStylesLM"]().eval(), (mx.array(ids),), (torch.from_numpy(ids),))


def test_cnn_matches_torch_with_loaded_weights(converted):
    _, torch_ns, mlx_ns = converted
    torch.manual_seed(0)
    x = np.random.RandomState(1).standard_normal((2, 3, 6, 6)).astype(np.float32)
    _compare(mlx_ns["InitStylesCNN"](), torch_ns["InitStylesCNN"]().eval(),
             (mx.array(x.transpose(0, 2, 3, 1)),), (torch.from_numpy(x),))
