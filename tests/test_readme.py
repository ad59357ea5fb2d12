"""README's commands are the ones CI runs, and the wheel ships the rule table."""
import subprocess
import sys
import zipfile
from pathlib import Path


ROOT = Path(__file__).parent.parent


def test_ci_runs_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    setup = 'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/torch2mlx convert examples/attention.py'
    test = ".venv/bin/python -m pytest -q"
    lint = ".venv/bin/ruff check torch2mlx tests bench"
    idempotence = ".venv/bin/python -m pytest -q -m slow -n 2 tests/test_idempotence_real.py -k torch_files_up_to"
    for command in (setup, lint, test, idempotence):
        assert f"\n{command}\n" in readme
        assert f"\n{command}\n" in ci
    assert ci.index(lint) < ci.index(test), "lint runs before the tests"
    assert ci.index(test) < ci.index(idempotence), "the real-code idempotence sample runs after the suite"


def test_bundled_example_converts_cleanly():
    from torch2mlx import convert_source

    result = convert_source((ROOT / "examples" / "attention.py").read_text())
    assert not [d for d in result.diagnostics if d.severity.value != "info"]


def test_wheel_contains_rule_table(tmp_path):
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("torch2mlx-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).name for n in names if n.startswith("torch2mlx/rules/") and n.endswith(".yaml")}
    assert shipped == {p.name for p in (ROOT / "rules").glob("*.yaml")}
