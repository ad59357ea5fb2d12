"""Activation modules with no MLX class become small local classes written into the file."""
import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")
torch = pytest.importorskip("torch")

from torch2mlx import convert_source  # noqa: E402


def _mlx_namespace(source: str) -> dict:
    result = convert_source(source)
    assert not result.flagged, result.code
    namespace: dict = {}
    exec(compile(result.code, "converted", "exec"), namespace)  # noqa: S102 - our own test input
    return namespace


def test_rrelu_training_draws_slopes_between_lower_and_upper_and_eval_uses_their_mean():
    ns = _mlx_namespace("import torch.nn as nn\n\nact = nn.RReLU(0.1, 0.3)\n")
    act = ns["act"]
    x = -mx.ones((20000,))
    slopes = -np.array(act(x))
    assert slopes.min() >= 0.1 and slopes.max() <= 0.3
    assert abs(slopes.mean() - 0.2) < 0.005 and slopes.std() > 0.05  # uniform on [0.1, 0.3]: std 0.058
    act.eval()
    np.testing.assert_allclose(np.array(act(mx.array([-2.0, 3.0]))), [-0.4, 3.0], rtol=1e-6)


def test_local_classes_are_written_once_and_work_inside_sequential():
    source = (
        "import torch\nimport torch.nn as nn\n\n"
        "head = nn.Sequential(nn.Linear(4, 3), nn.Hardsigmoid(), nn.Softmax(dim=0))\n"
        "other = nn.Sequential(nn.Tanhshrink(), nn.Softmax(dim=0), nn.Hardsigmoid())\n"
    )
    result = convert_source(source)
    assert result.code.count("class Softmax(") == 1 and result.code.count("class Hardsigmoid(") == 1
    ns = _mlx_namespace(source)
    torch_ns: dict = {}
    exec(compile(source, "torch", "exec"), torch_ns)  # noqa: S102
    ns["head"].layers[0].weight = mx.array(torch_ns["head"][0].weight.detach().numpy())
    ns["head"].layers[0].bias = mx.array(torch_ns["head"][0].bias.detach().numpy())
    x = np.random.RandomState(0).standard_normal((5, 4)).astype(np.float32)
    for name in ("head", "other"):
        expected = torch_ns[name](torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(np.array(ns[name](mx.array(x))), expected, rtol=1e-4, atol=1e-5)


def test_a_class_name_taken_by_the_file_gives_the_local_class_a_fresh_name():
    source = "import torch.nn as nn\n\n\nclass Hardsigmoid:\n    pass\n\n\nact = nn.Hardsigmoid()\n"
    result = convert_source(source)
    assert not result.diagnostics, [d.format() for d in result.diagnostics]
    assert "class Hardsigmoid:\n    pass" in result.code and "act = Hardsigmoid_1()" in result.code
    ns = _mlx_namespace(source)
    x = np.linspace(-5, 5, 11).astype(np.float32)
    expected = torch.nn.Hardsigmoid()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.array(ns["act"](mx.array(x))), expected, rtol=1e-4, atol=1e-5)
