"""Importable output: a torch import that only flagged code inside functions needs moves into those functions,
so the converted module imports (and its other functions run) without torch; the exit code still says 1."""
from __future__ import annotations

import builtins
import textwrap

import numpy as np
import pytest

from torch2mlx import convert_source
from torch2mlx.importable import localize_torch_imports

MODEL_WITH_HELPERS = '''\
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return F.relu(self.fc(x))


def init_weights(m):
    """Weight init the converter cannot translate."""
    if isinstance(m, nn.Linear):
        torch.nn.init.trunc_normal_(m.weight, std=0.02, a=-1, b=1, generator=None)
    return m


def load(path):
    # a checkpoint loader
    sd = torch.load(path, map_location="cpu")
    return sd
'''


def _exec_without_torch(code: str) -> dict:
    real_import = builtins.__import__

    def guarded(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is blocked: {name}")
        return real_import(name, *args, **kwargs)

    namespace: dict = {"__name__": "converted"}
    builtins.__import__ = guarded
    try:
        exec(compile(code, "<converted>", "exec"), namespace)
    finally:
        builtins.__import__ = real_import
    return namespace


def test_module_whose_flags_sit_in_functions_imports_and_runs_without_torch():
    result = convert_source(MODEL_WITH_HELPERS)
    assert any(d.severity.value == "warning" for d in result.diagnostics)  # still flagged: exit 1
    assert not any(line.startswith(("import torch", "from torch")) for line in result.code.splitlines())
    namespace = _exec_without_torch(result.code)
    import mlx.core as mx

    net = namespace["Net"]()
    out = net(mx.ones((2, 4)))
    assert out.shape == (2, 3)
    assert np.all(np.array(out) >= 0)
    with pytest.raises(ImportError, match="torch is blocked"):  # the flagged helper still needs torch
        _exec_without_torch(result.code + "\nload('x.pt')\n")


def test_the_import_goes_after_a_docstring_and_above_the_first_statements_comments():
    code = convert_source(MODEL_WITH_HELPERS).code
    init = code[code.index("def init_weights"):]
    # the only use is in the `if` branch: the import goes there (the function runs without torch otherwise)
    assert init.splitlines()[1:4] == ['    """Weight init the converter cannot translate."""',
                                      "    if isinstance(m, nn.Linear):", "        import torch"]
    load = code[code.index("def load"):]
    assert load.splitlines()[1:3] == ["    import torch", "    # a checkpoint loader"]


def test_moved_output_converts_to_itself():
    once = convert_source(MODEL_WITH_HELPERS).code
    assert convert_source(once).code == once


@pytest.mark.parametrize("use", [
    "x = torch.load('w.pt')",                              # module level
    "class K:\n    dtype = torch.load",                     # a class body
    "@torch.load\ndef g():\n    pass",                      # a decorator
    "def g(d=torch.load):\n    pass",                      # a default value
    "def g(d: torch.device):\n    pass",                   # an annotation, evaluated when the def runs
    "h = lambda: torch.load('w.pt')",                       # a lambda outside any function
])
def test_import_stays_where_module_code_reads_the_name(use):
    code = "import torch\n\n\ndef f():\n    return torch.load('w.pt')\n\n\n" + use + "\n"
    assert localize_torch_imports(code) == code


def test_uses_in_nested_functions_import_in_the_outermost_function():
    code = textwrap.dedent('''\
        import torch
        from torch import nn as tnn


        async def f():
            def inner():
                return torch.load("w.pt")
            return inner, tnn


        class M:
            def method(self):
                return torch.load("m.pt")
        ''')
    moved = localize_torch_imports(code)
    assert moved == textwrap.dedent('''\
        async def f():
            import torch
            from torch import nn as tnn
            def inner():
                return torch.load("w.pt")
            return inner, tnn


        class M:
            def method(self):
                import torch
                return torch.load("m.pt")
        ''')


@pytest.mark.parametrize("code", [
    "import torch\n\ndef f(): return torch.load('w.pt')\n",                   # the body is on the `def` line
    "import torch; import os\n\ndef f():\n    return torch.load(os.sep)\n",  # shares its line
    "# keep\nimport torch\n\ndef f():\n    return torch.load('w.pt')\n",    # a comment of its own
    "import torch\n\ndef f():\n    torch = 1\n    return torch\n",             # the name is bound again
])
def test_import_stays_when_moving_it_is_not_plainly_safe(code):
    assert localize_torch_imports(code) == code
