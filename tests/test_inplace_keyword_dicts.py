"""keyword-dicts: `torch.zeros(1, 1, d, **dd)` with timm's `dd = {'device': device, 'dtype': dtype}` (vision_transformer.py,
convnext.py) is the call with those keyword arguments, which the table translates; other uses of the dict stay flagged."""
import textwrap

import numpy as np
import pytest

from torch2mlx import convert_source
from torch2mlx.verify import compare, to_numpy

# the idiom as timm 1.0.31 writes it in a module's __init__ (vision_transformer.py:834/876, convnext.py:170/196)
SOURCE = textwrap.dedent('''
    import torch
    from torch import nn


    class Block(nn.Module):
        def __init__(self, dim, ls_init_value=1e-6, device=None, dtype=None):
            super().__init__()
            dd = {'device': device, 'dtype': dtype}
            self.gamma = nn.Parameter(ls_init_value * torch.ones(dim, **dd))
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim, **dd))
            self.pos_embed = nn.Parameter(torch.empty(1, 4, dim, **dd))

        def forward(self, x):
            return x * self.gamma + self.cls_token


    def example(x, dtype):
        block = Block(3, dtype=dtype)
        return block(x), block.gamma, tuple(block.pos_embed.shape), block.pos_embed.dtype == x.dtype
''')


def _run(source: str, framework: str, x: np.ndarray, half: bool):
    namespace: dict = {"__name__": "example"}
    exec(compile(source, f"<{framework}>", "exec"), namespace)  # noqa: S102 - our own examples
    if framework == "torch":
        import torch
        return to_numpy(namespace["example"](torch.from_numpy(x), torch.float16 if half else None))
    import mlx.core as mx
    return to_numpy(namespace["example"](mx.array(x), mx.float16 if half else None))


def test_timm_dd_dict_binds_to_the_creation_calls():
    result = convert_source(SOURCE)
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    assert not warnings, "\n".join(d.format() for d in warnings) + "\n" + result.code
    assert "import torch" not in result.code, result.code
    assert "dtype=dtype" in result.code and "**dd" not in result.code.split("def forward")[0].split("dd = ")[1]
    assert convert_source(result.code).code == result.code
    for half in (False, True):
        x = np.arange(6, dtype=np.float16 if half else np.float32).reshape(2, 3)
        expected = _run(SOURCE, "torch", x, half)
        actual = _run(result.code, "mlx", x, half)
        assert compare(expected, actual) is None, (half, compare(expected, actual))
        assert expected[0].dtype == actual[0].dtype == x.dtype


FLAGGED = [
    # the dict may change before the call
    "dd = {'device': device, 'dtype': dtype}\n    dd['dtype'] = None\n    return torch.zeros(2, **dd)",
    "dd = {'device': device, 'dtype': dtype}\n    keep(dd)\n    return torch.zeros(2, **dd)",
    # bound in a branch: not known on every path
    "if device is None:\n        dd = {'dtype': dtype}\n    else:\n        dd = {'device': device, 'dtype': dtype}\n"
    "    return torch.zeros(2, **dd)",
    # a key that is no string literal, a ** inside the literal
    "dd = {'device': device, DTYPE: dtype}\n    return torch.zeros(2, **dd)",
    "dd = {'device': device, **more}\n    return torch.zeros(2, **dd)",
]


def test_a_computed_value_is_read_from_the_dict():
    """deit.py:39: `dd = {'device': kwargs.get('device', None), 'dtype': kwargs.get('dtype', None)}`: the value the
    dict holds, evaluated once when it was built, is what the call gets."""
    source = textwrap.dedent('''
        import torch


        def example(x, **kwargs):
            dd = {'device': kwargs.get('device', None), 'dtype': kwargs.pop('dtype', None)}
            kwargs['dtype'] = torch.int32
            return torch.zeros(2, 3, **dd) + x, torch.ones(3, **dd)
    ''')
    result = convert_source(source)
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    assert not warnings, "\n".join(d.format() for d in warnings) + "\n" + result.code
    assert "dtype=dd['dtype']" in result.code, result.code
    x = np.ones((2, 3), dtype=np.float16)
    import mlx.core as mx
    import torch
    for dtype, mx_dtype in ((None, None), (torch.float16, mx.float16)):
        namespace: dict = {}
        exec(compile(source, "<torch>", "exec"), namespace)  # noqa: S102 - our own examples
        expected = to_numpy(namespace["example"](torch.from_numpy(x), dtype=dtype))
        namespace = {}
        exec(compile(result.code, "<mlx>", "exec"), namespace)  # noqa: S102 - our own examples
        actual = to_numpy(namespace["example"](mx.array(x), dtype=mx_dtype))
        assert compare(expected, actual) is None, compare(expected, actual)
        assert expected[1].dtype == actual[1].dtype


@pytest.mark.parametrize("body", FLAGGED)
def test_unknown_dicts_stay_flagged(body):
    source = f"import torch\n\n\ndef f(device=None, dtype=None):\n    {body}\n"
    result = convert_source(source)
    assert any("cannot bind a **-argument" in d.message for d in result.diagnostics), result.code
    assert "torch.zeros(2, **dd)" in result.code


def test_a_parameter_rebound_after_the_dict_is_read_from_the_dict():
    source = "import torch\n\n\ndef f(device=None, dtype=None):\n    dd = {'device': device, 'dtype': dtype}\n" \
             "    dtype = torch.int32\n    return torch.zeros(2, **dd)\n"
    result = convert_source(source)
    assert "mx.zeros(2, dtype=dd['dtype'])" in result.code, result.code
    namespace: dict = {}
    exec(compile(result.code, "<mlx>", "exec"), namespace)  # noqa: S102 - our own examples
    assert str(namespace["f"]().dtype) == "mlx.core.float32"  # the dict's None, not the rebound int32
