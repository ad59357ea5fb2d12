"""The command line: outputs, exit codes, errors with file:line, nothing half-written."""
import json
import os

import pytest
from click.testing import CliRunner

from torch2mlx.cli import main

GOOD = "import torch\n\n\ndef f(x: torch.Tensor):\n    return torch.sum(x, 1)\n"
FLAGGED = "import torch\n\n\ndef f(a):\n    return a.sum()\n"


@pytest.fixture
def runner():
    return CliRunner()


def _write(tmp_path, name, text, mode="w"):
    p = tmp_path / name
    if mode == "wb":
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


def test_stdout_and_exit_zero(runner, tmp_path):
    src = _write(tmp_path, "m.py", GOOD)
    r = runner.invoke(main, ["convert", str(src)])
    assert r.exit_code == 0, r.output
    assert "mx.sum(x, axis=1)" in r.stdout


def test_flagged_exit_one_and_report_json(runner, tmp_path):
    src = _write(tmp_path, "m.py", FLAGGED)
    out = tmp_path / "out.py"
    rep = tmp_path / "rep.json"
    r = runner.invoke(main, ["convert", str(src), "-o", str(out), "--report-json", str(rep)])
    assert r.exit_code == 1
    assert "# torch2mlx: torch.sum:" in out.read_text()
    data = json.loads(rep.read_text())
    assert data["summary"]["flagged"] == 1
    d = data["files"][0]["diagnostics"][0]
    assert (d["line"], d["column"], d["rule_id"]) == (5, 12, "torch.sum")
    assert f"{src}:5:12" in r.stderr


def test_diff(runner, tmp_path):
    src = _write(tmp_path, "m.py", GOOD)
    r = runner.invoke(main, ["convert", str(src), "--diff"])
    assert r.exit_code == 0
    assert "-    return torch.sum(x, 1)" in r.stdout and "+    return mx.sum(x, axis=1)" in r.stdout


def test_syntax_error_names_line_and_writes_nothing(runner, tmp_path):
    src = _write(tmp_path, "bad.py", "import torch\nx = (1,\ny = 2\n")
    out = tmp_path / "out.py"
    r = runner.invoke(main, ["convert", str(src), "-o", str(out)])
    assert r.exit_code == 2
    assert f"{src}:2:" in r.stderr and "syntax error" in r.stderr
    assert not out.exists()
    assert os.listdir(tmp_path) == ["bad.py"]


def test_non_utf8(runner, tmp_path):
    src = _write(tmp_path, "latin.py", b"import torch\nname = '\xe9t\xe9'\n", "wb")
    r = runner.invoke(main, ["convert", str(src)])
    assert r.exit_code == 2 and "cannot decode" in r.stderr and str(src) in r.stderr


def test_missing_path(runner, tmp_path):
    r = runner.invoke(main, ["convert", str(tmp_path / "nope.py")])
    assert r.exit_code == 2 and "no such file" in r.stderr


def test_existing_output_needs_force(runner, tmp_path):
    src = _write(tmp_path, "m.py", GOOD)
    out = _write(tmp_path, "out.py", "precious\n")
    r = runner.invoke(main, ["convert", str(src), "-o", str(out)])
    assert r.exit_code == 2 and out.read_text() == "precious\n"
    r = runner.invoke(main, ["convert", str(src), "-o", str(out), "--force"])
    assert r.exit_code == 0 and "mx.sum" in out.read_text()


def test_output_same_as_input_refused(runner, tmp_path):
    src = _write(tmp_path, "m.py", GOOD)
    r = runner.invoke(main, ["convert", str(src), "-o", str(src), "--force"])
    assert r.exit_code == 2 and src.read_text() == GOOD


def test_in_place(runner, tmp_path):
    src = _write(tmp_path, "m.py", GOOD)
    r = runner.invoke(main, ["convert", str(src), "--in-place"])
    assert r.exit_code == 0 and "mx.sum" in src.read_text()


def test_user_rules_override_and_bad_rules(runner, tmp_path):
    src = _write(tmp_path, "m.py", "import torch\ny = torch.frobnicate(x)\n")
    rules = _write(tmp_path, "mine.yaml", """
rules:
  - id: torch.frobnicate
    function: torch.frobnicate
    signature: "input"
    mlx: "mx.abs({input})"
    status: exact
    examples: [{torch: "torch.frobnicate(x)", mlx: "mx.abs(x)"}]
""")
    r = runner.invoke(main, ["convert", str(src), "--rules", str(rules)])
    assert r.exit_code == 0 and "mx.abs(x)" in r.stdout
    bad = _write(tmp_path, "bad.yaml", "rules:\n  - id: torch.x\n    status: maybe\n    examples: []\n    function: torch.x\n")
    r = runner.invoke(main, ["convert", str(src), "--rules", str(bad)])
    assert r.exit_code == 2 and f"{bad}:2:" in r.stderr and "torch.x" in r.stderr


def test_help_has_examples(runner):
    r = runner.invoke(main, ["convert", "--help"])
    assert r.exit_code == 0 and "torch2mlx convert model.py -o model_mlx.py" in r.stdout
    assert "Exit codes" in r.stdout


def test_internal_error_is_exit_3(runner, tmp_path, monkeypatch):
    import torch2mlx.runner as pipeline  # one file goes through the runner, as a tree does

    def boom(*args, **kwargs):
        raise RuntimeError("converter bug")

    monkeypatch.setattr(pipeline, "convert_source", boom)
    src = _write(tmp_path, "m.py", GOOD)
    r = runner.invoke(main, ["convert", str(src), "--no-cache"])
    assert r.exit_code == 3 and "internal error" in r.stderr and "converter bug" in r.stderr
    assert r.stdout == ""


def test_check_single_file(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH2MLX_CACHE_DIR", str(tmp_path / "cache"))
    src = _write(tmp_path, "m.py", GOOD)
    r = runner.invoke(main, ["convert", str(src), "--check"])
    assert r.exit_code == 1 and src.read_text() == GOOD and "would be rewritten" in r.stderr


def test_output_dash_is_standard_output_not_a_file_named_dash(runner, tmp_path, monkeypatch):
    src = _write(tmp_path, "m.py", GOOD)
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(main, ["convert", str(src), "-o", "-"])
    assert r.exit_code == 0, r.output
    assert "mx.sum(x, axis=1)" in r.stdout
    assert not (tmp_path / "-").exists()
