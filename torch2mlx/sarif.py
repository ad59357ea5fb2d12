"""SARIF 2.1.0 output, so CI systems and code-review tools show diagnostics inline.

Built from a `report.run_report` dict: every diagnostic is a result (its rule id is the
torch API it concerns), every file that could not be read or parsed is an `error`
result under the rule id `bad-input` (or `internal-error`).
"""
from __future__ import annotations

import json
from pathlib import Path

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {"info": "note", "warning": "warning", "error": "error"}
INFORMATION_URI = "https://github.com/torch2mlx/torch2mlx"


def _uri(path: str) -> str:
    p = Path(path)
    return p.as_uri() if p.is_absolute() else p.as_posix()


def _location(path: str, line: int, column: int) -> dict:
    physical: dict = {"artifactLocation": {"uri": _uri(path)}}
    if line >= 1:
        physical["region"] = {"startLine": line, **({"startColumn": column} if column >= 1 else {})}
    return {"physicalLocation": physical}


def sarif(report: dict) -> dict:
    from torch2mlx import __version__

    results = []
    rule_ids: dict[str, str] = {}
    for f in report["files"]:
        if f["status"] in ("failed", "internal-error"):
            rule_id = "bad-input" if f["status"] == "failed" else "internal-error"
            rule_ids.setdefault(rule_id, "The file could not be converted.")
            results.append({
                "ruleId": rule_id,
                "level": "error",
                "message": {"text": (f["error"] or f["status"]).splitlines()[0]},
                "locations": [_location(f["path"], f["error_line"] or 0, 0)],
            })
        for d in f["diagnostics"]:
            rule_ids.setdefault(d["rule_id"], f"{d['rule_id']}: left in place by torch2mlx ({d['kind']}).")
            results.append({
                "ruleId": d["rule_id"],
                "level": LEVELS.get(d["severity"], "warning"),
                "message": {"text": d["message"]},
                "locations": [_location(d["path"], d["line"], d["column"])],
                "properties": {"kind": d["kind"]},
            })
    rules = [{"id": rid, "shortDescription": {"text": text}} for rid, text in sorted(rule_ids.items())]
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "torch2mlx", "version": __version__, "informationUri": INFORMATION_URI, "rules": rules}},
            "results": results,
        }],
    }


def write_sarif(report: dict, path: Path) -> None:
    from torch2mlx.fileio import write_atomic

    write_atomic(Path(path), json.dumps(sarif(report), indent=2) + "\n")
