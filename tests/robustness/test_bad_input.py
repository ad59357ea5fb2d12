"""Bad input, one test each: a clear InputError (or exit 2), never a crash, never a corrupted file."""
from __future__ import annotations

import ast
import json
import os

import pytest

from torch2mlx import InputError, convert_source, decode_source
from torch2mlx.fileio import read_source, write_atomic
from torch2mlx.notebook import convert_notebook

GOOD = "import torch\n\n\ndef f(x: torch.Tensor):\n    return torch.sum(x, 1)\n"


def _cli(*args):
    """`torch2mlx convert ARGS` in-process (click's runner): exit code in `.returncode`."""
    from click.testing import CliRunner

    from torch2mlx.cli import main

    result = CliRunner().invoke(main, ["convert", *map(str, args)])
    result.returncode = result.exit_code
    return result


def test_syntax_error_names_path_line_col_exit_2_nothing_written(tmp_path):
    src = tmp_path / "bad.py"
    src.write_text("import torch\nx = torch.sum(y,, 1)\n")
    out = tmp_path / "out.py"
    r = _cli(src, "-o", out)
    assert r.returncode == 2
    assert f"{src}:2:" in r.stderr
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["bad.py"]


def test_syntax_error_position_from_api():
    with pytest.raises(InputError) as info:
        convert_source("import torch\n\nx = (1,\n", "m.py")
    assert (info.value.path, info.value.line) == ("m.py", 3) and info.value.column > 0


def test_python2_code_is_a_clear_syntax_error():
    with pytest.raises(InputError, match=r"m.py:2:\d+: syntax error: Missing parentheses"):
        convert_source("import torch\nprint 'hello'\n", "m.py")


def test_non_utf8_without_cookie_is_an_input_error_with_line():
    with pytest.raises(InputError, match="cannot decode") as info:
        decode_source(b"import torch\nx = 'caf\xe9'\n", "m.py")
    assert info.value.path == "m.py"


def test_latin1_cookie_file_round_trips_in_its_encoding(tmp_path):
    data = b"# -*- coding: latin-1 -*-\nimport torch\nname = 'caf\xe9'\nx = torch.zeros(3)\n"
    src, out = tmp_path / "m.py", tmp_path / "o.py"
    src.write_bytes(data)
    result = convert_source(read_source(src), str(src))
    write_atomic(out, result.code)
    written = out.read_bytes()
    assert b"name = 'caf\xe9'" in written and b"mx.zeros(3)" in written  # latin-1 bytes, not UTF-8
    assert read_source(out) == result.code


def test_utf8_bom_file_converts_and_keeps_its_bom(tmp_path):
    src, out = tmp_path / "m.py", tmp_path / "o.py"
    src.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    r = _cli(src, "-o", out)
    assert r.returncode == 0, r.stderr
    written = out.read_bytes()
    assert written.startswith(b"\xef\xbb\xbfimport mlx.core as mx") and b"mx.sum(x, axis=1)" in written


def test_crlf_line_endings_are_kept():
    code = convert_source(GOOD.replace("\n", "\r\n")).code
    assert "mx.sum(x, axis=1)" in code
    assert code.count("\r\n") == code.count("\n")


def test_crlf_kept_through_the_cli(tmp_path):
    src, out = tmp_path / "m.py", tmp_path / "o.py"
    src.write_bytes(GOOD.replace("\n", "\r\n").encode())
    assert _cli(src, "-o", out).returncode == 0
    data = out.read_bytes()
    assert data.count(b"\r\n") == data.count(b"\n") > 0


def test_tabs_are_kept():
    code = convert_source("import torch\n\ndef f(x: torch.Tensor):\n\tif x:\n\t\treturn torch.sum(x, 1)\n").code
    assert "\t\treturn mx.sum(x, axis=1)\n" in code


def test_very_long_line():
    text = "import torch\nx = torch.tensor([" + ", ".join(["1.5"] * 8000) + "])\ny = 1\n"
    code = convert_source(text).code
    assert code.startswith("import mlx.core as mx\nx = mx.array([1.5, ") and code.endswith("])\ny = 1\n")


def _big_file(lines: int) -> str:
    block = "def f{i}(x: torch.Tensor):\n    y = torch.sum(x, 1)\n    return y * {i}\n\n"
    return "import torch\n\n" + "".join(block.format(i=i) for i in range(lines // 4))


@pytest.mark.slow
def test_fifty_thousand_line_file():
    code = convert_source(_big_file(50_000)).code
    assert code.count("mx.sum(x, axis=1)") == 12_500 and "torch" not in code


def test_two_thousand_line_file():
    code = convert_source(_big_file(2_000)).code
    assert code.count("mx.sum(x, axis=1)") == 500


@pytest.mark.parametrize("text", [
    "import torch\nx = " + "(" * 3000 + "1" + ")" * 3000 + "\n",
    "import torch\nx = " + "-" * 20000 + "1\n",
    "import torch\ny = " + " + ".join(["x"] * 20000) + "\n",
    "import torch\ny = " + "torch.abs(" * 150 + "x" + ")" * 150 + "\n",
    "import torch\ny = " + "[" * 150 + "x" + "]" * 150 + "\n",
], ids=["parens", "unary", "binop-chain", "nested-calls", "nested-lists"])
def test_deep_nesting_never_leaks_recursion_error(text):
    try:
        result = convert_source(text, "deep.py")
    except InputError as exc:
        assert "deep.py" in str(exc) and ("nested" in str(exc) or "syntax" in str(exc))
    else:
        ast.parse(result.code)


def test_empty_file():
    assert convert_source("").code == ""
    assert convert_source("\n\n").code == "\n\n"


def test_file_without_torch_is_byte_identical(tmp_path):
    text = "# -*- coding: utf-8 -*-\r\nimport numpy as np\r\nif True:\r\n\tx  =  np.sum( a ,1 )   \r\n"
    assert convert_source(text).code == text
    src, out = tmp_path / "m.py", tmp_path / "o.py"
    src.write_bytes(text.encode())
    assert _cli(src, "-o", out).returncode == 0
    assert out.read_bytes() == src.read_bytes()


def test_file_without_torch_with_a_syntax_error_is_an_input_error():
    with pytest.raises(InputError, match="syntax error"):
        convert_source("import numpy as np\nx = (1,\n")


def test_null_byte_is_an_input_error():
    with pytest.raises(InputError):
        convert_source("import torch\nx = 1\x00\n")


def test_read_only_output_location_exit_2(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    src = tmp_path / "m.py"
    src.write_text(GOOD)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        r = _cli(src, "-o", locked / "o.py")
        assert r.returncode == 2 and "cannot write" in r.stderr
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o700)


def test_read_only_output_file_never_half_written(tmp_path, monkeypatch):
    """Even as root: a failing write leaves the old file and no temporary file behind."""
    out = tmp_path / "o.py"
    out.write_text("old\n")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        write_atomic(out, "new\n")
    assert out.read_text() == "old\n" and os.listdir(tmp_path) == ["o.py"]


def test_interrupted_write_leaves_no_half_written_file(tmp_path, monkeypatch):
    out = tmp_path / "o.py"
    out.write_text("old contents\n")
    real_fdopen = os.fdopen

    class Interrupted(KeyboardInterrupt):
        pass

    def half_write(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        original_write = handle.write

        def write(data):
            original_write(data[: len(data) // 2])
            handle.flush()
            raise Interrupted()

        handle.write = write
        return handle

    monkeypatch.setattr(os, "fdopen", half_write)
    with pytest.raises(Interrupted):
        write_atomic(out, "x" * 10_000)
    assert out.read_text() == "old contents\n"
    assert os.listdir(tmp_path) == ["o.py"]


def test_disk_full_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "new.py"
    real_fdopen = os.fdopen

    def full(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)

        def write(data):
            raise OSError(28, "No space left on device")

        handle.write = write
        return handle

    monkeypatch.setattr(os, "fdopen", full)
    with pytest.raises(OSError):
        write_atomic(out, "data")
    assert os.listdir(tmp_path) == []


def test_output_path_inside_the_input_tree(tmp_path):
    """Writing next to the input (or into a subfolder of it) works and leaves the input alone."""
    src = tmp_path / "pkg" / "m.py"
    src.parent.mkdir()
    src.write_text(GOOD)
    out = tmp_path / "pkg" / "mlx_out" / "m.py"
    out.parent.mkdir()
    assert _cli(src, "-o", out).returncode == 0
    assert src.read_text() == GOOD and "mx.sum" in out.read_text()
    r = _cli(src, "-o", src)
    assert r.returncode == 2 and src.read_text() == GOOD


def test_symlink_loop_is_a_clean_exit_2(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.symlink_to(b)
    b.symlink_to(a)
    r = _cli(a, "-o", tmp_path / "o.py")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and str(a) in r.stderr
    assert not (tmp_path / "o.py").exists()


def test_symlink_loop_read_source_is_an_input_error(tmp_path):
    a = tmp_path / "a.py"
    a.symlink_to(a)
    with pytest.raises(InputError):
        read_source(a)


# --- notebooks ---------------------------------------------------------------------------

def _notebook(*cells, indent=1) -> str:
    nb = {"cells": list(cells), "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(nb, indent=indent) + "\n"


def _code(source, outputs=()):
    return {"cell_type": "code", "execution_count": 1, "metadata": {"tags": ["keep"]}, "outputs": list(outputs), "source": source}


def test_notebook_code_cells_converted_outputs_and_metadata_kept():
    stream = {"output_type": "stream", "name": "stdout", "text": ["tensor([1.])\n"]}
    text = _notebook({"cell_type": "markdown", "metadata": {}, "source": ["uses torch.sum\n"]},
                     _code(["%matplotlib inline\n", "import torch\n", "x = torch.ones(3)"], [stream]),
                     _code(["y = torch.sum(x, 0)\n", "!ls\n", "print(y)"]))
    result = convert_notebook(text, "nb.ipynb")
    nb = json.loads(result.code)
    assert nb["cells"][0]["source"] == ["uses torch.sum\n"]  # markdown untouched
    assert nb["cells"][1]["source"] == ["%matplotlib inline\n", "import mlx.core as mx\n", "x = mx.ones(3)"]
    assert nb["cells"][1]["outputs"] == [stream] and nb["cells"][1]["metadata"] == {"tags": ["keep"]}
    assert nb["cells"][2]["source"] == ["y = mx.sum(x, axis=0)\n", "!ls\n", "print(y)"]
    assert nb["metadata"] == {"kernelspec": {"name": "python3"}}
    assert result.code.startswith('{\n "cells"')  # Jupyter's indent kept


def test_notebook_flag_names_cell_and_line():
    text = _notebook(_code("import torch\n"), _code("def f(a):\n    return a.sum()\n"))
    result = convert_notebook(text, "nb.ipynb")
    assert [(d.path, d.line) for d in result.diagnostics] == [("nb.ipynb[cell 1]", 2)]


def test_notebook_without_torch_is_byte_identical():
    text = _notebook(_code(["import numpy as np\n"]), indent=2)
    assert convert_notebook(text, "nb.ipynb").code == text


def test_notebook_syntax_error_names_the_cell():
    text = _notebook(_code("import torch\n"), _code("x = (1,\n"))
    with pytest.raises(InputError, match=r"nb.ipynb\[cell 1\]:1:"):
        convert_notebook(text, "nb.ipynb")


@pytest.mark.parametrize("text", ["{not json", "[]", '{"cells": 3}'])
def test_not_a_notebook_is_refused_clearly(text):
    with pytest.raises(InputError, match="not a notebook"):
        convert_notebook(text, "nb.ipynb")
