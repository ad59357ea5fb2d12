"""Configuration files: found like ruff finds its own, each key's effect on a real run, overrides, errors."""
import json

import pytest
from click.testing import CliRunner

from torch2mlx import runner as runner_module
from torch2mlx.cli import main

# a torch-built import (torch-dependency) and an unknown receiver (torch.sum): two flags, exit 1
TWO_FLAGS = "import torch\nimport torchvision\n\n\ndef f(a):\n    return a.sum()\n"
SUM_ONLY = "import torch\n\n\ndef f(a):\n    return a.sum()\n"
GOOD = "import torch\n\n\ndef f(x: torch.Tensor):\n    return torch.sum(x, 1)\n"
FROB = "import torch\ny = torch.frobnicate(x)\n"
FROB_RULES = """
rules:
  - id: torch.frobnicate
    function: torch.frobnicate
    signature: "input"
    mlx: "mx.abs({input})"
    status: exact
    examples: [{torch: "torch.frobnicate(x)", mlx: "mx.abs(x)"}]
"""


@pytest.fixture
def cli():
    return CliRunner()


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _convert(cli, *args):
    return cli.invoke(main, ["convert", *map(str, args), "--no-cache"])


# --------------------------------------------------------------------------- discovery

def test_pyproject_ignore_drops_the_diagnostic_and_the_exit_code_but_keeps_the_comment(cli, tmp_path):
    src = _write(tmp_path / "m.py", TWO_FLAGS.replace("def f(a)", "def f(a: torch.Tensor)"))
    assert _convert(cli, src).exit_code == 1
    _write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n\n[tool.torch2mlx]\nignore = ["torch-dependency"]\n')
    rep = tmp_path / "r.json"
    r = _convert(cli, src, "--report-json", rep)
    assert r.exit_code == 0, r.output
    assert "# torch2mlx: torch-dependency:" in r.stdout  # the flag comment stays in the code
    assert "torch-dependency" not in r.stderr
    data = json.loads(rep.read_text())
    assert data["summary"]["flagged"] == 0 and data["summary"]["ignored"] == 1
    assert data["files"][0]["status"] == "converted"
    assert [d for d in data["files"][0]["diagnostics"] if d["severity"] != "info"] == []


def test_closest_configuration_wins_and_parents_are_searched(cli, tmp_path):
    _write(tmp_path / "torch2mlx.toml", 'ignore = ["torch-dependency", "torch.sum"]\n')
    deep = _write(tmp_path / "a" / "b" / "m.py", TWO_FLAGS)
    assert _convert(cli, deep).exit_code == 0  # found two levels up
    _write(tmp_path / "a" / ".torch2mlx.toml", 'ignore = ["torch.sum"]\n')  # closer: only its keys count
    r = _convert(cli, deep)
    assert r.exit_code == 1 and "torch-dependency" in r.stderr and "torch.sum:" not in r.stderr


def test_a_pyproject_without_the_table_is_passed_over(cli, tmp_path):
    _write(tmp_path / "torch2mlx.toml", 'ignore = ["torch-dependency", "torch.sum"]\n')
    _write(tmp_path / "sub" / "pyproject.toml", '[project]\nname = "sub"\n')
    src = _write(tmp_path / "sub" / "m.py", TWO_FLAGS)
    assert _convert(cli, src).exit_code == 0


def test_dot_file_comes_before_torch2mlx_toml_and_pyproject(cli, tmp_path):
    _write(tmp_path / "pyproject.toml", '[tool.torch2mlx]\nignore = ["torch.sum"]\n')
    _write(tmp_path / "torch2mlx.toml", 'ignore = ["torch-dependency"]\n')
    _write(tmp_path / ".torch2mlx.toml", 'ignore = ["torch-dependency", "torch.sum"]\n')
    src = _write(tmp_path / "m.py", TWO_FLAGS)
    assert _convert(cli, src).exit_code == 0


def test_config_option_and_isolated(cli, tmp_path):
    src = _write(tmp_path / "m.py", TWO_FLAGS)
    named = _write(tmp_path / "elsewhere" / "team.toml", 'ignore = ["torch"]\n')
    assert _convert(cli, src, "--config", named).exit_code == 0
    _write(tmp_path / "torch2mlx.toml", 'ignore = ["torch"]\n')
    assert _convert(cli, src).exit_code == 0
    r = _convert(cli, src, "--isolated")
    assert r.exit_code == 1 and "torch-dependency" in r.stderr
    r = _convert(cli, src, "--isolated", "--config", named)
    assert r.exit_code == 2 and "--isolated" in r.stderr
    r = _convert(cli, src, "--config", tmp_path / "missing.toml")
    assert r.exit_code == 2


def test_stdin_uses_the_current_directory(cli, tmp_path, monkeypatch):
    _write(tmp_path / "torch2mlx.toml", 'ignore = ["torch-dependency", "torch.sum"]\n')
    r = cli.invoke(main, ["convert", "-", "--no-cache"], input=TWO_FLAGS)
    assert r.exit_code == 1  # the test's working directory has no configuration
    monkeypatch.chdir(tmp_path)
    r = cli.invoke(main, ["convert", "-", "--no-cache"], input=TWO_FLAGS)
    assert r.exit_code == 0 and "# torch2mlx: torch.sum:" in r.stdout


# --------------------------------------------------------------------------- each key

def test_select_prefix_reports_only_matching_rules(cli, tmp_path):
    src = _write(tmp_path / "m.py", TWO_FLAGS)
    _write(tmp_path / "torch2mlx.toml", 'select = ["torch-"]\n')  # torch-dependency, torch-reference
    r = _convert(cli, src)
    assert r.exit_code == 1 and "torch-dependency" in r.stderr and "torch.sum:" not in r.stderr
    _write(tmp_path / "torch2mlx.toml", 'select = ["torch.Tensor", "torch.s"]\n')  # prefixes end at . or -
    r = _convert(cli, src)
    assert r.exit_code == 0 and "warning" not in r.stderr
    _write(tmp_path / "torch2mlx.toml", 'select = ["torch"]\nignore = ["torch-dependency"]\n')  # ignore wins
    r = _convert(cli, src)
    assert r.exit_code == 1 and "torch.sum:" in r.stderr and "torch-dependency" not in r.stderr


def test_per_file_ignores_are_globs_relative_to_the_config(cli, tmp_path):
    _write(tmp_path / "pyproject.toml", '[tool.torch2mlx.per-file-ignores]\n"tests/*" = ["torch.sum"]\n"__init__.py" = ["torch"]\n')
    _write(tmp_path / "tests" / "t.py", SUM_ONLY)
    _write(tmp_path / "pkg" / "__init__.py", SUM_ONLY)
    _write(tmp_path / "pkg" / "m.py", SUM_ONLY)
    rep = tmp_path / "r.json"
    r = cli.invoke(main, ["convert", str(tmp_path), "--check", "--no-cache", "--report-json", str(rep)])
    flagged = {f["path"][len(str(tmp_path)) + 1:]: f["flagged"] for f in json.loads(rep.read_text())["files"]}
    assert flagged == {"pkg/__init__.py": 0, "pkg/m.py": 1, "tests/t.py": 0}, r.output
    assert _convert(cli, tmp_path / "tests" / "t.py").exit_code == 0
    assert _convert(cli, tmp_path / "pkg" / "m.py").exit_code == 1


def test_exclude_adds_to_the_command_line_and_is_relative_to_the_config(cli, tmp_path):
    _write(tmp_path / "torch2mlx.toml", 'exclude = ["src/legacy"]\n')
    for name in ("legacy/old.py", "new.py", "gen/auto.py"):
        _write(tmp_path / "src" / name, GOOD)
    r = cli.invoke(main, ["convert", str(tmp_path / "src"), "--check", "--no-cache", "--exclude", "gen/"])
    assert r.exit_code == 1
    assert "new.py" in r.stderr and "old.py" not in r.stderr and "auto.py" not in r.stderr
    r = cli.invoke(main, ["convert", str(tmp_path / "src"), "--check", "--no-cache", "--isolated"])
    assert "old.py" in r.stderr and "auto.py" in r.stderr


def test_rules_and_extend_rules_are_relative_to_the_config(cli, tmp_path):
    src = _write(tmp_path / "code" / "m.py", FROB)
    _write(tmp_path / "rules" / "mine.yaml", FROB_RULES)
    assert _convert(cli, src).exit_code == 1  # torch.frobnicate: no rule
    for key in ("rules", "extend-rules"):
        _write(tmp_path / "torch2mlx.toml", f'{key} = ["rules/mine.yaml"]\n')
        r = _convert(cli, src)
        assert r.exit_code == 0 and "mx.abs(x)" in r.stdout, (key, r.output)
    _write(tmp_path / "torch2mlx.toml", 'rules = ["rules/missing.yaml"]\n')
    assert _convert(cli, src).exit_code == 2


def test_jobs_and_cache_dir(cli, tmp_path, monkeypatch):
    workers = []
    real_init = runner_module.Run.__init__

    def spy(self, jobs, options, workers_=1):
        workers.append(workers_)
        real_init(self, jobs, options, workers_)

    monkeypatch.setattr(runner_module.Run, "__init__", spy)
    monkeypatch.delenv("TORCH2MLX_CACHE_DIR", raising=False)
    _write(tmp_path / "torch2mlx.toml", 'jobs = 3\ncache-dir = ".t2m-cache"\n')
    src = _write(tmp_path / "m.py", GOOD)
    r = cli.invoke(main, ["convert", str(src)])
    assert r.exit_code == 0 and workers == [3]
    assert any((tmp_path / ".t2m-cache").rglob("*")), "the cache lives where the configuration says"
    r = cli.invoke(main, ["convert", str(src), "-j", "2", "--cache-dir", str(tmp_path / "cli-cache")])
    assert r.exit_code == 0 and workers == [3, 2]  # the command line wins
    assert any((tmp_path / "cli-cache").rglob("*"))


def test_check_lists_only_reported_diagnostics_and_sarif_omits_ignored(cli, tmp_path):
    src = _write(tmp_path / "m.py", TWO_FLAGS)
    _write(tmp_path / "torch2mlx.toml", 'ignore = ["torch-dependency"]\n')
    sarif = tmp_path / "out.sarif"
    r = cli.invoke(main, ["check", str(src), "--no-cache", "--sarif", str(sarif)])
    assert "torch.sum" in r.stderr and "torch-dependency" not in r.stderr
    ids = {res["ruleId"] for res in json.loads(sarif.read_text())["runs"][0]["results"]}
    assert ids == {"torch.sum"}


def test_ignoring_applies_after_the_cache(cli, tmp_path):
    src = _write(tmp_path / "m.py", TWO_FLAGS)
    cache = str(tmp_path / "cache")
    assert cli.invoke(main, ["convert", str(src), "--cache-dir", cache]).exit_code == 1
    _write(tmp_path / "torch2mlx.toml", 'ignore = ["torch-dependency", "torch.sum"]\n')
    rep = tmp_path / "r.json"
    r = cli.invoke(main, ["convert", str(src), "--cache-dir", cache, "--report-json", str(rep)])
    assert r.exit_code == 0 and json.loads(rep.read_text())["files"][0]["cached"] is True


# --------------------------------------------------------------------------- the command line wins

def test_select_and_ignore_flags_replace_the_configuration(cli, tmp_path):
    src = _write(tmp_path / "m.py", TWO_FLAGS)
    _write(tmp_path / "torch2mlx.toml", 'ignore = ["torch-dependency", "torch.sum"]\n')
    assert _convert(cli, src).exit_code == 0
    r = _convert(cli, src, "--ignore", "torch.sum")
    assert r.exit_code == 1 and "torch-dependency" in r.stderr and "torch.sum:" not in r.stderr
    r = _convert(cli, src, "--isolated", "--select", "torch-reference,torch.sum", "--ignore", "torch.sum")
    assert r.exit_code == 0


def test_rules_flag_replaces_rules_but_not_extend_rules(cli, tmp_path):
    src = _write(tmp_path / "m.py", FROB)
    _write(tmp_path / "mine.yaml", FROB_RULES)
    _write(tmp_path / "other.yaml", FROB_RULES.replace("frobnicate", "wobble"))
    _write(tmp_path / "torch2mlx.toml", 'rules = ["mine.yaml"]\n')
    assert _convert(cli, src).exit_code == 0
    assert _convert(cli, src, "--rules", tmp_path / "other.yaml").exit_code == 1  # replaced
    _write(tmp_path / "torch2mlx.toml", 'extend-rules = ["mine.yaml"]\n')
    assert _convert(cli, src, "--rules", tmp_path / "other.yaml").exit_code == 0  # kept


# --------------------------------------------------------------------------- errors name the place

@pytest.mark.parametrize("name, text, where, words", [
    ("pyproject.toml", '[project]\nname = "x"\n\n[tool.torch2mlx]\nignore = []\nselct = ["torch"]\n', ":6:1:", "unknown key 'selct'"),
    ("torch2mlx.toml", '# team settings\n\n  jobs = "4"\n', ":3:3:", "jobs must be an integer"),
    ("torch2mlx.toml", 'jobs = true\n', ":1:1:", "jobs must be an integer"),
    ("torch2mlx.toml", 'select = "torch.sum"\n', ":1:1:", "select must be a list"),
    ("torch2mlx.toml", '[per-file-ignores]\n"a.py" = ["x"]\n"b.py" = "x"\n', ":3:1:", "per-file-ignores 'b.py'"),
    ("pyproject.toml", '[tool.torch2mlx]\nexclude = ["a"]\n\n[tool.torch2mlx.extra]\nx = 1\n', ":4:1:", "unknown key 'extra'"),
    ("torch2mlx.toml", 'ignore = ["a"\n', ":2:1:", "not valid TOML"),
])
def test_bad_configuration_is_exit_2_with_position(cli, tmp_path, name, text, where, words):
    config = _write(tmp_path / name, text)
    src = _write(tmp_path / "m.py", GOOD)
    r = _convert(cli, src)
    assert r.exit_code == 2, r.output
    assert f"{config}{where}" in r.stderr and words in r.stderr, r.stderr
    assert r.stdout == ""
    assert _convert(cli, src, "--isolated").exit_code == 0
