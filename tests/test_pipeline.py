"""One pipeline: a single file, a list, a tree and stdin all go through `batch.run` and the runner,
so every option (reports, SARIF, the cache, --quiet ...) means the same for each."""
import dataclasses
import json
import os

import pytest
from click.testing import CliRunner

from torch2mlx import batch, runner
from torch2mlx.cli import main
from torch2mlx.runner import ConvertOptions

GOOD = "import torch\n\n\ndef f(x: torch.Tensor):\n    return torch.sum(x, 1)\n"
GOOD_MLX = "import mlx.core as mx\n\n\ndef f(x: mx.array):\n    return mx.sum(x, axis=1)\n"
FLAGGED = "import torch\n\n\ndef f(a):\n    return a.sum()\n"
BAD = "import torch\nx = (1,\ny = 2\n"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH2MLX_CACHE_DIR", str(tmp_path / "cache"))


def _invoke(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def _write(path, text):
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- the options object

def test_the_cli_builds_one_frozen_options_object(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(batch, "run", lambda err, sources, options: seen.append((list(sources), options)))
    src = _write(tmp_path / "m.py", GOOD)
    rules = _write(tmp_path / "r.yaml", "rules: []\n")
    _invoke("convert", src, "-o", tmp_path / "o.py", "--force", "--no-cache", "--rules", rules, "--exit-zero",
            "--report", tmp_path / "r.md", "-q", "-j", 3)
    (sources, options), = seen
    assert sources == [src]
    assert options == ConvertOptions(mode="output", output=tmp_path / "o.py", force=True, exit_zero=True, rule_files=(rules,),
                                     jobs=3, cache_dir=None, report_file=tmp_path / "r.md", quiet=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.mode = "in-place"
    seen.clear()
    _invoke("check", src, "--cache-dir", tmp_path / "c")
    assert seen[0][1] == ConvertOptions(mode="check", cache_dir=tmp_path / "c")
    seen.clear()
    _invoke("convert", src)
    assert seen[0][1].mode == "stdout" and seen[0][1].cache_dir == tmp_path / "cache"


def test_options_refuse_an_inconsistent_mode():
    with pytest.raises(ValueError):
        ConvertOptions(mode="sideways")
    with pytest.raises(ValueError):
        ConvertOptions(mode="output")  # without a path
    with pytest.raises(ValueError):
        ConvertOptions(mode="stdout", output=os.devnull)


# --------------------------------------------------------------------------- reports for one file

def test_report_and_sarif_for_a_single_file(tmp_path):
    """Refused before (a single file had its own path without reports); now as for a tree."""
    src = _write(tmp_path / "m.py", FLAGGED)
    r = _invoke("convert", src, "--report", tmp_path / "r.md", "--sarif", tmp_path / "r.sarif",
                "--report-json", tmp_path / "r.json")
    assert r.exit_code == 1, r.output
    assert "# torch2mlx: torch.sum:" in r.stdout  # the code still goes to stdout
    assert "m.py#L5" in (tmp_path / "r.md").read_text()
    doc = json.loads((tmp_path / "r.sarif").read_text())
    result, = doc["runs"][0]["results"]
    assert result["ruleId"] == "torch.sum"
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 5, "startColumn": 12}
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["by_status"]["flagged"] == 1


def test_report_with_output_file_and_in_place(tmp_path):
    src = _write(tmp_path / "m.py", GOOD)
    out = tmp_path / "o.py"
    r = _invoke("convert", src, "-o", out, "--report", tmp_path / "r.html")
    assert r.exit_code == 0, r.output
    assert out.read_text() == GOOD_MLX and "<!DOCTYPE html>" in (tmp_path / "r.html").read_text()
    r = _invoke("convert", src, "--in-place", "--sarif", tmp_path / "r.sarif")
    assert r.exit_code == 0 and src.read_text() == GOOD_MLX
    results = json.loads((tmp_path / "r.sarif").read_text())["runs"][0]["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [("torch.sum", "note")]  # an assumption, not a leftover


def test_a_single_file_uses_the_cache(tmp_path):
    src = _write(tmp_path / "m.py", GOOD)
    rep = tmp_path / "r.json"
    for cached in (False, True):
        r = _invoke("convert", src, "--report-json", rep)
        assert r.exit_code == 0 and r.stdout == GOOD_MLX
        assert json.loads(rep.read_text())["files"][0]["cached"] is cached
    r = _invoke("convert", src, "--report-json", rep, "--no-cache")
    assert r.stdout == GOOD_MLX and json.loads(rep.read_text())["files"][0]["cached"] is False


def test_a_single_bad_file_writes_its_report(tmp_path):
    src = _write(tmp_path / "bad.py", BAD)
    r = _invoke("convert", src, "--sarif", tmp_path / "r.sarif")
    assert r.exit_code == 2 and r.stdout == ""
    assert f"{src}:2:5: failed: syntax error" in r.stderr
    result, = json.loads((tmp_path / "r.sarif").read_text())["runs"][0]["results"]
    assert result["ruleId"] == "bad-input"


# --------------------------------------------------------------------------- stdin / stdout

def test_stdin_to_stdout():
    r = _invoke("convert", "-", input=GOOD)
    assert r.exit_code == 0, r.output
    assert r.stdout == GOOD_MLX


def test_stdin_flagged_names_stdin_and_exits_one():
    r = _invoke("convert", "-", input=FLAGGED)
    assert r.exit_code == 1
    assert "# torch2mlx: torch.sum:" in r.stdout and "<stdin>:5:12" in r.stderr


def test_stdin_keeps_encoding_and_line_endings():
    data = "# -*- coding: latin-1 -*-\r\nimport torch\r\nname = 'été'\r\ny = torch.exp(x)\r\n".encode("latin-1")
    r = _invoke("convert", "-", input=data)
    assert r.exit_code == 0, r.output
    assert r.stdout_bytes == "# -*- coding: latin-1 -*-\r\nimport mlx.core as mx\r\nname = 'été'\r\ny = mx.exp(x)\r\n".encode()
    untouched = b"# no torch here\r\nx = 1\r\n"
    assert _invoke("convert", "-", input=untouched).stdout_bytes == untouched


def test_stdin_with_diff_check_and_output_file(tmp_path):
    r = _invoke("convert", "-", "--diff", input=GOOD)
    assert r.exit_code == 0 and "+    return mx.sum(x, axis=1)" in r.stdout and "a/<stdin>" in r.stdout
    r = _invoke("check", "-", input=GOOD)
    assert r.exit_code == 1 and "<stdin>:1: would be rewritten" in r.stderr and r.stdout == ""
    assert _invoke("check", "-", input=GOOD_MLX).exit_code == 0
    out = tmp_path / "o.py"
    r = _invoke("convert", "-", "-o", out, input=GOOD)
    assert r.exit_code == 0 and out.read_text() == GOOD_MLX and r.stdout == ""


def test_stdin_errors(tmp_path):
    r = _invoke("convert", "-", input=BAD)
    assert r.exit_code == 2 and "<stdin>:2:5: failed: syntax error" in r.stderr and r.stdout == ""
    r = _invoke("convert", "-", "--in-place", input=GOOD)
    assert r.exit_code == 2 and "stdin" in r.stderr
    r = _invoke("convert", "-", _write(tmp_path / "m.py", GOOD), "--check", input=GOOD)
    assert r.exit_code == 2 and "stdin" in r.stderr


# --------------------------------------------------------------------------- --quiet

def test_quiet_prints_nothing_and_keeps_the_exit_code(tmp_path):
    src = _write(tmp_path / "m.py", FLAGGED)
    r = _invoke("convert", src, "--quiet")
    assert r.exit_code == 1 and r.stderr == "" and "# torch2mlx: torch.sum:" in r.stdout
    r = _invoke("convert", "-", "-q", input=GOOD)
    assert r.exit_code == 0 and r.stderr == "" and r.stdout == GOOD_MLX
    r = _invoke("check", src, "-q")
    assert r.exit_code == 1 and r.stderr == ""
    tree = tmp_path / "src"
    tree.mkdir()
    _write(tree / "a.py", FLAGGED)
    _write(tree / "b.py", GOOD)
    r = _invoke("convert", tree, "-o", tmp_path / "out", "-q", "-j", 1)
    assert r.exit_code == 1 and r.stderr == "" and (tmp_path / "out" / "b.py").read_text() == GOOD_MLX


def test_quiet_still_names_files_that_could_not_be_converted(tmp_path):
    src = _write(tmp_path / "bad.py", BAD)
    r = _invoke("convert", src, "-q")
    assert r.exit_code == 2 and f"{src}:2:5: failed: syntax error" in r.stderr
    assert "torch2mlx:" not in r.stderr  # no summary
    r = _invoke("convert", tmp_path / "missing.py", "-q")
    assert r.exit_code == 2 and "no such file" in r.stderr


# --------------------------------------------------------------------------- rich markup in user text

MARKUP_RULES = """
rules:
  - id: torch.frobnicate
    function: torch.frobnicate
    status: manual
    why: "use [bold red]mx.abs[/] or :100: by hand"
    examples:
      - {torch: "torch.frobnicate(x)", flagged: true}
"""


@pytest.mark.parametrize("layout", ["file", "tree"])
def test_user_text_is_never_read_as_markup_or_emoji(tmp_path, layout):
    rules = _write(tmp_path / "rules.yaml", MARKUP_RULES)
    root = tmp_path / "src"
    root.mkdir()
    src = _write(root / "file.py:100:[bold]x.py", "import torch\ny = torch.frobnicate(x)\n")
    if layout == "file":
        r = _invoke("convert", src, "--rules", rules, "--no-cache")
    else:
        r = _invoke("convert", root, "--check", "--rules", rules, "--no-cache", "-v")
    assert r.exit_code == 1, r.output
    assert f"{src}:2:5: warning: torch.frobnicate: use [bold red]mx.abs[/] or :100: by hand" in r.stderr
    assert "\N{HUNDRED POINTS SYMBOL}" not in r.stderr


def test_errors_are_never_read_as_markup(tmp_path):
    missing = tmp_path / "gone:100:[red]x.py"
    r = _invoke("convert", missing)
    assert r.exit_code == 2 and f"{missing}: no such file" in r.stderr
    bad = _write(tmp_path / "bad:100:[b].py", BAD)
    r = _invoke("convert", bad)
    assert r.exit_code == 2 and f"{bad}:2:5: failed: syntax error" in r.stderr
    assert "\N{HUNDRED POINTS SYMBOL}" not in r.stderr


# --------------------------------------------------------------------------- one meaning per option

def test_explicit_files_are_taken_whatever_their_suffix(tmp_path):
    """Named on the command line: converted, alone or in a list (a list used to drop them)."""
    script = _write(tmp_path / "train", GOOD)
    other = _write(tmp_path / "m.py", GOOD)
    r = _invoke("convert", script, other, "--in-place")
    assert r.exit_code == 0, r.output
    assert script.read_text() == GOOD_MLX and other.read_text() == GOOD_MLX


def test_in_place_through_a_symlink_is_refused_alone_or_in_a_list(tmp_path):
    real = _write(tmp_path / "real.py", GOOD)
    link = tmp_path / "link.py"
    link.symlink_to(real)
    other = _write(tmp_path / "m.py", GOOD)
    for args in ([link], [link, other]):
        r = _invoke("convert", *args, "--in-place")
        assert r.exit_code == 2 and "symbolic link" in r.stderr, r.output
        assert real.read_text() == GOOD and link.is_symlink()
    assert other.read_text() == GOOD_MLX  # the other file of the list is still converted
    r = _invoke("convert", link)  # reading through a named link is fine
    assert r.exit_code == 0 and r.stdout == GOOD_MLX


def test_output_file_that_is_a_directory_is_refused(tmp_path):
    src = _write(tmp_path / "m.py", GOOD)
    (tmp_path / "out").mkdir()
    r = _invoke("convert", src, "-o", tmp_path / "out", "--force")
    assert r.exit_code == 2 and "is a directory" in r.stderr
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.skipif(not runner.notebook_support(), reason="torch2mlx.notebook not present")
def test_a_single_notebook_and_user_rules_in_its_cells(tmp_path):
    rules = _write(tmp_path / "mine.yaml", """
rules:
  - id: torch.frobnicate
    function: torch.frobnicate
    signature: "input"
    mlx: "mx.abs({input})"
    status: exact
    examples: [{torch: "torch.frobnicate(x)", mlx: "mx.abs(x)"}]
""")
    cell = {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
            "source": ["import torch\n", "y = torch.frobnicate(torch.sum(x, 1))"]}
    nb = _write(tmp_path / "nb.ipynb", json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1) + "\n")
    r = _invoke("convert", nb, "--rules", rules)
    assert r.exit_code == 0, r.output
    assert "mx.abs(mx.sum(x, axis=1))" in "".join(json.loads(r.stdout)["cells"][0]["source"])


def test_one_file_lists_its_diagnostics_several_need_verbose(tmp_path):
    tree = tmp_path / "src"
    tree.mkdir()
    a = _write(tree / "a.py", FLAGGED)
    _write(tree / "b.py", FLAGGED)
    assert f"{a}:5:12: warning: torch.sum" in _invoke("convert", a, "--diff").stderr
    r = _invoke("convert", tree, "--diff", "-j", 1)
    assert f"{a}:5:12" not in r.stderr and "torch2mlx run" in r.stderr
    assert f"{a}:5:12: warning: torch.sum" in _invoke("convert", tree, "--diff", "-j", 1, "-v").stderr
