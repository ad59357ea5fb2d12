"""rules/private_apis.yaml: what the rule examples cannot show (they compare values): a failing torch._check raises
RuntimeError with torch's message in the converted code as in torch."""
import textwrap

import pytest
import torch

from torch2mlx import convert_source

SOURCE = textwrap.dedent("""
    import torch

    def f(x: torch.Tensor, n):
        torch._check(n > 0)
        return x * n

    def g(x: torch.Tensor, n):
        torch._check(n > 0, lambda: f"n must be positive, got {n}")
        return x * n
""")


def _run(code: str, name: str, *args):
    namespace = {}
    exec(compile(code, "snippet.py", "exec"), namespace)
    with pytest.raises(Exception) as info:
        namespace[name](*args)
    return type(info.value), str(info.value)


@pytest.mark.parametrize("name", ["f", "g"])
def test_failing_check_raises_like_torch(name):
    result = convert_source(SOURCE, "snippet.py")
    assert not result.diagnostics, [d.format() for d in result.diagnostics]
    assert "torch" not in result.code.replace("# torch2mlx", "")
    import mlx.core as mx

    expected = _run(SOURCE, name, torch.ones(2), -1)
    got = _run(result.code, name, mx.ones(2), -1)
    assert expected[0] is RuntimeError
    assert got == expected


def test_passing_check_returns_the_value():
    result = convert_source(SOURCE, "snippet.py")
    namespace = {}
    exec(compile(result.code, "snippet.py", "exec"), namespace)
    import mlx.core as mx

    assert namespace["g"](mx.ones(2), 3).tolist() == [3.0, 3.0]
