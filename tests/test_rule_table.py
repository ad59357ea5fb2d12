"""The rule table itself: valid, every rule has examples, and no MLX default silently differs."""
import ast
import inspect
import re
from collections import Counter
from pathlib import Path

import libcst as cst
import pytest

from torch2mlx.table import load_default_table
from torch2mlx.table.loader import default_rule_paths
from torch2mlx.template import _parse_template  # noqa: PLC2701 - testing the template parser's view

RULES = load_default_table()


def test_every_rule_file_contributes_rules():
    paths = default_rule_paths()
    assert paths, "no shipped rule files"
    per_file = Counter(rule.source.rpartition(":")[0] for rule in RULES)
    assert sum(per_file.values()) == len(RULES)
    empty = [p.name for p in paths if not per_file[str(p)]]
    assert not empty, f"rule files with no rules: {empty}"
    assert set(per_file) == {str(p) for p in paths}, "a rule whose source is not a shipped rule file"


def test_rule_ids_are_unique_across_files():
    # the loader rejects a duplicate within one file; across files the later one would shadow the docs entry
    by_id: dict = {}
    for rule in RULES:
        by_id.setdefault(rule.id, []).append(rule.source)
    assert not {i: s for i, s in by_id.items() if len(s) > 1}


def test_counts_match_the_header_of_docs_rules_md():
    header = (Path(__file__).resolve().parents[1] / "docs" / "rules.md").read_text(encoding="utf-8")
    m = re.search(r"^(\d+) rules: (\d+) exact, (\d+) conditional, (\d+) manual\.$", header, re.M)
    assert m, "docs/rules.md has no 'N rules: a exact, b conditional, c manual.' line"
    statuses = Counter(rule.status for rule in RULES)
    assert set(statuses) <= {"exact", "conditional", "manual"}, statuses
    assert [int(g) for g in m.groups()] == [len(RULES), statuses["exact"], statuses["conditional"], statuses["manual"]]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule_has_examples(rule):
    assert rule.examples, f"{rule.source}: rule {rule.id} has no example"
    if rule.status in ("manual", "conditional"):
        assert any(e.flagged for e in rule.examples), f"{rule.id}: a {rule.status} rule needs a flagged example"
    if rule.status != "manual":
        assert any(not e.flagged for e in rule.examples), f"{rule.id}: needs an example that converts"


def _mlx_defaults(target: str) -> dict:
    """Parameter defaults of an MLX function such as `mx.var` or `nn.gelu` (literal ones only)."""
    import mlx.core as mx
    import mlx.nn as nn

    root, _, rest = target.partition(".")
    obj = {"mx": mx, "nn": nn}.get(root)
    for part in rest.split("."):
        obj = getattr(obj, part, None)
    if obj is None:
        return {}
    sig_text = None
    if hasattr(obj, "__nb_signature__"):
        sig_text = obj.__nb_signature__[0][0]
    else:
        try:
            sig = inspect.signature(obj)
        except (TypeError, ValueError):
            return {}
        return {n: p.default for n, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}
    m = re.match(r"def \w+\((.*)\)", sig_text.replace("\n", " "))
    defaults = {}
    if m:
        try:
            fn = ast.parse(f"def f({m.group(1)}): pass").body[0]
        except SyntaxError:
            return {}
        args = fn.args
        pos = args.posonlyargs + args.args
        for a, d in zip(pos[len(pos) - len(args.defaults):], args.defaults):
            defaults[a.arg] = d
        for a, d in zip(args.kwonlyargs, args.kw_defaults):
            if d is not None:
                defaults[a.arg] = d
        defaults = {k: ast.literal_eval(v) for k, v in defaults.items() if _is_literal(v)}
    return defaults


def _is_literal(node):
    try:
        ast.literal_eval(node)
        return True
    except ValueError:
        return False


def _keyword_placeholders(template: str):
    """(callee, mlx keyword, torch parameter) for `kw={param}` arguments of calls in a template."""
    tree = _parse_template(template)
    found = []

    class V(cst.CSTVisitor):
        def visit_Call(self, node):
            chain = []
            f = node.func
            while isinstance(f, cst.Attribute):
                chain.append(f.attr.value)
                f = f.value
            if isinstance(f, cst.Name):
                chain.append(f.value.replace("__t2m_mod_", "").strip("_"))
            callee = ".".join(reversed(chain))
            for a in node.args:
                if a.keyword is not None and isinstance(a.value, cst.Name) and a.value.value.startswith("__t2m_"):
                    found.append((callee, a.keyword.value, a.value.value[len("__t2m_"):]))

    tree.visit(V())
    return found


@pytest.mark.parametrize("rule", [r for r in RULES if r.signature is not None], ids=lambda r: r.id)
def test_defaults_that_differ_are_handled(rule):
    """A torch default that differs from the MLX default must be written or flagged, never dropped."""
    templates = [(v.mlx, {p for p, state in v.when if state == "present"}) for v in rule.variants]
    templates += [(rule.mlx, set())] if rule.mlx else []
    for template, always_present in templates:
        for callee, keyword, param in _keyword_placeholders(template):
            if param in always_present:
                continue  # this variant only runs when the argument was given
            torch_param = rule.signature.get(param)
            if torch_param is None or torch_param.default is None:
                continue
            mlx_defaults = _mlx_defaults(callee)
            if keyword not in mlx_defaults:
                continue
            try:
                torch_default = ast.literal_eval(torch_param.default)
            except ValueError:
                continue
            if torch_default == mlx_defaults[keyword] and type(torch_default) is type(mlx_defaults[keyword]):
                continue
            spec = rule.spec(param)
            assert spec.always_write or spec.unsupported or spec.values or spec.drop, (
                f"{rule.source}: {rule.id}: torch {param}={torch_param.default} but {callee}({keyword}="
                f"{mlx_defaults[keyword]!r}); say always_write, unsupported or values"
            )


def test_default_differs_check_can_fail():
    """The check above catches a var rule that forgets ddof."""
    from torch2mlx.table.loader import load_rule_text

    bad = load_rule_text(
        """
rules:
  - id: bad.var
    function: torch.var
    signature: "input, dim=None, *, correction=1"
    mlx: "mx.var({input}, axis={dim}, ddof={correction})"
    status: exact
    examples: [{torch: "torch.var(x)"}]
""",
        "bad.yaml",
    )[0]
    with pytest.raises(AssertionError, match="ddof"):
        test_defaults_that_differ_are_handled(bad)
