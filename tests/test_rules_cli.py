"""`torch2mlx rules list/show/validate/coverage/docs`."""
import json

from click.testing import CliRunner

from torch2mlx.cli import main


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_list_filters_by_substring_and_status():
    r = _invoke("rules", "list", "softmax")
    assert r.exit_code == 0
    assert "torch.nn.functional.softmax" in r.stdout and "torch.exp " not in r.stdout
    r = _invoke("rules", "list", "--status", "manual")
    lines = [line for line in r.stdout.splitlines() if "│" in line]
    assert lines and all(" manual " in line for line in lines)
    assert "│ exact" not in r.stdout
    assert f"{len(lines)} of" in r.stdout


def test_show_by_id_function_alias_and_method():
    r = _invoke("rules", "show", "torch.nn.functional.softmax")
    assert r.exit_code == 0
    assert "conditional" in r.stdout and "mx.softmax(x, axis=-1)" in r.stdout and "nn_functional.yaml:" in r.stdout
    assert "### `torch.abs`" in _invoke("rules", "show", "torch.absolute").stdout
    assert "### `torch.abs`" in _invoke("rules", "show", "torch.Tensor.abs").stdout


def test_show_takes_the_names_users_write():
    for written, shown in [("F.softmax", "torch.nn.functional.softmax"), ("nn.Conv2d", "torch.nn.Conv2d"),
                           ("Tensor.view", "torch.Tensor.view"), ("x.view", "torch.Tensor.view"),
                           (".view", "torch.Tensor.view"), ("softmax", "torch.softmax"), ("F.relu()", "torch.nn.functional.relu")]:
        r = _invoke("rules", "show", written)
        assert r.exit_code == 0, (written, r.stderr)
        assert f"### `{shown}`" in r.stdout, (written, r.stdout[:200])


def test_suggestions_are_distinct():
    r = _invoke("rules", "show", "F.sofmax")
    assert r.exit_code == 2
    hint = r.stderr[r.stderr.index("did you mean"):].replace("\n", " ")
    names = [n.strip(" ?)") for n in hint.removeprefix("did you mean").split(",")]
    assert len(names) == len(set(names)) and "torch.nn.functional.softmax" in names, names


def test_show_unknown_suggests():
    r = _invoke("rules", "show", "torch.nn.functional.softmx")
    assert r.exit_code == 2 and "did you mean" in r.stderr and "torch.nn.functional.softmax" in r.stderr


def test_validate_good_and_bad(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text('rules:\n  - id: torch.frob\n    function: torch.frob\n    signature: "input"\n'
                    '    mlx: "mx.abs({input})"\n    status: exact\n    examples: [{torch: "torch.frob(x)", mlx: "mx.abs(x)"}]\n')
    r = _invoke("rules", "validate", good)
    assert r.exit_code == 0 and "ok, 1 rules" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: torch.ok\n    function: torch.ok\n    status: manual\n    why: x\n    examples: []\n"
                   "  - id: torch.x\n    status: maybe\n    examples: []\n    function: torch.x\n")
    r = _invoke("rules", "validate", good, bad)
    assert r.exit_code == 2 and f"{bad}:7:" in r.stderr and "torch.x" in r.stderr


def test_coverage(tmp_path):
    src = tmp_path / "proj"
    src.mkdir()
    (src / "m.py").write_text(
        "import torch\nimport torch.nn.functional as F\n\n"
        "def f(x):\n    y = torch.exp(x) + torch.exp(x)\n    z = F.softmax(y, -1)\n"
        "    return torch.frobnicate(z), torch.nn.functional.relu(z)\n")
    (src / "broken.py").write_text("import torch\nx = (\n")
    r = _invoke("rules", "coverage", src, "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    rule = {u["api"]: u for u in data["rule"]}
    assert rule["torch.exp"]["count"] == 2 and rule["torch.exp"]["where"][0].endswith("m.py:5:9")
    assert "torch.nn.functional.softmax" in {u["api"] for u in data["conditional"]}
    assert {u["api"] for u in data["unknown"]} == {"torch.frobnicate"}
    assert any("broken.py" in p for p in data["unreadable"])
    r = _invoke("rules", "coverage", src)
    assert "No rule (left in place): 1 APIs" in r.stdout


def test_docs_to_stdout_and_file(tmp_path):
    r = _invoke("rules", "docs")
    assert r.exit_code == 0 and r.stdout.startswith("# Rule reference")
    _invoke("rules", "docs", "-o", tmp_path / "rules.md")
    assert (tmp_path / "rules.md").read_text() == r.stdout


def test_rules_commands_print_paths_as_written_not_as_emoji(tmp_path):
    """rich turns `:100:` into an emoji unless told not to; a path is text."""
    from click.testing import CliRunner

    from torch2mlx.cli import main

    bad = tmp_path / "x:100:.yaml"
    bad.write_text("rules:\n  - id: bad\n")
    result = CliRunner().invoke(main, ["rules", "validate", str(bad)])
    assert result.exit_code != 0
    assert "x:100:.yaml" in result.output, result.output
    assert "\N{HUNDRED POINTS SYMBOL}" not in result.output
