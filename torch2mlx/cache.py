"""A content-addressed cache of conversion results, so a re-run skips unchanged files.

The key is a hash of the file's bytes, the shipped rule table (`table_version()`), the
torch2mlx version, a fingerprint of the package's own code (so a developer's edit to
the converter invalidates old entries), and the contents of any extra rule files.
The entry does not depend on the file's path: diagnostics are stored without it and
re-stamped on load. Entries are JSON files written atomically; a corrupt or unreadable
entry is a miss, never an error.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Optional, Sequence

from torch2mlx.diagnostics import Diagnostic, Kind, Severity
from torch2mlx.fileio import write_atomic


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "torch2mlx"


@functools.lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """Hash of the package's Python files: a changed converter never reuses old results."""
    h = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def run_salt(rule_files: Sequence[Path] = ()) -> str:
    """Everything besides the file's bytes that decides a conversion's outcome."""
    from torch2mlx import __version__
    from torch2mlx.table.loader import table_version

    h = hashlib.sha256(f"{__version__}\0{table_version()}\0{_code_fingerprint()}".encode())
    for path in rule_files:
        h.update(b"\0rules\0")
        h.update(Path(path).read_bytes())
    return h.hexdigest()


class Cache:
    """`get(data)` / `put(data, entry)` keyed on file bytes plus the run's salt."""

    def __init__(self, directory: Path, salt: str):
        self.directory = Path(directory)
        self.salt = salt

    def _file(self, data: bytes) -> Path:
        key = hashlib.sha256(self.salt.encode() + b"\0" + data).hexdigest()
        return self.directory / key[:2] / f"{key[2:]}.json"

    def get(self, data: bytes) -> Optional[dict]:
        try:
            return json.loads(self._file(data).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def has(self, data: bytes) -> bool:
        return self._file(data).is_file()

    def put(self, data: bytes, entry: dict) -> None:
        target = self._file(data)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, json.dumps(entry, separators=(",", ":")))
        except OSError:
            pass  # a read-only or full cache directory only costs speed


def diagnostics_to_entry(diagnostics: Sequence[Diagnostic]) -> list:
    return [[d.rule_id, d.kind.value, d.severity.value, d.message, d.line, d.column] for d in diagnostics]


def diagnostics_from_entry(rows: list, path: str) -> tuple[Diagnostic, ...]:
    return tuple(Diagnostic(r, Kind(k), Severity(s), m, path, line, col) for r, k, s, m, line, col in rows)
