"""Flags name what the user wrote (issue 14, "no internal names"): a rule that groups several torch names under an id
of the table's own (`torch.nn.BatchNormNd.class`, `torch.nn.recurrent_and_attention.class`, `torch.memory_formats`,
`torch.Tensor.inplace_indexing`) is shown by the name written at the flagged place (`torch.nn.BatchNorm2d`,
`torch.nn.LSTM`, `torch.channels_last`, `torch.Tensor.index_put_`), in the diagnostic and in the `# torch2mlx:` comment.
The configuration's select / ignore and `# torch2mlx: ignore[...]` match both the shown name and the table id, and a
file an earlier version marked with the table id gets no second mark."""
from __future__ import annotations

import json
import textwrap

from click.testing import CliRunner

from torch2mlx import convert_source
from torch2mlx.api import build_index
from torch2mlx.cli import main
from torch2mlx.rewriter import is_group_id

SOURCE = textwrap.dedent("""
    import torch
    import torch.nn as nn


    def check(m):
        return isinstance(m, nn.BatchNorm2d) or isinstance(m, nn.LSTM)


    def update(x: torch.Tensor, i, v):
        x.index_put_((i,), v)
        return x


    fmt = torch.channels_last
""")
SHOWN = {"torch.nn.BatchNorm2d", "torch.nn.LSTM", "torch.Tensor.index_put_", "torch.channels_last"}
TABLE_IDS = ("torch.nn.BatchNormNd.class", "torch.nn.recurrent_and_attention.class", "torch.Tensor.inplace_indexing",
             "torch.memory_formats")


def _warnings(result) -> list:
    return [d for d in result.diagnostics if d.severity.value != "info"]


def test_a_group_rule_is_shown_by_the_name_written_in_the_diagnostic_and_the_comment():
    result = convert_source(SOURCE, "m.py")
    assert {d.rule_id for d in _warnings(result)} == SHOWN
    for shown in SHOWN:
        assert f"# torch2mlx: {shown}: " in result.code
    for table_id in TABLE_IDS:
        assert table_id not in result.code and all(table_id not in d.format() for d in result.diagnostics)
    assert convert_source(result.code, "m.py").code == result.code  # a second conversion adds no mark


def test_the_ids_the_table_groups_under_are_rules_of_several_names():
    index = build_index()
    assert all(is_group_id(index.by_id[i]) for i in TABLE_IDS)
    # a rule named by its one torch name (or by Tensor.<method>) keeps its id
    assert not any(is_group_id(index.by_id[i]) for i in ("torch.nn.Linear", "torch.sum", "Tensor.to"))


def test_a_mark_an_earlier_version_wrote_with_the_table_id_is_not_written_again():
    marked = convert_source(SOURCE, "m.py").code.replace("# torch2mlx: torch.nn.BatchNorm2d:",
                                                          "# torch2mlx: torch.nn.BatchNormNd.class:")
    again = convert_source(marked, "m.py")
    assert again.code == marked
    assert "torch.nn.BatchNorm2d" in {d.rule_id for d in _warnings(again)}


def test_an_ignore_comment_matches_the_shown_name_and_the_table_id():
    for suppress in ("torch.nn.BatchNorm2d", "torch.nn.BatchNormNd.class"):
        source = SOURCE.replace("    return isinstance(m, nn.BatchNorm2d)",
                                f"    # torch2mlx: ignore[{suppress}]\n    return isinstance(m, nn.BatchNorm2d)")
        result = convert_source(source, "m.py")
        assert "torch.nn.BatchNorm2d" not in {d.rule_id for d in result.diagnostics}, suppress
        assert "torch.nn.LSTM" in {d.rule_id for d in result.diagnostics}  # ignore[...] names one rule


def test_configuration_select_and_ignore_match_the_shown_name_and_the_table_id(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(SOURCE, encoding="utf-8")
    cli = CliRunner()

    def reported(config: str) -> set:
        (tmp_path / "pyproject.toml").write_text(f"[tool.torch2mlx]\n{config}\n", encoding="utf-8")
        report = tmp_path / "r.json"
        run = cli.invoke(main, ["convert", str(src), "--no-cache", "--report-json", str(report)])
        assert run.exit_code in (0, 1), run.output
        data = json.loads(report.read_text())
        return {d["rule_id"] for d in data["files"][0]["diagnostics"] if d["severity"] != "info"}

    assert reported('ignore = ["torch.nn.BatchNormNd.class", "torch.memory_formats"]') == \
        SHOWN - {"torch.nn.BatchNorm2d", "torch.channels_last"}
    assert reported('ignore = ["torch.nn.LSTM"]') == SHOWN - {"torch.nn.LSTM"}
    assert reported('select = ["torch.nn.recurrent_and_attention.class", "torch.channels_last"]') == \
        {"torch.nn.LSTM", "torch.channels_last"}
