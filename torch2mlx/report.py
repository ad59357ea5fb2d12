"""Summaries of a run: rich tables for people, JSON for machines. Built from diagnostics only."""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from torch2mlx.api import ConversionResult


def report_dict(results: Iterable[tuple[str, ConversionResult]]) -> dict:
    files = []
    untranslated: Counter = Counter()
    total_converted = total_flagged = 0
    for path, result in results:
        total_converted += result.converted
        total_flagged += result.flagged
        for d in result.diagnostics:
            if d.severity.value != "info":  # info: converted under an assumption, not left
                untranslated[d.rule_id] += 1
        files.append({
            "path": path,
            "changed": result.changed,
            "converted": result.converted,
            "flagged": result.flagged,
            "diagnostics": [d.to_json() for d in result.diagnostics],
        })
    return {
        "summary": {"files": len(files), "converted": total_converted, "flagged": total_flagged},
        "untranslated": [{"rule_id": k, "count": v} for k, v in untranslated.most_common()],
        "files": files,
    }


def write_json(report: dict, path: str) -> None:
    from pathlib import Path

    from torch2mlx.fileio import write_atomic

    write_atomic(Path(path), json.dumps(report, indent=2) + "\n")


def print_summary(report: dict, console: Console) -> None:
    """Diagnostics one per line, unwrapped (file:line:col stays clickable), then a table."""
    s = report["summary"]
    style = "green" if s["flagged"] == 0 else "yellow"
    console.print(f"[{style}]torch2mlx:[/] {s['converted']} torch API uses converted, "
                  f"{s['flagged']} left in place (flagged) in {s['files']} file(s)")
    for f in report["files"]:
        for d in f["diagnostics"]:
            color = "dim" if d["severity"] == "info" else "yellow"
            console.print(f"  {d['path']}:{d['line']}:{d['column']}: [{color}]{d['severity']}: {d['rule_id']}[/]: "
                          f"{escape(d['message'])}", highlight=False, markup=True, soft_wrap=True)
    if report["untranslated"]:
        table = Table(title="Left untranslated", show_edge=False)
        table.add_column("torch API")
        table.add_column("count", justify="right")
        for row in report["untranslated"][:20]:
            table.add_row(row["rule_id"], str(row["count"]))
        console.print(table)


# --------------------------------------------------------------------------- many files

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
            "error": o.error or None,
            "error_line": o.error_line or None,
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
            "converted": sum(o.converted for o in outcomes),  # torch API uses, as in report_dict
            "flagged": sum(o.flagged for o in outcomes),
        },
        "untranslated": [{**r, "files": len(r["files"])} for r in top],
        "files": files,
    }


def print_run_diagnostics(report: dict, console: Console) -> None:
    """One line per problem, unwrapped so that file:line:col stays clickable."""
    for f in report["files"]:
        if f["error"]:
            where = f"{f['path']}:{f['error_line']}" if f["error_line"] else f["path"]
            colour = "red" if f["status"] != "skipped" else "dim"
            console.print(f"  {escape(where)}: [{colour}]{f['status']}[/]: {escape(f['error'].splitlines()[0])}",
                          highlight=False, soft_wrap=True)
        if report["mode"] == "check" and f["changed"]:
            lines = ", ".join(str(n) for n in f["changed_lines"][:10])
            console.print(f"  {escape(f['path'])}:{f['changed_lines'][0] if f['changed_lines'] else 1}: "
                          f"[yellow]would be rewritten[/] ({f['converted']} torch API use(s) translatable; lines {lines})",
                          highlight=False, soft_wrap=True)
        for d in f["diagnostics"]:
            console.print(f"  {escape(d['path'])}:{d['line']}:{d['column']}: [yellow]{escape(d['rule_id'])}[/]: {escape(d['message'])}",
                          highlight=False, soft_wrap=True)


def print_run_summary(report: dict, console: Console, top: int = 15) -> None:
    s = report["summary"]
    n = s["by_status"]
    table = Table(title="torch2mlx run", show_edge=False)
    for column in ("files", "converted", "flagged", "unchanged", "failed", "crashed", "cache hits"):
        table.add_column(column, justify="right")
    table.add_row(str(s["files"]), str(n["converted"]), str(n["flagged"]), str(n["unchanged"]),
                  str(n["failed"]), str(n["internal-error"]), str(s["cached"]))
    console.print(table)
    console.print(f"{s['converted']} torch API uses converted, {s['flagged']} left in place", highlight=False)
    if report["untranslated"]:
        left = Table(title=f"Top untranslated APIs (of {len(report['untranslated'])})", show_edge=False)
        left.add_column("torch API")
        left.add_column("count", justify="right")
        left.add_column("files", justify="right")
        left.add_column("first seen", overflow="fold")
        for row in report["untranslated"][:top]:
            left.add_row(escape(row["rule_id"]), str(row["count"]), str(row["files"]), escape(row["where"][0]))
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
