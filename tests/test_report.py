"""Run reports: aggregate numbers, Markdown/HTML with line links, JSON, SARIF 2.1.0 structure."""
import json

import jsonschema
import pytest
from click.testing import CliRunner

from torch2mlx.cli import main
from torch2mlx.diagnostics import Diagnostic, Kind, Severity
from torch2mlx.report import html, markdown, run_report
from torch2mlx.runner import FileOutcome
from torch2mlx.sarif import sarif

# The parts of the SARIF 2.1.0 schema (docs.oasis-open.org/sarif/sarif/v2.1.0) that every
# consumer relies on: required properties, the version constant, level values, 1-based regions.
SARIF_CORE_SCHEMA = {
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "version": {"const": "2.1.0"},
        "$schema": {"type": "string", "format": "uri"},
        "runs": {"type": "array", "items": {
            "type": "object",
            "required": ["tool"],
            "properties": {
                "tool": {"type": "object", "required": ["driver"], "properties": {"driver": {
                    "type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string"}, "rules": {"type": "array", "items": {
                        "type": "object", "required": ["id"]}}}}}},
                "results": {"type": "array", "items": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {
                        "ruleId": {"type": "string"},
                        "level": {"enum": ["none", "note", "warning", "error"]},
                        "message": {"type": "object", "anyOf": [{"required": ["text"]}, {"required": ["id"]}]},
                        "locations": {"type": "array", "items": {"type": "object", "properties": {
                            "physicalLocation": {"type": "object", "properties": {
                                "artifactLocation": {"type": "object", "properties": {"uri": {"type": "string"}}},
                                "region": {"type": "object", "properties": {
                                    "startLine": {"type": "integer", "minimum": 1},
                                    "startColumn": {"type": "integer", "minimum": 1}}}}}}}},
                    }}},
            }}},
    },
}


def _diag(path, line, rule="torch.Tensor.view"):
    return Diagnostic(rule, Kind.UNKNOWN_RECEIVER, Severity.WARNING, "receiver type unknown", path, line, 5)


@pytest.fixture
def report():
    outcomes = [
        FileOutcome("src/a.py", "flagged", (_diag("src/a.py", 3), _diag("src/a.py", 9)), converted=4, changed=True, lines=20),
        FileOutcome("src/b.py", "converted", converted=2, changed=True, cached=True, lines=10),
        FileOutcome("src/c.py", "unchanged", lines=5),
        FileOutcome("src/bad.py", "failed", error="syntax error: '(' was never closed", error_line=2),
        FileOutcome("src/d.py", "flagged", (_diag("src/d.py", 1, "torch.nn.Buffer"),), converted=1, changed=True),
    ]
    return run_report(outcomes, "output")


def test_run_report_counts(report):
    s = report["summary"]
    n = s["by_status"]
    assert (s["files"], n["converted"], n["flagged"], n["unchanged"], n["failed"], s["cached"]) == (5, 1, 2, 1, 1, 1)
    assert (s["converted"], s["flagged"], s["lines"]) == (7, 3, 35)
    top = report["untranslated"][0]
    assert (top["rule_id"], top["count"], top["files"]) == ("torch.Tensor.view", 2, 1)
    assert top["where"] == ["src/a.py:3:5", "src/a.py:9:5"]


def test_markdown_per_file_with_line_links(report, tmp_path):
    md = markdown(report, tmp_path / "reports")
    assert "## What is left, by API" in md
    assert "### [src/a.py](" in md and "- done: 4 torch API use(s) converted" in md and "- left: 2 item(s)" in md
    assert "#L9) `torch.Tensor.view`" in md
    assert "syntax error" in md and "#L2)" in md
    assert "src/c.py" not in md  # nothing to review in an unchanged file


def test_markdown_links_point_at_the_file(report, tmp_path):
    import os

    md = markdown(report, tmp_path)
    expected = os.path.relpath(os.path.abspath("src/a.py"), tmp_path).replace(os.sep, "/")
    assert f"]({expected}#L3)" in md


def test_html_is_a_page_with_links(report, tmp_path):
    page = html(report, tmp_path)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert '<a href="' in page and "#L3" in page and "<table>" in page and "</table>" in page
    assert "<code>torch.Tensor.view</code>" in page


def test_sarif_structure(report):
    doc = sarif(report)
    jsonschema.Draft7Validator(SARIF_CORE_SCHEMA).validate(doc)
    results = doc["runs"][0]["results"]
    assert len(results) == 4  # three diagnostics and one bad file
    bad = [r for r in results if r["ruleId"] == "bad-input"][0]
    assert bad["level"] == "error" and bad["locations"][0]["physicalLocation"]["region"] == {"startLine": 2}
    view = [r for r in results if r["ruleId"] == "torch.Tensor.view"][0]
    assert view["locations"][0]["physicalLocation"] == {"artifactLocation": {"uri": "src/a.py"}, "region": {"startLine": 3, "startColumn": 5}}
    rule_ids = {r["id"] for r in doc["runs"][0]["tool"]["driver"]["rules"]}
    assert {r["ruleId"] for r in results} <= rule_ids


def test_sarif_schema_rejects_bad_documents():
    """The structural check can fail: a 0 line or a missing version is caught."""
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"runs": []}, SARIF_CORE_SCHEMA)
    bad = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [
        {"message": {"text": "m"}, "locations": [{"physicalLocation": {"region": {"startLine": 0}}}]}]}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SARIF_CORE_SCHEMA)


def test_cli_writes_all_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH2MLX_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("import torch\n\n\ndef f(a):\n    return a.sum()\n")
    (src / "b.py").write_text("import torch\ny = torch.exp(x)\n")
    args = ["convert", str(src), "--check", "--report", str(tmp_path / "r.md"), "--report-json", str(tmp_path / "r.json"),
            "--sarif", str(tmp_path / "r.sarif")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output
    assert "Top untranslated APIs" in r.stderr and "torch.sum" in r.stderr
    assert "a.py#L5" in (tmp_path / "r.md").read_text()
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["flagged"] == 1
    jsonschema.validate(json.loads((tmp_path / "r.sarif").read_text()), SARIF_CORE_SCHEMA)
    r = CliRunner().invoke(main, args[:-6] + ["--report", str(tmp_path / "r.html")])
    assert "<!DOCTYPE html>" in (tmp_path / "r.html").read_text()
