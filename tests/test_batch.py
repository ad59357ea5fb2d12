"""Directory runs: mirroring, in-place, excludes, symlinks, bad files, parallelism, the cache, exit codes."""
import ast
import json

import pytest
from click.testing import CliRunner

from torch2mlx import runner
from torch2mlx.cli import main

GOOD = "import torch\n\n\ndef f(x: torch.Tensor):\n    return torch.sum(x, 1)\n"
FLAGGED = "import torch\n\n\ndef f(a):\n    return a.sum()\n"
NO_TORCH = b"# -*- coding: latin-1 -*-\r\nname = '\xe9t\xe9'\r\n"  # not UTF-8, CRLF: must stay byte-identical
BAD = "import torch\nx = (1,\ny = 2\n"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH2MLX_CACHE_DIR", str(tmp_path / "cache"))


def _tree(root):
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "model.py").write_text(GOOD)
    (root / "pkg" / "sub" / "loss.py").write_text(FLAGGED)
    (root / "pkg" / "plain.py").write_bytes(NO_TORCH)
    (root / "README.md").write_text("# hello\n")
    return root


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_mirror_converts_copies_and_keeps_plain_files_identical(tmp_path):
    src = _tree(tmp_path / "src")
    out = tmp_path / "out"
    r = _invoke("convert", src, "-o", out, "-j", 1)
    assert r.exit_code == 1, r.output  # loss.py is flagged
    assert "mx.sum(x, axis=1)" in (out / "pkg" / "model.py").read_text()
    assert "# torch2mlx: torch.sum:" in (out / "pkg" / "sub" / "loss.py").read_text()
    assert (out / "pkg" / "plain.py").read_bytes() == NO_TORCH
    assert (out / "README.md").read_text() == "# hello\n"
    assert (src / "pkg" / "model.py").read_text() == GOOD  # input untouched


def test_mirror_keeps_permission_bits(tmp_path):
    src = _tree(tmp_path / "src")
    (src / "pkg" / "model.py").chmod(0o644)
    (src / "README.md").chmod(0o755)
    out = tmp_path / "out"
    _invoke("convert", src, "-o", out, "-j", 1)
    assert (out / "pkg" / "model.py").stat().st_mode & 0o777 == 0o644
    assert (out / "README.md").stat().st_mode & 0o777 == 0o755


def test_no_copy_skips_other_files(tmp_path):
    src = _tree(tmp_path / "src")
    out = tmp_path / "out"
    _invoke("convert", src, "-o", out, "--no-copy", "-j", 1)
    assert not (out / "README.md").exists() and (out / "pkg" / "model.py").exists()


def test_non_empty_output_needs_force(tmp_path):
    src = _tree(tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert _invoke("convert", src, "-o", out).exit_code == 2
    assert not (out / "pkg").exists()
    assert _invoke("convert", src, "-o", out, "--force", "-j", 1).exit_code == 1


def test_in_place_rewrites_tree(tmp_path):
    src = _tree(tmp_path / "src")
    r = _invoke("convert", src, "--in-place", "-j", 1)
    assert r.exit_code == 1
    assert "mx.sum" in (src / "pkg" / "model.py").read_text()
    assert (src / "pkg" / "plain.py").read_bytes() == NO_TORCH
    assert not [p for p in src.rglob("*.tmp")]


def test_check_writes_nothing_and_lists_changed_lines(tmp_path):
    src = _tree(tmp_path / "src")
    r = _invoke("check", src, "-j", 1)
    assert r.exit_code == 1
    assert f"{src / 'pkg' / 'model.py'}:1: would be rewritten" in r.stderr
    assert (src / "pkg" / "model.py").read_text() == GOOD
    (src / "pkg" / "model.py").write_text("import mlx.core as mx\n")
    (src / "pkg" / "sub" / "loss.py").unlink()
    assert _invoke("convert", src, "--check", "-j", 1).exit_code == 0


def test_flagged_leftovers_do_not_fail_check(tmp_path):
    """Converted code with `# torch2mlx:` leftovers converts to itself, so check passes."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text(FLAGGED)
    _invoke("convert", src, "--in-place")
    assert _invoke("check", src).exit_code == 0


def test_diff_mode(tmp_path):
    src = _tree(tmp_path / "src")
    r = _invoke("convert", src, "--diff", "-j", 1)
    assert "+    return mx.sum(x, axis=1)" in r.stdout
    assert (src / "pkg" / "model.py").read_text() == GOOD


def test_exclude_and_gitignore(tmp_path):
    src = _tree(tmp_path / "src")
    (src / ".gitignore").write_text("sub/\n")
    (src / "pkg" / ".gitignore").write_text("plain.py\n")
    (src / "pkg" / "skipme.py").write_text(GOOD)
    out = tmp_path / "out"
    r = _invoke("convert", src, "-o", out, "--exclude", "pkg/skip*.py", "-j", 1)
    assert r.exit_code == 0, r.output  # the flagged file is gitignored
    assert (out / "pkg" / "model.py").exists()
    assert not (out / "pkg" / "sub").exists()
    assert not (out / "pkg" / "plain.py").exists()
    assert not (out / "pkg" / "skipme.py").exists()


def test_symlinks_are_not_followed_or_written_through(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.py"
    victim.write_text(GOOD)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text(GOOD)
    (src / "link.py").symlink_to(victim)
    (src / "linkdir").symlink_to(outside, target_is_directory=True)
    r = _invoke("convert", src, "--in-place", "-v", "--report-json", tmp_path / "r.json")
    assert r.exit_code == 0, r.output
    assert victim.read_text() == GOOD
    assert (src / "link.py").is_symlink()
    statuses = {f["path"]: f["status"] for f in json.loads((tmp_path / "r.json").read_text())["files"]}
    assert statuses[str(src / "link.py")] == "skipped" and statuses[str(src / "linkdir")] == "skipped"


def test_output_symlink_is_not_written_through(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text(GOOD)
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.py"
    victim.write_text("precious\n")
    (out / "a.py").symlink_to(victim)
    r = _invoke("convert", src, "-o", out, "--force")
    assert r.exit_code == 2 and victim.read_text() == "precious\n"


def test_output_inside_input_is_not_read_back(tmp_path):
    src = _tree(tmp_path / "src")
    out = src / "converted"
    r = _invoke("convert", src, "-o", out, "-j", 1)
    assert r.exit_code == 1
    assert not (out / "converted").exists()
    r = _invoke("convert", src, "-o", out, "--force", "-j", 1, "--report-json", tmp_path / "r.json")
    paths = [f["path"] for f in json.loads((tmp_path / "r.json").read_text())["files"]]
    assert not any("converted" in p for p in paths)


def test_bad_file_is_reported_and_others_converted(tmp_path):
    src = _tree(tmp_path / "src")
    (src / "pkg" / "broken.py").write_text(BAD)
    (src / "pkg" / "latin.py").write_bytes(b"import torch\nname = '\xe9'\n")
    out = tmp_path / "out"
    r = _invoke("convert", src, "-o", out, "-j", 2)
    assert r.exit_code == 2
    assert "broken.py:2:5: failed: syntax error" in r.stderr and "latin.py" in r.stderr  # path:line:col
    assert "mx.sum" in (out / "pkg" / "model.py").read_text()
    assert not (out / "pkg" / "broken.py").exists()


def test_internal_error_is_exit_3_and_others_written(tmp_path, monkeypatch):
    src = _tree(tmp_path / "src")
    real = runner.convert_source

    def boom(text, path, **kw):
        if path.endswith("model.py"):
            raise RuntimeError("converter bug")
        return real(text, path, **kw)

    monkeypatch.setattr(runner, "convert_source", boom)
    out = tmp_path / "out"
    r = _invoke("convert", src, "-o", out, "-j", 1, "--no-cache")
    assert r.exit_code == 3
    assert "internal-error" in r.stderr and "RuntimeError: converter bug" in r.stderr
    assert (out / "pkg" / "sub" / "loss.py").exists()


def test_parallel_equals_serial(tmp_path):
    src = _tree(tmp_path / "src")
    for i in range(6):
        (src / f"m{i}.py").write_text(GOOD.replace("1)", f"{i})"))
    _invoke("convert", src, "-o", tmp_path / "o1", "-j", 1, "--no-cache")
    _invoke("convert", src, "-o", tmp_path / "o2", "-j", 2, "--no-cache")
    files = sorted(p.relative_to(tmp_path / "o1") for p in (tmp_path / "o1").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "o2") for p in (tmp_path / "o2").rglob("*") if p.is_file())
    for rel in files:
        assert (tmp_path / "o1" / rel).read_bytes() == (tmp_path / "o2" / rel).read_bytes()
        if rel.suffix == ".py":
            ast.parse((tmp_path / "o2" / rel).read_bytes())


def test_second_run_hits_the_cache_and_edits_miss_it(tmp_path):
    src = _tree(tmp_path / "src")
    rep = tmp_path / "r.json"
    _invoke("convert", src, "--check", "--report-json", rep)
    assert json.loads(rep.read_text())["summary"]["cached"] == 0
    _invoke("convert", src, "--check", "--report-json", rep)
    first = json.loads(rep.read_text())
    assert first["summary"]["cached"] == 3
    (src / "pkg" / "model.py").write_text(GOOD + "\ny = torch.sum(x)\n")
    r = _invoke("convert", src, "--check", "--report-json", rep)
    files = {f["path"]: f for f in json.loads(rep.read_text())["files"]}
    assert not files[str(src / "pkg" / "model.py")]["cached"] and files[str(src / "pkg" / "sub" / "loss.py")]["cached"]
    assert r.exit_code == 1
    # a cached result carries the same diagnostics, stamped with the current path
    assert files[str(src / "pkg" / "sub" / "loss.py")]["diagnostics"][0]["path"] == str(src / "pkg" / "sub" / "loss.py")


def test_cache_key_changes_with_rule_files(tmp_path):
    from torch2mlx.cache import run_salt

    rules = tmp_path / "mine.yaml"
    rules.write_text("rules: []\n")
    assert run_salt() != run_salt([rules])


def test_directory_without_mode_is_a_usage_error(tmp_path):
    src = _tree(tmp_path / "src")
    r = _invoke("convert", src)
    assert r.exit_code == 2 and "--in-place" in r.stderr


def test_several_files_in_place(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text(GOOD)
    b.write_text(GOOD)
    r = _invoke("convert", a, b, "--in-place")
    assert r.exit_code == 0 and "mx.sum" in a.read_text() and "mx.sum" in b.read_text()


def test_exit_zero_for_flagged(tmp_path):
    a = tmp_path / "a.py"
    a.write_text(FLAGGED)
    assert _invoke("convert", a, "--in-place", "--exit-zero").exit_code == 0
    bad = tmp_path / "bad.py"
    bad.write_text(BAD)
    assert _invoke("convert", a, bad, "--in-place", "--exit-zero").exit_code == 2


def test_worst_exit():
    outcomes = [runner.FileOutcome("a", "flagged", converted=1), runner.FileOutcome("b", "failed")]
    assert runner.worst_exit(outcomes, "output") == 2
    assert runner.worst_exit([], "output") == 0
    assert runner.worst_exit([runner.FileOutcome("a", "converted", changed=True)], "check") == 1
    assert runner.worst_exit([runner.FileOutcome("a", "internal-error")] + outcomes, "check") == 3



@pytest.mark.skipif(not runner.notebook_support(), reason="torch2mlx.notebook not present")
def test_notebooks_are_converted_in_a_tree(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    cell = {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
            "source": ["import torch\n", "y = torch.sum(x, 1)"]}
    nb = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (src / "nb.ipynb").write_text(json.dumps(nb, indent=1) + "\n")
    out = tmp_path / "out"
    r = _invoke("convert", src, "-o", out, "-j", 1)
    assert r.exit_code == 0, r.output
    converted = json.loads((out / "nb.ipynb").read_text())
    assert "mx.sum(x, axis=1)" in "".join(converted["cells"][0]["source"])


def test_progress_bar_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats stderr as a terminal and shows the bar
    monkeypatch.delenv("NO_COLOR", raising=False)
    src = _tree(tmp_path / "src")
    r = _invoke("convert", src, "-o", tmp_path / "out", "-j", 2)
    assert r.exit_code == 1, r.output
    assert "torch2mlx run" in r.stderr and (tmp_path / "out" / "pkg" / "model.py").exists()
