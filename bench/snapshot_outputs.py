"""Converted output of a set of files, saved and compared: a refactoring must not change a byte.

Usage:
    python bench/snapshot_outputs.py save  /tmp/snap [ROOT ...]   # before the change
    python bench/snapshot_outputs.py check /tmp/snap [ROOT ...]   # after: exit 1 on any difference

ROOT defaults to the project's fixtures/ and examples/; add real code too, e.g.
    .venv/lib/python3.11/site-packages/timm/models  or  .../transformers/models/bert
Every `*.py` under each root is converted with `torch2mlx.convert_source`; the snapshot holds
each output and its diagnostics (one line each), so a changed flag message counts as a change.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from torch2mlx import InputError, convert_source

PROJECT = Path(__file__).resolve().parents[1]


def _key(path: Path) -> str:
    """The project's files by their path in the project, so that a snapshot saved in one checkout (or
    worktree) is checked in another; other files by their absolute path."""
    path = path.resolve()
    return path.relative_to(PROJECT).as_posix() if path.is_relative_to(PROJECT) else str(path)


def outputs(roots: list[Path]) -> dict:
    found: dict = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            try:
                result = convert_source(text, str(path.name))
                record = {"code": result.code, "diagnostics": [d.format() for d in result.diagnostics]}
            except InputError as exc:
                record = {"error": str(exc)}
            found[_key(path)] = record
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["save", "check"])
    ap.add_argument("snapshot", type=Path)
    ap.add_argument("roots", nargs="*", type=Path)
    args = ap.parse_args()
    roots = args.roots or [PROJECT / "fixtures", PROJECT / "examples"]
    current = outputs(roots)
    file = args.snapshot / "outputs.json"
    if args.mode == "save":
        args.snapshot.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(current, indent=1, sort_keys=True), encoding="utf-8")
        print(f"saved {len(current)} outputs to {file}")
        return 0
    saved = json.loads(file.read_text(encoding="utf-8"))
    changed = sorted(k for k in current.keys() & saved.keys() if current[k] != saved[k])
    missing = sorted(saved.keys() - current.keys())
    new = sorted(current.keys() - saved.keys())
    for name in changed:
        before, after = saved[name], current[name]
        what = "code" if before.get("code") != after.get("code") else "diagnostics"
        digest = hashlib.sha256(json.dumps(after, sort_keys=True).encode()).hexdigest()[:12]
        print(f"CHANGED ({what}) {name} [{digest}]")
    for name in missing:
        print(f"MISSING {name}")
    for name in new:
        print(f"NEW {name}")
    same = len(current.keys() & saved.keys()) - len(changed)
    print(f"{same} identical, {len(changed)} changed, {len(missing)} missing, {len(new)} new")
    return 1 if changed or missing else 0


if __name__ == "__main__":
    sys.exit(main())
