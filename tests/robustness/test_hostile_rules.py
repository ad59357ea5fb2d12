"""Malformed and hostile rule files: errors name file:line; YAML is loaded safely; templates are inert."""
from __future__ import annotations

import pytest

from torch2mlx import convert_source
from torch2mlx.api import build_index
from torch2mlx.table import RuleError
from torch2mlx.table.loader import load_rule_text

ENTRY = """rules:
  - id: torch.mything
    function: torch.mything
    signature: "input"
    mlx: {mlx}
    status: exact
    examples:
      - {{torch: "torch.mything(x)", mlx: "mx.abs(x)"}}
"""


def test_schema_error_names_file_and_line():
    text = ("rules:\n  - id: torch.a\n    value: torch.a\n    mlx: mx.a\n    status: exact\n    examples: []\n"
            "  - id: torch.b\n    value: torch.b\n    mlx: mx.b\n    status: sometimes\n    examples: []\n")
    with pytest.raises(RuleError, match=r"^mine.yaml:7: rule 'torch.b':"):
        load_rule_text(text, "mine.yaml")


def test_yaml_syntax_error_names_line():
    with pytest.raises(RuleError, match=r"^mine.yaml:3: not valid YAML"):
        load_rule_text("rules:\n  - id: x\n  bad: [\n", "mine.yaml")


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['touch /tmp/t2m_pwned']",
                                 "!!python/object:collections.OrderedDict {}",
                                 "!!python/name:os.system"])
def test_python_object_tags_are_rejected(tag, tmp_path):
    with pytest.raises(RuleError, match="not valid YAML"):
        load_rule_text(f"rules:\n  - id: {tag}\n", "evil.yaml")


def test_malicious_looking_template_is_inert(tmp_path):
    """A template is parsed with libcst and only substituted into: it is never run or imported."""
    marker = tmp_path / "pwned"
    evil = f'"__import__(\'os\').system(\'touch {marker}\') or mx.abs({{input}})"'
    rule_file = tmp_path / "evil.yaml"
    rule_file.write_text(ENTRY.format(mlx=evil))
    index = build_index((rule_file,))
    result = convert_source("import torch\ny = torch.mything(x)\n", index=index)
    assert not marker.exists()
    assert "system" in result.code  # the text is only pasted in, as written
    assert not marker.exists()


@pytest.mark.parametrize("template", [
    '"mx.abs({input}"',
    '"mx.abs({input}) ; import os"',
    '"{input}.__class__({nope})"', '"lambda: (yield)"'])
def test_broken_or_odd_templates_never_crash(template, tmp_path):
    rule_file = tmp_path / "odd.yaml"
    rule_file.write_text(ENTRY.format(mlx=template))
    try:
        index = build_index((rule_file,))
        result = convert_source("import torch\ny = torch.mything(x)\n", index=index)
    except RuleError as exc:
        assert "odd.yaml" in str(exc)
    else:
        compile(result.code, "<out>", "exec")


def test_not_a_mapping_rule_file():
    with pytest.raises(RuleError, match="bad.yaml"):
        load_rule_text("- just\n- a list\n", "bad.yaml")
