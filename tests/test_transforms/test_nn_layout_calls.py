"""nn-layout call sites: an instance of a channels-last class is fed NHWC data, checked against torch."""
import textwrap

import numpy as np
import pytest
import torch

from torch2mlx import convert_source, load_torch_weights

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"

CONV = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x):
        x = F.relu(self.conv(x))
        return self.fc(x.flatten(1))
"""

FEATURES = """
class Features(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 5, 3, stride=2)

    def forward(self, x):
        return torch.relu(self.conv(x))
"""

CONV1D = """
class Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 6, 3)

    def forward(self, x):
        y = self.conv(x)
        return y.flatten(1)
"""


def _both(body: str):
    source = HEADER + textwrap.dedent(body).strip() + "\n"
    result = convert_source(source, layout="channels-last")
    torch_ns: dict = {"__name__": "torch_side"}
    mlx_ns: dict = {"__name__": "mlx_side"}
    exec(compile(source, "<torch>", "exec"), torch_ns)  # noqa: S102 - our own test code
    exec(compile(result.code, "<mlx>", "exec"), mlx_ns)  # noqa: S102
    return result, torch_ns, mlx_ns


def _warnings(result) -> list:
    return [d for d in result.diagnostics if d.severity.value == "warning" and d.rule_id == "nn-layout"]


def _compare(torch_ns, mlx_ns, fn: str, shape) -> None:
    import mlx.core as mx

    x = np.sin(np.arange(np.prod(shape), dtype=np.float32) * 0.3).reshape(shape)  # C == W: a missed transpose is silent
    expected = torch_ns[fn](torch.from_numpy(x)).detach().numpy()
    got = np.array(mlx_ns[fn](mx.array(x)))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_module_level_instance_called_in_a_function():
    result, t, m = _both(CONV + "\n\nmodel = Net()\n\n\ndef predict(x):\n    return model(x)\n")
    assert "model(mx.transpose(x, (0, 2, 3, 1)))" in result.code and not _warnings(result), result.code
    load_torch_weights(m["model"], t["model"].state_dict())
    _compare(t, m, "predict", (2, 4, 4, 4))


def test_instance_passed_to_a_function_of_the_module():
    body = CONV + "\n\ndef run(net, x):\n    return net(x)\n\n\ndef main(x):\n    model = Net()\n    return run(model, x)\n"
    result, t, m = _both(body)
    assert "return net(mx.transpose(x, (0, 2, 3, 1)))" in result.code and not _warnings(result), result.code
    t_net, m_net = t["Net"](), m["Net"]()
    load_torch_weights(m_net, t_net.state_dict())
    t["predict"] = lambda x: t["run"](t_net, x)
    m["predict"] = lambda x: m["run"](m_net, x)
    _compare(t, m, "predict", (3, 4, 4, 4))


def test_submodule_of_a_plain_class():
    body = CONV + "\n\nclass Wrapper(nn.Module):\n    def __init__(self):\n        super().__init__()\n" \
        "        self.net = Net()\n        self.head = nn.Linear(2, 1)\n\n    def forward(self, x):\n" \
        "        return self.head(self.net(x))\n\n\nwrapper = Wrapper()\n\n\ndef predict(x):\n    return wrapper(x)\n"
    result, t, m = _both(body)
    assert "self.net(mx.transpose(x, (0, 2, 3, 1)))" in result.code and not _warnings(result), result.code
    assert "wrapper(x)" in result.code  # Wrapper itself takes NCHW
    load_torch_weights(m["wrapper"], t["wrapper"].state_dict())
    _compare(t, m, "predict", (2, 4, 4, 4))


def test_feature_map_output_is_transposed_back():
    result, t, m = _both(FEATURES + "\n\nfeatures = Features()\n\n\ndef predict(x):\n    return features(x)\n")
    assert "mx.transpose(features(mx.transpose(x, (0, 2, 3, 1))), (0, 3, 1, 2))" in result.code, result.code
    assert not _warnings(result)
    load_torch_weights(m["features"], t["features"].state_dict())
    _compare(t, m, "predict", (2, 4, 7, 4))


def test_conv1d_input_is_nlc():
    result, t, m = _both(CONV1D + "\n\nseq = Seq()\n\n\ndef predict(x):\n    return seq(x)\n")
    assert "seq(mx.transpose(x, (0, 2, 1)))" in result.code and not _warnings(result), result.code
    load_torch_weights(m["seq"], t["seq"].state_dict())
    _compare(t, m, "predict", (2, 3, 3))


@pytest.mark.parametrize("body,call", [
    ("def f(x):\n    model = Net()\n    model = Net()\n    return model(x)\n", "return model(x)"),
    ("def f(x, other):\n    model = Net()\n    if x is None:\n        model = other\n    return model(x)\n", "return model(x)"),
    ("def run(m, x):\n    return m(x)\n\n\ndef f(x, other):\n    model = Net()\n    return run(model, x) + run(other, x)\n",
     "return m(x)"),
    ("model = Net()\n\n\ndef f(x):\n    return model(x, scale=2)\n", "model(x, scale=2)"),
])
def test_unprovable_instances_are_flagged_and_left(body, call):
    result = convert_source(HEADER + CONV.strip() + "\n\n\n" + body, layout="channels-last")
    code = "\n".join(line for line in result.code.splitlines() if not line.lstrip().startswith("#"))
    assert call in code and "mx.transpose(x, (0, 2, 3, 1))" not in code, result.code
    warnings = _warnings(result)
    assert warnings and all(w.kind == "needs-review" and "NHWC" in w.message for w in warnings)


def test_mixed_outputs_are_flagged():
    body = """
    class Both(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 3, 3)

        def forward(self, x):
            y = self.conv(x)
            return y, y.flatten(1)


    both = Both()


    def f(x):
        return both(x)
    """
    result = convert_source(HEADER + textwrap.dedent(body).strip() + "\n", layout="channels-last")
    assert "both(mx.transpose(x, (0, 2, 3, 1)))" in result.code, result.code
    assert any("feature maps" in w.message for w in _warnings(result))


def test_names_that_are_not_instances_are_untouched():
    body = CONV + "\n\ndef f(x, model):\n    net = nn.Linear(4, 4)\n    return net(x) + model(x)\n"
    result = convert_source(HEADER + textwrap.dedent(body).strip() + "\n", layout="channels-last")
    assert "return net(x) + model(x)" in result.code and not _warnings(result), result.code
