"""nn.Buffer and nn.Module.__init__ in module classes (issue 13, breadth): converted, then run under torch and MLX."""
import textwrap

import numpy as np

from torch2mlx import convert_source

SOURCE = textwrap.dedent("""
    import torch
    import torch.nn as nn


    class Net(nn.Module):
        def __init__(self, n):
            nn.Module.__init__(self)
            self.fc = nn.Linear(n, n)
            self.scale = nn.Buffer(torch.full((n,), 2.0))
            self.shift = nn.Buffer(torch.linspace(0.0, 1.0, n), persistent=False)
            self.extra = torch.nn.Buffer(data=torch.ones(n), persistent=True)

        def forward(self, x):
            return self.fc(x) * self.scale + self.shift + self.extra
""")


def _run(code: str, framework: str, x: np.ndarray, weight: np.ndarray, bias: np.ndarray):
    namespace: dict = {}
    exec(compile(code, "<converted>", "exec"), namespace)
    net = namespace["Net"](3)
    if framework == "torch":
        import torch

        with torch.no_grad():
            net.fc.weight.copy_(torch.tensor(weight))
            net.fc.bias.copy_(torch.tensor(bias))
        return net, net(torch.tensor(x)).detach().numpy()
    import mlx.core as mx

    net.fc.weight = mx.array(weight)
    net.fc.bias = mx.array(bias)
    return net, np.array(net(mx.array(x)))


def test_buffers_and_explicit_base_init():
    result = convert_source(SOURCE, "net.py")
    assert "# torch2mlx:" not in result.code, result.code
    code = result.code
    assert "torch" not in code.replace("torch2mlx", ""), code
    assert 'self.freeze(keys=["scale"], recurse=False)' in code and 'self.freeze(keys=["extra"], recurse=False)' in code
    assert "self._shift = " in code and "+ self._shift" in code, code
    assert "nn.Module.__init__(self)" in code
    assert convert_source(code).code == code
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    _, expected = _run(SOURCE, "torch", x, w, b)
    net, actual = _run(code, "mlx", x, w, b)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    from mlx.utils import tree_flatten

    keys = {k for k, _ in tree_flatten(net.parameters())}
    trainable = {k for k, _ in tree_flatten(net.trainable_parameters())}
    assert keys == {"fc.weight", "fc.bias", "scale", "extra"}  # persistent=False: not in the checkpoint
    assert trainable == {"fc.weight", "fc.bias"}                  # buffers are frozen


def test_buffer_outside_a_self_assignment_is_flagged():
    source = textwrap.dedent("""
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self, p):
                super().__init__()
                buf = nn.Buffer(torch.zeros(3))
                self.a = nn.Buffer(torch.zeros(3), persistent=p)
    """)
    result = convert_source(source, "net.py")
    assert sum(d.rule_id == "torch.nn.Buffer" for d in result.diagnostics) == 2, result.code


def test_assert_close_helper_raises_where_torch_does():
    import pytest
    import torch

    source = textwrap.dedent("""
        import torch

        def check(a: torch.Tensor, b: torch.Tensor, **kw):
            torch.testing.assert_close(a, b)
    """)
    code = convert_source(source, "t.py").code
    assert "assert_close_mlx(a, b)" in code and "# torch2mlx:" not in code, code
    namespace: dict = {}
    exec(compile(code, "<converted>", "exec"), namespace)
    helper = namespace["assert_close_mlx"]
    import mlx.core as mx

    cases = [(np.ones(3, np.float32), np.ones(3, np.float32) + 2e-6, {}),   # within float32 tolerance
             (np.ones(3, np.float32), np.ones(3, np.float32) + 1e-3, {}),   # outside it
             (np.ones(3, np.float32), np.ones(4, np.float32), {}),          # shapes
             (np.ones(3, np.int32), np.ones(3, np.float32), {}),            # dtypes
             (np.ones(3, np.int32), np.ones(3, np.float32), {"check_dtype": False}),
             (np.array([1, 2], np.int32), np.array([1, 3], np.int32), {}),  # integers: exact
             (np.ones(3, np.float32), np.ones(3, np.float32) + 0.05, {"rtol": 0.0, "atol": 0.1})]
    for a, b, kw in cases:
        torch_ok = mlx_ok = True
        try:
            torch.testing.assert_close(torch.tensor(a), torch.tensor(b), **kw)
        except AssertionError:
            torch_ok = False
        try:
            helper(mx.array(a), mx.array(b), **kw)
        except AssertionError:
            mlx_ok = False
        assert torch_ok == mlx_ok, (a, b, kw)
    with pytest.raises(ValueError):
        helper(mx.ones(2), mx.ones(2), rtol=0.1)
