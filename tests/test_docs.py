"""Generated docs are up to date; the CLI reference names every command."""
import subprocess
import sys
from pathlib import Path

from torch2mlx.docgen import generate

ROOT = Path(__file__).resolve().parents[1]


def test_rules_md_is_not_stale():
    committed = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    assert committed == generate(), "docs/rules.md is stale: run `torch2mlx rules docs -o docs/rules.md`"


def test_every_rule_is_documented():
    from torch2mlx.table import load_default_table

    text = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    missing = [r.id for r in load_default_table() if f"### `{r.id}`" not in text]
    assert not missing


def test_docgen_module_entry_point(tmp_path):
    out = tmp_path / "rules.md"
    subprocess.run([sys.executable, "-m", "torch2mlx.docgen", str(out)], check=True, cwd=ROOT)
    assert out.read_text(encoding="utf-8") == generate()


def test_cli_md_names_every_command():
    from torch2mlx.cli import main

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for name, command in main.commands.items():
        assert f"torch2mlx {name}" in text
        for sub in getattr(command, "commands", {}):
            assert f"torch2mlx {name} {sub}" in text
