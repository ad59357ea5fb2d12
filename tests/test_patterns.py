"""patterns.py, the typed syntax patterns plugins use instead of `libcst.matchers` (whose import costs
as much CPU as libcst's own, on every run: transform discovery imports every plugin module)."""
import ast
import subprocess
import sys
from pathlib import Path

import libcst as cst
import libcst.matchers as m

from torch2mlx.patterns import find, is_integer, is_name, is_self_attribute

PACKAGE = Path(__file__).resolve().parents[1] / "torch2mlx"
# plugin modules not moved to patterns.py yet (owned by other changes): each entry must still import
# libcst.matchers (the test fails on a stale entry); the start-up gain comes once this set is empty
NOT_MIGRATED: set = set()
CODE = '''
class A(nn.Module):
    def f(self, x=0, y=00):
        self.w = f"{x}" + "s"
        return g(False, None, self.w.t(), x.self)
'''


def test_predicates():
    call = cst.parse_expression("g(False, None, self.w, x.self, 0, 0x0)")
    values = [a.value for a in call.args]
    assert is_name(values[0], "False") and not is_name(values[0], "None") and is_name(values[1])
    assert not is_name(values[2]) and is_self_attribute(values[2], "w") and is_self_attribute(values[2])
    assert not is_self_attribute(values[3]) and not is_self_attribute(values[2], "v")
    assert is_integer(values[4], "0") and not is_integer(values[5], "0") and not is_integer(values[0], "0")


def test_find_is_libcst_findall_in_the_same_order():
    module = cst.parse_module(CODE)
    for matcher, kinds, where in [
        (m.Name(), cst.Name, None),
        (m.Name("self"), cst.Name, lambda n: n.value == "self"),
        (m.SimpleString() | m.FormattedStringText(), (cst.SimpleString, cst.FormattedStringText), None),
        (m.Call(), cst.Call, None),
    ]:
        expected = m.findall(module, matcher)
        assert expected and [id(n) for n in find(module, kinds, where)] == [id(n) for n in expected]
    block = module.body[0].body  # the root is a candidate too
    assert find(block, cst.IndentedBlock)[0] is block and len(find(block, cst.IndentedBlock)) == 2


def _imports_matchers(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [f"{node.module}.{a.name}" for a in node.names] + [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        if any(n == "libcst.matchers" or n.startswith("libcst.matchers.") for n in names):
            return True
    return False


def test_no_module_imports_libcst_matchers():
    using = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if _imports_matchers(p)}
    assert using <= NOT_MIGRATED, f"use torch2mlx.patterns instead of libcst.matchers in: {sorted(using - NOT_MIGRATED)}"
    stale = {p for p in NOT_MIGRATED - using if (PACKAGE / p).exists()}  # (a module still being written may be absent)
    assert not stale, f"migrated: drop from NOT_MIGRATED: {sorted(stale)}"


def test_the_check_sees_each_import_form(tmp_path):
    for line in ("import libcst.matchers as m", "from libcst import matchers", "from libcst.matchers import Name"):
        (tmp_path / "x.py").write_text(line + "\n")
        assert _imports_matchers(tmp_path / "x.py"), line


def test_importing_the_core_loads_no_matchers():
    code = "import sys, torch2mlx.api, torch2mlx.cli; print('libcst.matchers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
