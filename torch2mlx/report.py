"""Summaries of a run: rich tables for people, JSON for machines. Built from diagnostics only."""
from __future__ import annotations

import json
from collections import Counter
from typing import Iterable

from rich.console import Console
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
            console.print(f"  {d['path']}:{d['line']}:{d['column']}: [yellow]{d['rule_id']}[/]: {d['message']}",
                          highlight=False, markup=True, soft_wrap=True)
    if report["untranslated"]:
        table = Table(title="Left untranslated", show_edge=False)
        table.add_column("torch API")
        table.add_column("count", justify="right")
        for row in report["untranslated"][:20]:
            table.add_row(row["rule_id"], str(row["count"]))
        console.print(table)
