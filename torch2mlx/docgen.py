"""Generate the mapping reference `docs/rules.md` from the YAML rule table.

Run `torch2mlx rules docs -o docs/rules.md` (or `python -m torch2mlx.docgen docs/rules.md`)
after editing `rules/`; tests/test_docs.py fails when the committed page is stale. The
page is a pure function of the rule files: same table, same bytes.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import yaml

from torch2mlx.table.loader import default_rule_paths, load_rule_files
from torch2mlx.table.model import Rule

HEADER = """# Rule reference

<!-- Generated from rules/*.yaml by `torch2mlx rules docs -o docs/rules.md`. Do not edit by hand. -->

Every entry maps one torch API to MLX. **exact**: always rewritten. **conditional**:
rewritten only when the stated condition can be proven from the source, otherwise left
in place with a `# torch2mlx:` comment. **manual**: never rewritten, always flagged with
the reason. The examples are the rule's tests: each is run under torch and MLX.
"""


def _code(text: str) -> str:
    """Inline code safe inside a Markdown table cell."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}"


def _rule_section(rule: Rule) -> list[str]:
    out = [f"### `{rule.id}`", ""]
    facts = [f"Status: **{rule.status}**"]
    others = [f for f in rule.functions if f != rule.id]
    if others:
        facts.append("also " + ", ".join(_code(f) for f in others))
    if rule.methods:
        facts.append("tensor method " + ", ".join(_code(f".{m}()") for m in rule.methods))
    if rule.attributes:
        facts.append("tensor attribute " + ", ".join(_code(f".{a}") for a in rule.attributes))
    if rule.values:
        facts.append("value " + ", ".join(_code(v) for v in rule.values))
    out.append("; ".join(facts) + ".")
    out.append("")
    if rule.signature is not None:
        out.append(f"- torch signature: {_code(rule.signature.text)}")
    if rule.mlx:
        out.append(f"- MLX: {_code(rule.mlx)}")
    for variant in rule.variants:
        when = ", ".join(f"{k}={v}" for k, v in variant.when)
        out.append(f"- MLX when {_code(when)}: {_code(variant.mlx)}")
    if rule.handler:
        out.append(f"- handled by: {_code(rule.handler)}")
    for label, value in (("condition", rule.condition), ("assumes", rule.assumes), ("why", rule.why), ("notes", rule.notes)):
        if value:
            out.append(f"- {label}: {' '.join(str(value).split())}")
    for name, spec in sorted(rule.params.items()):
        if spec.unsupported:
            out.append(f"- `{name}=` not supported: {spec.unsupported}")
    if rule.examples:
        out += ["", "| PyTorch | MLX |", "|---|---|"]
        for ex in rule.examples:
            result = "left in place, flagged" if ex.flagged else _code(ex.mlx) if ex.mlx else "(unchanged)"
            out.append(f"| {_code(ex.torch)} | {result} |")
    out.append("")
    return out


def generate(paths: Sequence[Path] = ()) -> str:
    paths = list(paths) or default_rule_paths()
    per_file = [(p, load_rule_files([p])) for p in paths]
    all_rules = [r for _, rules in per_file for r in rules]
    counts = {s: sum(1 for r in all_rules if r.status == s) for s in ("exact", "conditional", "manual")}
    out = [HEADER, f"{len(all_rules)} rules: {counts['exact']} exact, {counts['conditional']} conditional, "
                   f"{counts['manual']} manual.", "", "## Contents", ""]
    for path, rules in per_file:
        out.append(f"- [{path.name}](#{path.name.replace('.', '')}) ({len(rules)} rules)")
    out.append("")
    for path, rules in per_file:
        description = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("description", "")
        out += [f"## {path.name}", ""]
        if description:
            out += [" ".join(str(description).split()), ""]
        out += ["| torch | status | MLX |", "|---|---|---|"]
        for rule in rules:
            target = _code(rule.mlx) if rule.mlx else "(variants)" if rule.variants else "—"
            out.append(f"| {_code(rule.id)} | {rule.status} | {target} |")
        out.append("")
        for rule in rules:
            out += _rule_section(rule)
    return "\n".join(out).rstrip() + "\n"


def main(argv: Sequence[str] = ()) -> None:
    argv = list(argv) or sys.argv[1:]
    text = generate()
    if argv:
        Path(argv[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":  # pragma: no cover
    main()
