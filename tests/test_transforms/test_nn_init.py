"""nn-init: in-place torch initialisers become assignments of new MLX arrays, checked by running them.

Deterministic inits are compared exactly; random ones by shape, dtype and moments. With n samples,
the sample mean is within 6 standard errors (sigma / sqrt(n)) and the sample std within
6 * sigma / sqrt(2n) of the target (normal); a false failure has probability ~1e-9.
"""
import math
import textwrap

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source  # noqa: E402

HEADER = "import torch\nimport torch.nn as nn\n\n\n"
ROWS, COLS = 300, 200  # weight of nn.Linear(COLS, ROWS): n = 60000 samples


def _build(init_lines: str):
    body = (f"class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            f"        self.fc = nn.Linear({COLS}, {ROWS})\n"
            + textwrap.indent(textwrap.dedent(init_lines).strip(), " " * 8) + "\n")
    result = convert_source(HEADER + body)
    namespace: dict = {"__name__": "init"}
    exec(compile(result.code, "<init>", "exec"), namespace)  # noqa: S102 - our own test code
    return result, namespace["Net"]()


def _no_warnings(result):
    assert not [d for d in result.diagnostics if d.severity.value != "info"], result.code


def test_zeros_ones_constant_are_exact():
    result, net = _build("""
        nn.init.zeros_(self.fc.weight)
        nn.init.ones_(self.fc.bias)
        nn.init.constant_(self.fc.bias.data, val=0.25)
    """)
    _no_warnings(result)
    assert "self.fc.bias = mx.full(self.fc.bias.shape, 0.25, dtype=self.fc.bias.dtype)" in result.code
    np.testing.assert_array_equal(np.array(net.fc.weight), np.zeros((ROWS, COLS), np.float32))
    np.testing.assert_array_equal(np.array(net.fc.bias), np.full((ROWS,), 0.25, np.float32))
    assert net.fc.weight.dtype == mx.float32 and net.fc.bias.dtype == mx.float32


@pytest.mark.parametrize("line, mean, std", [
    ("nn.init.normal_(self.fc.weight, mean=0.5, std=0.02)", 0.5, 0.02),
    ("torch.nn.init.normal_(self.fc.weight.data, 0.0, 2.0)", 0.0, 2.0),
    ("nn.init.normal_(self.fc.weight)", 0.0, 1.0),
])
def test_normal_has_the_requested_moments(line, mean, std):
    result, net = _build(line)
    _no_warnings(result)
    w = np.array(net.fc.weight)
    n = w.size
    assert w.shape == (ROWS, COLS) and net.fc.weight.dtype == mx.float32
    assert abs(w.mean() - mean) < 6 * std / math.sqrt(n)
    assert abs(w.std() - std) < 6 * std / math.sqrt(2 * n)


@pytest.mark.parametrize("line, low, high", [
    ("nn.init.uniform_(self.fc.weight, -0.1, 0.3)", -0.1, 0.3),
    ("nn.init.uniform_(self.fc.weight, b=2.0)", 0.0, 2.0),
])
def test_uniform_has_the_requested_range_and_moments(line, low, high):
    result, net = _build(line)
    _no_warnings(result)
    w = np.array(net.fc.weight)
    sigma = (high - low) / math.sqrt(12)
    assert w.shape == (ROWS, COLS) and w.min() >= low and w.max() < high
    assert abs(w.mean() - (low + high) / 2) < 6 * sigma / math.sqrt(w.size)
    assert abs(w.std() - sigma) < 6 * sigma / math.sqrt(2 * w.size)  # uniform's kurtosis makes this looser than needed


@pytest.mark.parametrize("line", [
    "w = nn.init.zeros_(self.fc.weight)",                 # the value is used
    "w = self.fc.weight\n        nn.init.zeros_(w)",      # a local name: assigning it would not reach the module
    "nn.init.normal_(self.fc.weight, generator=None)",
    "nn.init.sparse_(self.fc.weight, 0.1)",              # not translated
    "w = self.fc\n        nn.init.kaiming_normal_(w.weight)",  # layer unknown: its fans may differ in MLX
])
def test_what_is_not_translated_is_flagged(line):
    body = f"class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n" \
           f"        self.fc = nn.Linear(3, 4)\n        {line}\n"
    result = convert_source(HEADER + body)
    assert any(d.rule_id.startswith("torch.nn.init.") and d.severity.value != "info" for d in result.diagnostics), result.code


@pytest.mark.parametrize("layer", ["nn.Linear(20, 30)", "nn.Conv2d(3, 8, 3)", "nn.ConvTranspose2d(4, 6, 3)"])
@pytest.mark.parametrize("fn", ["xavier_uniform_", "xavier_normal_"])
def test_xavier_uses_torch_fans_in_mlx_layouts(layer, fn):
    torch = pytest.importorskip("torch")
    source = HEADER + (f"class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                       f"        self.m = {layer}\n        nn.init.{fn}(self.m.weight, gain=2.0)\n")
    result = convert_source(source)
    _no_warnings(result)
    namespace: dict = {"__name__": "init"}
    exec(compile(result.code, "<init>", "exec"), namespace)  # noqa: S102 - our own test code
    w = np.array(namespace["Net"]().m.weight)
    tw = eval(layer, {"nn": torch.nn}).weight  # noqa: S307 - a literal from this file
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(tw)
    if fn == "xavier_uniform_":
        limit = 2.0 * math.sqrt(6.0 / (fan_in + fan_out))  # torch's bound
        # n >= 216 samples: all inside 0.9 * limit has probability 0.9 ** 216 < 1e-9
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.9 * limit
    else:
        std = 2.0 * math.sqrt(2.0 / (fan_in + fan_out))  # torch's std
        assert abs(w.std() - std) < 6 * std / math.sqrt(2 * w.size)
        assert abs(w.mean()) < 6 * std / math.sqrt(w.size)
