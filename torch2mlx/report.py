"""Summaries of a run: rich tables for people, JSON for machines. Built from `runner.FileOutcome`s only.

Everything user-controlled (paths, messages, rule ids) is printed as rich `Text`, never as
markup: a path such as `model:100:[b].py` shows as written (no markup, no emoji codes).
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

from rich.console import Console
from rich.table import Table
from rich.text import Text


STATUSES = ("converted", "flagged", "unchanged", "copied", "failed", "internal-error", "skipped")
WHERE_SHOWN = 5  # locations listed per untranslated API


def run_report(outcomes: Iterable, mode: str = "output") -> dict:
    """Aggregate runner FileOutcomes: per-status counts, untranslated APIs with where, per-file detail."""
    outcomes = sorted(outcomes, key=lambda o: o.path)
    counts = Counter(o.status for o in outcomes)
    untranslated: dict = {}
    files = []
    for o in outcomes:
        for d in o.diagnostics:
            if d.severity.value == "info":
                continue
            row = untranslated.setdefault(d.rule_id, {"rule_id": d.rule_id, "count": 0, "files": set(), "where": []})
            row["count"] += 1
            row["files"].add(o.path)
            if len(row["where"]) < WHERE_SHOWN:
                row["where"].append(d.location)
        files.append({
            "path": o.path,
            "status": o.status,
            "changed": o.changed,
            "cached": o.cached,
            "lines": o.lines,
            "converted": o.converted,
            "flagged": o.flagged,
            "ignored": o.ignored,
            "error": o.error or None,
            "error_line": o.error_line or None,
            "error_column": o.error_column or None,
            "changed_lines": list(o.changed_lines),
            "diagnostics": [d.to_json() for d in o.diagnostics],
        })
    top = sorted(untranslated.values(), key=lambda r: (-r["count"], r["rule_id"]))
    return {
        "mode": mode,
        "summary": {
            "files": len(outcomes),
            "by_status": {status: counts.get(status, 0) for status in STATUSES},
            "cached": sum(1 for o in outcomes if o.cached),
            "lines": sum(o.lines for o in outcomes),
            "converted": sum(o.converted for o in outcomes),  # torch API uses
            "flagged": sum(o.flagged for o in outcomes),
            "ignored": sum(o.ignored for o in outcomes),  # dropped by the configuration's select / ignore
        },
        "untranslated": [{**r, "files": len(r["files"])} for r in top],
        "files": files,
    }


def _where(path: str, line=0, column=0) -> str:
    return f"{path}:{line}:{column}" if line and column else f"{path}:{line}" if line else path


def _print(console: Console, *parts) -> None:
    """One line, unwrapped (file:line:col stays clickable); str parts are plain text, (text, style) pairs styled."""
    console.print(Text.assemble(*parts), soft_wrap=True, highlight=False)


_NAMED = re.compile(r"\([^()]*\)|`[^`]*`")


def _listed(diagnostics: list) -> list:
    """The diagnostics of one file as listed: each warning on its own line (each asks for an action); an info
    note (an assumption made) once per rule and wording, with the lines where it was made again (a class's
    `forward` arguments taken to be tensors, in every class of the file), as (diagnostic, [more lines])."""
    listed: list = []
    first: dict = {}
    for d in diagnostics:
        if d["severity"] != "info":
            listed.append((d, []))
            continue
        key = (d["rule_id"], _NAMED.sub("()", d["message"]))
        if key in first:
            first[key].append(d["line"])
        else:
            first[key] = []
            listed.append((d, first[key]))
    return listed


def print_run_diagnostics(report: dict, console: Console, *, listing: bool = True, errors_only: bool = False) -> None:
    """One line per problem: files that could not be converted always; with `listing`, also skipped
    files and every diagnostic; in check mode, each file that would be rewritten. `errors_only`
    (--quiet): only the files that could not be converted."""
    crashed = 0
    for f in report["files"]:
        if f["error"] and (f["status"] != "skipped" or (listing and not errors_only)):
            crashed += f["status"] == "internal-error"
            colour = "red" if f["status"] != "skipped" else "dim"
            _print(console, "  ", _where(f["path"], f["error_line"] or 0, f.get("error_column") or 0), ": ",
                   (f["status"], colour), ": ", f["error"].splitlines()[0])
        if errors_only:
            continue
        if report["mode"] == "check" and f["changed"]:
            lines = ", ".join(str(n) for n in f["changed_lines"][:10])
            _print(console, "  ", f"{f['path']}:{f['changed_lines'][0] if f['changed_lines'] else 1}", ": ",
                   ("would be rewritten", "yellow"), f" ({f['converted']} torch API use(s) translatable; lines {lines})")
        if listing:
            for d, more in _listed(f["diagnostics"]):
                colour = "dim" if d["severity"] == "info" else "yellow"
                also = f" (the same note at {len(more)} more place(s) of this file: line {', '.join(map(str, more[:8]))}" \
                       f"{', ...' if len(more) > 8 else ''})" if more else ""
                _print(console, "  ", _where(d["path"], d["line"], d["column"]), ": ",
                       (f"{d['severity']}: {d['rule_id']}", colour), ": ", d["message"], also)
    if crashed:
        _print(console, ("internal error", "red"), f" in {crashed} file(s): a bug in torch2mlx; please report it "
                                                   "with the file (the other files were converted)")


def print_run_summary(report: dict, console: Console, top: int = 15) -> None:
    """A table of files by status (several files), the headline, and the top untranslated APIs."""
    s = report["summary"]
    n = s["by_status"]
    if s["files"] != 1:
        table = Table(title="torch2mlx run", show_edge=False)
        for column in ("files", "converted", "flagged", "unchanged", "failed", "crashed", "cache hits"):
            table.add_column(column, justify="right")
        table.add_row(str(s["files"]), str(n["converted"]), str(n["flagged"]), str(n["unchanged"]),
                      str(n["failed"]), str(n["internal-error"]), str(s["cached"]))
        console.print(table)
    style = "green" if s["flagged"] == 0 and not n["failed"] and not n["internal-error"] else "yellow"
    ignored = f", {s['ignored']} diagnostic(s) not reported (select/ignore)" if s.get("ignored") else ""
    _print(console, ("torch2mlx:", style), f" {s['converted']} torch API uses converted, {s['flagged']} left in place "
                                          f"(flagged) in {s['files']} file(s){ignored}")
    if report["untranslated"]:
        left = Table(title=f"Top untranslated APIs (of {len(report['untranslated'])})", show_edge=False)
        left.add_column("torch API")
        left.add_column("count", justify="right")
        left.add_column("files", justify="right")
        left.add_column("first seen", overflow="fold")
        for row in report["untranslated"][:top]:
            left.add_row(Text(row["rule_id"]), str(row["count"]), str(row["files"]), Text(row["where"][0]))
        console.print(left)


def _link(path: str, line: int, base: Path) -> str:
    target = os.path.relpath(os.path.abspath(path), os.path.abspath(base)).replace(os.sep, "/")
    return f"{target}#L{line}" if line else target


def markdown(report: dict, base: Path = Path(".")) -> str:
    """A review document: headline numbers, what is left by API, then per file what was done and what is left."""
    s = report["summary"]
    n = s["by_status"]
    out = ["# torch2mlx migration report", ""]
    out.append(f"{s['files']} files: {n['converted']} converted, {n['flagged']} converted with items left, "
               f"{n['unchanged']} unchanged, {n['failed']} failed, {n['internal-error']} internal errors, "
               f"{n['skipped']} skipped. {s['converted']} torch API uses converted, {s['flagged']} left in place.")
    if s.get("ignored"):
        out[-1] += (f" {s['ignored']} diagnostic(s) not reported (the configuration's select/ignore; "
                    "their `# torch2mlx:` comments stay in the code).")
    out.append("")
    if report["untranslated"]:
        out += ["## What is left, by API", "", "| torch API | count | files | first occurrences |", "|---|---:|---:|---|"]
        for row in report["untranslated"]:
            where = ", ".join(f"[{w}]({_link(w.rsplit(':', 2)[0], int(w.rsplit(':', 2)[1]), base)})" for w in row["where"])
            out.append(f"| `{row['rule_id']}` | {row['count']} | {row['files']} | {where} |")
        out.append("")
    out += ["## Files", ""]
    for f in report["files"]:
        if f["status"] in ("unchanged", "copied"):
            continue
        out.append(f"### [{f['path']}]({_link(f['path'], 0, base)}): {f['status']}")
        out.append("")
        if f["error"]:
            line = f["error_line"] or 0
            first = f["error"].splitlines()[0]
            out.append(f"- {first} ([line {line}]({_link(f['path'], line, base)}))" if line else f"- {first}")
        else:
            out.append(f"- done: {f['converted']} torch API use(s) converted")
            out.append(f"- left: {f['flagged']} item(s)")
        for d in f["diagnostics"]:
            out.append(f"  - [line {d['line']}]({_link(f['path'], d['line'], base)}) `{d['rule_id']}` ({d['kind']}): {d['message']}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def html(report: dict, base: Path = Path(".")) -> str:
    """The same content as `markdown`, as a standalone HTML page."""
    import html as h
    import re

    body: list[str] = []
    open_block = ""  # "table" or "ul" while one is open

    def block(kind: str) -> None:
        nonlocal open_block
        if open_block != kind:
            if open_block:
                body.append(f"</{open_block}>")
            if kind:
                body.append(f"<{kind}>")
            open_block = kind

    for line in markdown(report, base).splitlines():
        text = h.escape(line, quote=False)
        text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', text)
        text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
        if line.startswith("|---"):
            continue
        if line.startswith("| "):
            block("table")
            tag = "th" if line.startswith("| torch API |") else "td"
            cells = [c.strip() for c in text.strip("|").split(" | ")]
            body.append("<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>")
        elif line.lstrip().startswith("- "):
            block("ul")
            body.append(f"<li>{text.lstrip()[2:]}</li>")
        else:
            block("")
            level = len(line) - len(line.lstrip("#"))
            if 1 <= level <= 3 and line[level:level + 1] == " ":
                body.append(f"<h{level}>{text[level + 1:]}</h{level}>")
            elif line:
                body.append(f"<p>{text}</p>")
    block("")
    page = "\n".join(body)
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>torch2mlx migration report</title></head>\n"
            f"<body>\n{page}\n</body></html>\n")


def write_report(report: dict, path: Path) -> None:
    """Markdown, or HTML when the file name ends in .html/.htm."""
    from torch2mlx.fileio import write_atomic

    path = Path(path)
    render = html if path.suffix.lower() in (".html", ".htm") else markdown
    write_atomic(path, render(report, path.parent))
