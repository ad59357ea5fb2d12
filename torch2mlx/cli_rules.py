"""`torch2mlx rules ...`: list, show, validate and document the rule table; measure coverage of a code base."""
from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import Optional

import click
from rich.console import Console
from rich.markup import escape  # with emoji=False on every console: `file.py:100:` stays text

from torch2mlx.api import build_index
from torch2mlx.table import RuleError, load_rule_files
from torch2mlx.table.model import Rule

EXIT_OK, EXIT_FOUND, EXIT_BAD_INPUT = 0, 1, 2


def _index(console: Console, rule_files):
    try:
        return build_index(tuple(rule_files))
    except RuleError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise click.exceptions.Exit(EXIT_BAD_INPUT)


def _stdout() -> Console:
    """Wide when piped, so ids and file:line are never cut."""
    return Console(emoji=False) if sys.stdout.isatty() else Console(width=220, emoji=False)


def _target(rule: Rule) -> str:
    return rule.mlx or ("(variants)" if rule.variants else f"handler {rule.handler}" if rule.handler else "—")


@click.group("rules")
def rules_group() -> None:
    """Inspect the rule table: list, show, validate, coverage of a code base, docs."""


@rules_group.command("list")
@click.argument("pattern", required=False, default="")
@click.option("--status", type=click.Choice(["exact", "conditional", "manual"]), help="Only rules with this status.")
@click.option("--rules", "rule_files", multiple=True, type=click.Path(path_type=Path), help="Extra YAML rule file. Repeatable.")
def list_rules(pattern: str, status: Optional[str], rule_files) -> None:
    """List rules whose id, torch names or MLX target contain PATTERN."""
    from rich.table import Table

    out = _stdout()
    index = _index(Console(stderr=True, emoji=False), rule_files)
    table = Table(show_edge=False)
    for column in ("id", "status", "MLX", "defined at"):
        table.add_column(column)
    shown = 0
    for rule in sorted(index.by_id.values(), key=lambda r: r.id):
        haystack = " ".join((rule.id, *rule.functions, *rule.methods, *rule.values, rule.mlx or ""))
        if pattern.lower() not in haystack.lower() or (status and rule.status != status):
            continue
        table.add_row(escape(rule.id), rule.status, escape(_target(rule)), escape(Path(rule.source).name))
        shown += 1
    out.print(table)
    out.print(f"{shown} of {len(index)} rules", highlight=False)


@rules_group.command("show")
@click.argument("name")
@click.option("--rules", "rule_files", multiple=True, type=click.Path(path_type=Path), help="Extra YAML rule file. Repeatable.")
def show_rule(name: str, rule_files) -> None:
    """Show one rule: by id, by any torch name it matches (the usual aliases too: F.softmax, nn.Conv2d,
    torch.nn.functional.relu), or by tensor method (Tensor.view, x.view, .view).

    \b
    Examples:
      torch2mlx rules show F.softmax
      torch2mlx rules show nn.Conv2d
      torch2mlx rules show Tensor.view
    """
    out, err = _stdout(), Console(stderr=True, emoji=False)
    index = _index(err, rule_files)
    rule = find_rule(index, name)
    if rule is None:
        close = suggestions(index, name)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        err.print(f"[red]error:[/] no rule for {escape(name)}{escape(hint)}", highlight=False)
        raise click.exceptions.Exit(EXIT_BAD_INPUT)
    from torch2mlx.docgen import _rule_section

    out.print("\n".join(_rule_section(rule)), markup=False, highlight=False)
    out.print(f"defined at: {rule.source}", markup=False, highlight=False)


# what users write for torch's namespaces (the imports `import torch.nn.functional as F` & co bind)
_ALIASES = (("F.", "torch.nn.functional."), ("nn.functional.", "torch.nn.functional."), ("nn.init.", "torch.nn.init."),
            ("nn.", "torch.nn."), ("optim.", "torch.optim."), ("linalg.", "torch.linalg."), ("fft.", "torch.fft."),
            ("special.", "torch.special."), ("th.", "torch."))


def _spellings(name: str) -> list:
    """`name` and the fully qualified names it may stand for."""
    found = [name]
    for short, full in _ALIASES:
        if name.startswith(short):
            found.append(full + name[len(short):])
    if not name.startswith("torch.") and "." not in name.rstrip("."):
        found.append("torch." + name)
    return found


def _method_name(name: str) -> Optional[str]:
    """`view` of `Tensor.view`, `torch.Tensor.view`, `x.view`, `.view`, `x.view()`."""
    name = name.removesuffix("()")
    if name.startswith(("torch.Tensor.", "Tensor.", ".")) or (name.count(".") == 1 and not name.startswith("torch.")):
        return name.rsplit(".", 1)[1] or None
    return None


def find_rule(index, name: str) -> Optional[Rule]:
    """The rule `name` refers to: a rule id, a (possibly aliased) torch name, or a tensor method."""
    name = name.strip()
    for spelling in _spellings(name.removesuffix("()")):
        rule = index.by_id.get(spelling) or index.function(spelling) or index.value(spelling)
        if rule is not None:
            return rule
    method = _method_name(name)
    if method is not None:
        return index.method(method) or index.attribute(method)
    return index.method(name) if name.isidentifier() else None


def suggestions(index, name: str, n: int = 3) -> list:
    """Up to `n` distinct close matches among rule ids and torch names, for the spellings of `name`."""
    names = sorted({*index.by_id, *index.functions})
    found: list = []
    for spelling in _spellings(name):
        for match in difflib.get_close_matches(spelling, names, n=n):
            if match not in found:
                found.append(match)
    return found[:n]


@rules_group.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate_rules(files) -> None:
    """Check rule files against the schema; errors name file:line. Exit 2 on the first bad file."""
    out, err = _stdout(), Console(stderr=True, emoji=False)
    shipped = build_index()
    worst = EXIT_OK
    for path in files:
        try:
            rules = load_rule_files([path])
        except RuleError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            worst = EXIT_BAD_INPUT
            continue
        overrides = [r.id for r in rules if r.id in shipped.by_id]
        note = f" ({len(overrides)} override shipped rules: {', '.join(overrides[:5])})" if overrides else ""
        out.print(f"{escape(str(path))}: ok, {len(rules)} rules{escape(note)}", highlight=False, soft_wrap=True)
    raise click.exceptions.Exit(worst)


@rules_group.command("coverage")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--exclude", "excludes", multiple=True, metavar="GLOB", help="Skip paths matching this pattern. Repeatable.")
@click.option("--rules", "rule_files", multiple=True, type=click.Path(path_type=Path), help="Extra YAML rule file. Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--top", type=int, default=30, help="Rows shown per table.")
def coverage_cmd(paths, excludes, rule_files, as_json: bool, top: int) -> None:
    """Which torch APIs used under PATHS have rules, which are flagged, which are unknown."""
    from rich.table import Table

    from torch2mlx import coverage, runner

    out, err = _stdout(), Console(stderr=True, emoji=False)
    index = _index(err, rule_files)
    jobs, _ = runner.discover(list(paths), excludes)
    uses, problems = coverage.scan([j.source for j in jobs if j.source.suffix == ".py"], index)
    for problem in problems:
        err.print(f"[yellow]skipped:[/] {escape(problem)}", highlight=False, soft_wrap=True)
    by_category = {c: sorted((u for u in uses.values() if u.category == c), key=lambda u: (-u.count, u.name))
                   for c in coverage.CATEGORIES}
    if as_json:
        data = {c: [{"api": u.name, "count": u.count, "where": u.where} for u in rows] for c, rows in by_category.items()}
        sys.stdout.write(json.dumps({"files": len(jobs), "unreadable": problems, **data}, indent=2) + "\n")
        return
    titles = {"rule": "Translated exactly", "conditional": "Translated when a condition is proven",
              "flagged": "Known, never translated (manual)", "unknown": "No rule (left in place)"}
    for category in coverage.CATEGORIES:
        rows = by_category[category]
        table = Table(title=f"{titles[category]}: {len(rows)} APIs, {sum(u.count for u in rows)} uses", show_edge=False)
        for column in ("torch API", "uses", "first seen"):
            table.add_column(column)
        for use in rows[:top]:
            table.add_row(escape(use.name), str(use.count), escape(use.where[0]))
        out.print(table)
    known = sum(u.count for u in uses.values() if u.category in ("rule", "conditional"))
    total = sum(u.count for u in uses.values())
    out.print(f"{len(jobs)} files; {known} of {total} torch API references have a translating rule", highlight=False)


@rules_group.command("docs")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write here (default: stdout).")
def docs_cmd(output: Optional[Path]) -> None:
    """Generate the rule reference (docs/rules.md) from the rule table."""
    from torch2mlx.docgen import generate
    from torch2mlx.fileio import write_atomic

    text = generate()
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomic(output, text)
