"""Configuration `select` / `ignore` naming a table rule id match the flags that rule made, and no others shown under
the same name (issue 14). `torch.IntTensor(n, 2)` is flagged by the rule `torch.TypedTensor.construct` and
`isinstance(x, torch.LongTensor)` by `torch.TypedTensor`, both shown by the name written; `nn.Linear(..., dtype=)` is
flagged by the call rule `torch.nn.Linear`, a name the group rule `torch.nn.Linear.class` (the class as a value) covers
too. Ignoring `torch.TypedTensor.construct` or `torch.nn.Linear.class` hid all of them (the shown name was looked up
among every group rule covering it); the id of the rule that made a flag now travels with its diagnostic, through the
cache too."""
from __future__ import annotations

import json
import textwrap

from click.testing import CliRunner

from torch2mlx import convert_source
from torch2mlx.cli import main

SOURCE = textwrap.dedent("""
    import torch
    import torch.nn as nn


    def f(x, n):
        a = nn.Linear(3, 4, dtype=torch.float64)
        b = torch.IntTensor(n, 2)
        c = isinstance(x, torch.LongTensor)
        return a, b, c
""")
SHOWN = {"torch.nn.Linear", "torch.IntTensor", "torch.LongTensor"}


def test_the_diagnostic_carries_the_id_of_the_rule_that_made_it():
    result = convert_source(SOURCE, "m.py")
    made = {d.rule_id: d.table_id for d in result.diagnostics if d.severity.value != "info"}
    assert made == {"torch.nn.Linear": "", "torch.IntTensor": "torch.TypedTensor.construct",
                    "torch.LongTensor": "torch.TypedTensor"}


def _reported(tmp_path, config: str, *, cache: bool = False) -> set:
    src = tmp_path / "m.py"
    src.write_text(SOURCE, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(f"[tool.torch2mlx]\n{config}\n", encoding="utf-8")
    report = tmp_path / "r.json"
    args = ["--cache-dir", str(tmp_path / "cache")] if cache else ["--no-cache"]
    run = CliRunner().invoke(main, ["convert", str(src), *args, "--report-json", str(report)])
    assert run.exit_code in (0, 1), run.output
    data = json.loads(report.read_text())
    return {d["rule_id"] for d in data["files"][0]["diagnostics"] if d["severity"] != "info"}


def test_ignore_naming_a_table_id_drops_that_rules_flags_only(tmp_path):
    assert _reported(tmp_path, 'ignore = ["torch.TypedTensor.construct"]') == SHOWN - {"torch.IntTensor"}
    assert _reported(tmp_path, 'ignore = ["torch.nn.Linear.class"]') == SHOWN
    assert _reported(tmp_path, 'ignore = ["torch.TypedTensor"]') == {"torch.nn.Linear"}  # a prefix: both rules
    assert _reported(tmp_path, 'ignore = ["torch.LongTensor"]') == SHOWN - {"torch.LongTensor"}


def test_select_naming_a_table_id_keeps_that_rules_flags_only(tmp_path):
    assert _reported(tmp_path, 'select = ["torch.TypedTensor.construct"]') == {"torch.IntTensor"}
    assert _reported(tmp_path, 'select = ["torch.nn.Linear.class"]') == set()
    assert _reported(tmp_path, 'select = ["torch.nn.Linear"]') == {"torch.nn.Linear"}


def test_a_cached_conversion_selects_the_same(tmp_path):
    for _ in range(2):  # the second run reads the cache the first wrote
        assert _reported(tmp_path, 'ignore = ["torch.TypedTensor.construct"]', cache=True) == SHOWN - {"torch.IntTensor"}
