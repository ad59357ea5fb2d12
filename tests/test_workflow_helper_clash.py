"""Issue 14: a generated helper whose name the file uses already takes a fresh one, instead of leaving the torch
call flagged ("the name X is already used in this file"). Here the helpers of the runtime transform (the local
`DatasetBase` a `torch.utils.data.Dataset` subclass derives from, `functional_relu` for `F.relu` used as a value),
of the runtime registrations (`onnx_parse_args`, `TorchLibrary`) and of `x.unsqueeze(1).expand(-1, n, -1)`
(`broadcast_expand`), each beside a class or function of the file's own with that name. The file's own definitions
keep their names and their callers; the program gives torch's results under MLX."""
from __future__ import annotations

import ast
import textwrap

import numpy as np

from torch2mlx import convert_source

SOURCE = textwrap.dedent("""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import Dataset


    class DatasetBase:
        kind = "mine"


    def functional_relu(x):
        return "mine"


    def broadcast_expand(a):
        return a + 1


    def onnx_parse_args(*a):
        return len(a)


    class TorchLibrary:
        size = 7


    class Squares(Dataset):
        def __init__(self, n):
            self.n = n

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return i * i


    @torch.onnx.symbolic_helper.parse_args('v', 'f')
    def sym(g, t, s):
        return t * s


    lib = torch.library.Library('t2m_wf_helper_clash', 'FRAGMENT')


    def f(x):
        d = Squares(3)
        act = F.relu
        y = x.unsqueeze(1).expand(-1, 3, -1)
        return (act(x - 0.5), y, sym(None, x, 2.0), len(d), d[2], isinstance(d, DatasetBase), DatasetBase.kind,
                functional_relu(x), broadcast_expand(1), onnx_parse_args(1, 2), TorchLibrary.size)
""")

FRESH = ("DatasetBase", "functional_relu", "broadcast_expand", "onnx_parse_args", "TorchLibrary")


def _run(code: str, framework: str) -> list:
    ns: dict = {}
    exec(compile(code, f"{framework}.py", "exec"), ns)  # noqa: S102 - the test's own program
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 7
    if framework == "torch":
        import torch

        out = ns["f"](torch.tensor(x))
    else:
        import mlx.core as mx

        out = ns["f"](mx.array(x))
    return [np.array(o) if framework == "mlx" and hasattr(o, "shape") else o.numpy() if hasattr(o, "numpy") else o
            for o in out]


def test_helpers_whose_names_the_file_uses_get_fresh_ones_and_match_torch():
    result = convert_source(SOURCE, "m.py")
    tree = ast.parse(result.code)
    assert not [d for d in result.diagnostics if d.severity.value != "info"], [d.format() for d in result.diagnostics]
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    for name in FRESH:
        assert {name, f"{name}_1"} <= defined, name
    assert "class Squares(DatasetBase_1):" in result.code
    assert "@onnx_parse_args_1('v', 'f')" in result.code and "lib = TorchLibrary_1(" in result.code
    assert "act = functional_relu_1" in result.code and "y = broadcast_expand_1(" in result.code
    assert "functional_relu(x), broadcast_expand(1), onnx_parse_args(1, 2), TorchLibrary.size" in result.code
    assert convert_source(result.code, "m.py").code == result.code
    expected, actual = _run(SOURCE, "torch"), _run(result.code, "mlx")
    assert len(expected) == len(actual)
    for e, a in zip(expected[:3], actual[:3]):
        assert e.shape == a.shape and e.dtype == a.dtype
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)
    assert expected[3:] == actual[3:]
