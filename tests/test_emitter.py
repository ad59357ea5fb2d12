"""Output shape: imports, comments, untouched code byte-for-byte, idempotence, suppression."""
from torch2mlx import convert_source

SOURCE = '''"""Module docstring."""
from __future__ import annotations

import os   # keep this comment
import torch  # the framework

# A comment block that must survive.
CONST = 3  # trailing


def untouched(a,b):   # odd spacing kept
    return   a+b


def work(x: torch.Tensor):
    # explain
    return torch.sum(x, 1)  # sum rows
'''


def test_imports_and_comments():
    out = convert_source(SOURCE).code
    assert "import torch" not in out
    assert "import mlx.core as mx" in out
    assert out.index("from __future__") < out.index("import mlx.core as mx")
    for keep in ["# keep this comment", "# A comment block that must survive.", "CONST = 3  # trailing",
                 "def untouched(a,b):   # odd spacing kept\n    return   a+b\n", "# explain",
                 "return mx.sum(x, axis=1)  # sum rows"]:
        assert keep in out


def test_untouched_lines_are_byte_identical():
    out = convert_source(SOURCE).code
    changed = [(a, b) for a, b in zip(SOURCE.splitlines(), out.splitlines()) if a != b]
    # only the torch import, the annotation and the sum line may differ
    assert len(SOURCE.splitlines()) == len(out.splitlines())
    assert all("torch" in a for a, _ in changed), changed


def test_no_torch_file_is_unchanged():
    src = "import numpy as np\n\nx = np.zeros(3)  # torch-free\n"
    result = convert_source(src)
    assert result.code == src and not result.changed


def test_idempotent_with_flags():
    src = "import torch\n\ndef f(a):\n    return a.sum(), torch.zeros(2, dtype=torch.float64)\n"
    once = convert_source(src)
    twice = convert_source(once.code)
    assert once.diagnostics and twice.code == once.code


def test_torch_import_kept_while_used():
    out = convert_source("import torch\nx = torch.zeros(2, dtype=torch.complex128)\ny = torch.sum(x)\n").code
    assert "import torch\n" in out and "import mlx.core as mx" in out


def test_suppression_comment():
    src = "import torch\n\ndef f(a):\n    return a.sum()  # torch2mlx: ignore[torch.sum]\n"
    result = convert_source(src)
    assert not result.diagnostics
    assert "# torch2mlx: torch.sum" not in result.code
    src2 = "import torch\n\ndef f(a):\n    # torch2mlx: ignore\n    return a.sum()\n"
    assert not convert_source(src2).diagnostics


def test_diagnostic_positions_are_one_based():
    result = convert_source("import torch\n\ndef f(a):\n    return a.sum()\n", "m.py")
    d = result.diagnostics[0]
    assert (d.path, d.line, d.column) == ("m.py", 4, 12)
    assert d.format().startswith("m.py:4:12: warning: torch.sum:")


def test_mlx_alias_conflict_uses_fallback():
    src = "import torch\nfrom torch import nn\n\nclass M(nn.Module):\n    pass\n\nmx = 5\ny = torch.zeros(2)\n"
    out = convert_source(src).code
    assert "import mlx.core as mlx_core" in out and "mlx_core.zeros(2)" in out
    assert "mx = 5" in out


def test_device_calls_disappear_and_statements_are_dropped():
    src = "import torch\n\ndef f(x: torch.Tensor, device):\n    x = x.to(device)\n    return torch.sum(x)\n"
    out = convert_source(src).code
    assert "to(device)" not in out and "x = x\n" not in out


def test_statement_renderer_equals_libcst_render():
    import libcst as cst
    import torch

    from torch2mlx.emitter import _Renderer

    from pathlib import Path
    samples = ["", "\n", "x = 1", "# only a comment", "x = 1\n\n# trailing comment\n", "\ufeffimport torch\r\nx = 1\r\n"]
    samples += [p.read_text() for p in sorted((Path(torch.__file__).parent / "nn" / "modules").glob("*.py"))[:8]]
    for text in samples:
        module = cst.parse_module(text)
        assert _Renderer(module).render(module.body) == module.code == text.lstrip("\ufeff")


def test_flag_on_first_statement_is_not_repeated_by_a_second_pass():
    # the comment above the first statement lands in libcst's module header on the next parse
    once = convert_source("\nimport torch\ny = x.add_(1)\n").code
    assert once.count("# torch2mlx:") == 1
    assert convert_source(once).code == once
