"""nn-inplace-activation: inplace=True dropped where no other reference sees the update (checked against torch)."""
import textwrap

import numpy as np
import pytest

from torch2mlx import convert_source
from torch2mlx.verify import compare, run_function, to_numpy

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"


def _function(body: str) -> str:
    return HEADER + "def example(a: torch.Tensor, b: torch.Tensor):\n" + textwrap.indent(textwrap.dedent(body).strip(), "    ") + "\n"


def _warnings(result):
    return [d for d in result.diagnostics if d.severity.value != "info"]


# (torch body of `example(a, b)`, a line the MLX output must contain)
CONVERTED = [
    ("x = a * 2\nx = F.relu(x, inplace=True)\nreturn x + b", "x = nn.relu(x)"),
    ("return F.relu(a - b, inplace=True)", "return nn.relu(a - b)"),
    ("x = torch.tanh(a)\nF.leaky_relu(x, 0.1, inplace=True)\nreturn x", "x = nn.leaky_relu(x, negative_slope=0.1)"),
    ("x = torch.tanh(a)\nreturn F.relu6(x, inplace=True)", "return nn.relu6(x)"),
    ("x = a + b\nx += b\nx = F.elu(x, inplace=True)\nreturn x", "x = nn.elu(x)"),
    ("x = a * 1\nif b.sum() > 0:\n    x = x * 2\nx = F.relu(x, inplace=True)\nreturn x", "x = nn.relu(x)"),
    ("y = F.hardtanh(a * 3, inplace=True)\nreturn y + a", "y = nn.hard_tanh(a * 3)"),
    ("m = nn.Sequential(nn.Tanh(), nn.ReLU(inplace=True))\nreturn m(a)", "m = nn.Sequential(nn.Tanh(), nn.ReLU())"),
    ("m = nn.ReLU(inplace=True)\nreturn m(a * 2) + a", "m = nn.ReLU()"),
    ("return nn.LeakyReLU(0.2, True)(a + b)", "nn.LeakyReLU(negative_slope=0.2)(a + b)"),
    ("m = nn.Sequential(nn.ReLU(True), nn.Tanh())\nx = a * 2\nx = m(x)\nreturn x", "nn.Sequential(nn.ReLU(), nn.Tanh())"),
]

# aliasing traps: torch's in-place update is seen through another reference
FLAGGED = [
    "identity = a\na = F.relu(a, inplace=True)\nreturn a + identity",   # a forward parameter, aliased
    "x = a * 2\nidentity = x\nx = F.relu(x, inplace=True)\nreturn x + identity",
    "return F.relu(a, inplace=True)",                                   # the caller's tensor
    "x = a * 2\ny = F.relu(x, inplace=True)\nreturn x + y",             # x read after the update
    "x = a * 2\nz = F.relu(x, inplace=True) + x\nreturn z",
    "x = a * 2\nv = x.view(-1)\nx = F.relu(x, inplace=True)\nreturn v",  # a view shares storage
    "x = a * 2\nkeep = [x]\nx = F.relu(x, inplace=True)\nreturn keep[0]",
    "x = F.dropout(a, 0.5, False)\nx = F.relu(x, inplace=True)\nreturn x",  # eval dropout returns a
    "m = nn.ReLU(inplace=True)\nreturn m(a)",
    "m = nn.Sequential(nn.ReLU(inplace=True), nn.Tanh())\nreturn m(a)",  # the first layer sees the input
    "m = nn.Sequential(nn.Tanh(), nn.ReLU(inplace=True))\nreturn m[1](a)",
    "x = a * 2\nfor i in range(2):\n    y = x\n    x = F.relu(x, inplace=True)\nreturn x + y",
    "return nn.ReLU(inplace=True)",
]


@pytest.mark.parametrize("body,expected", CONVERTED)
def test_converted_and_matches_torch(body, expected):
    source = _function(body)
    result = convert_source(source)
    assert not _warnings(result), "\n".join(d.format() for d in result.diagnostics) + "\n" + result.code
    assert expected in result.code, result.code
    assert "inplace" not in result.code
    assert convert_source(result.code).code == result.code
    rng = np.random.RandomState(0)
    inputs = {"a": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal((3, 4)).astype(np.float32)}
    expected_value = to_numpy(run_function(source, inputs, "torch"))
    assert compare(expected_value, to_numpy(run_function(result.code, inputs, "mlx")), "values") is None


@pytest.mark.parametrize("body", FLAGGED)
def test_aliasing_traps_stay_flagged(body):
    result = convert_source(_function(body))
    assert any("inplace" in d.message for d in _warnings(result)), result.code
    assert "inplace=True" in result.code or "True)" in result.code
    assert convert_source(result.code).code == result.code


BLOCK = '''
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Sequential(nn.Linear(4, 4), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(0.1, inplace=True))

    def forward(self, x):
        identity = x
        out = self.fc(x)
        out = self.relu(out)
        out = self.bn(out)
        out += identity
        out = self.relu(out)
        return self.head(self.relu(out + identity))
'''


def test_module_form_converts_and_matches_torch():
    source = HEADER + BLOCK
    result = convert_source(source)
    assert not _warnings(result), "\n".join(d.format() for d in result.diagnostics)
    assert "inplace" not in result.code and "nn.Dropout(p=0.1)" in result.code
    from tests.test_conv_models import _exec
    import torch
    import mlx.core as mx
    from torch2mlx import load_torch_weights
    torch.manual_seed(0)
    tm = _exec(source, "t")["Block"]().eval()
    mm = _exec(result.code, "m")["Block"]()
    mm.eval()
    assert load_torch_weights(mm, tm.state_dict()).ok
    x = np.random.RandomState(1).standard_normal((3, 4)).astype(np.float32)
    with torch.no_grad():
        expected = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.array(mm(mx.array(x))), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("forward,why", [
    ("return self.relu(x)", "is a parameter"),                                   # forward parameter straight in
    ("identity = x\nx = self.fc(x)\ny = self.relu(x)\nreturn x + y", "still refers"),
    ("out = self.fc(x)\nself.saved = out\nreturn self.relu(out)", "may share"),
    ("out = self.fc(x)\nself.relu(out)\nreturn out", "still refers"),             # the result is discarded
    ("return [self.relu][0](self.fc(x))", "other than by calling"),
])
def test_module_form_traps_stay_flagged(forward, why):
    body = textwrap.indent(forward, "        ")
    source = HEADER + (
        "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(4, 4)\n        self.relu = nn.ReLU(inplace=True)\n\n"
        f"    def forward(self, x):\n{body}\n"
    )
    result = convert_source(source)
    messages = [d.message for d in _warnings(result) if d.rule_id == "torch.nn.ReLU"]
    assert messages and why in messages[0], "\n".join(d.format() for d in result.diagnostics)
    assert "nn.ReLU(inplace=True)" in result.code


def test_attribute_used_outside_the_class_stays_flagged():
    source = HEADER + BLOCK + "\n\ndef run(block, x):\n    return block.relu(x)\n"
    result = convert_source(source)
    assert any("outside the class" in d.message for d in _warnings(result))
