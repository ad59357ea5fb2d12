"""On-disk caches: conversion results (a re-run skips unchanged files) and the rule index.

Results: the key is a hash of the file's bytes, the shipped rule table (`table_version()`), the
torch2mlx version, a fingerprint of the package's own code (so a developer's edit to
the converter invalidates old entries), and the contents of any extra rule files.
The entry does not depend on the file's path: diagnostics are stored without it and
re-stamped on load. Entries are JSON files written atomically; a corrupt or unreadable
entry is a miss, never an error.

The rule index (`load_index`): building it from YAML costs more than a small conversion, so it
is pickled under `<cache dir>/index/`, keyed by the names and contents of every rule file read
(shipped and `--rules`), the package's code fingerprint and the Python version. A stale entry is
never read (its key differs); a corrupt or unreadable one is rebuilt, and an unwritable cache
directory only means no cache.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from torch2mlx.diagnostics import Diagnostic, Kind, Severity
from torch2mlx.fileio import write_atomic, write_bytes_atomic

CACHE_DIR_ENV = "TORCH2MLX_CACHE_DIR"


def default_cache_dir() -> Path:
    """`$TORCH2MLX_CACHE_DIR`, else `$XDG_CACHE_HOME/torch2mlx`, else `~/.cache/torch2mlx`."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
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
    from torch2mlx.version import __version__
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


INDEX_FORMAT = 1  # bump when the pickled layout changes in a way the code fingerprint would not see
INDEX_ENTRIES_KEPT = 16  # older index pickles (other rule sets, older code) are pruned beyond this


def index_cache_dir() -> Path:
    return default_cache_dir() / "index"


def index_key(sources: Sequence[tuple[str, str]]) -> str:
    """Hash of everything a built index depends on: each rule file's name (it is stamped into
    `Rule.source`) and text, the package's code, the Python version and the pickle format."""
    import pickle

    h = hashlib.sha256(f"{INDEX_FORMAT}\0{sys.version}\0{pickle.HIGHEST_PROTOCOL}\0{_code_fingerprint()}".encode())
    for name, text in sources:
        for part in (name, text):
            data = part.encode("utf-8", "surrogatepass")
            h.update(b"\0%d\0" % len(data))
            h.update(data)
    return h.hexdigest()


def load_index(extra_rule_files: Sequence[Path] = (), directory: Optional[Path] = None):
    """The rule index of the shipped rules plus `extra_rule_files`, from the cache when valid.

    Every rule file is read once: the key is computed from those texts and, on a miss, the index
    is built from the same texts (so an entry can never describe other contents than its key).
    Rule errors are raised as by `load_rule_files`; nothing is cached then.
    """
    import pickle

    from torch2mlx.table.index import RuleIndex
    from torch2mlx.table.loader import default_rule_paths, load_rule_texts, read_rule_file

    paths = [*default_rule_paths(), *(Path(p) for p in extra_rule_files)]
    sources = [(str(path), read_rule_file(path)) for path in paths]
    key = index_key(sources)
    target = Path(directory if directory is not None else index_cache_dir()) / f"{key}.pickle"
    try:
        stored_key, index = pickle.loads(target.read_bytes())
        if stored_key == key and isinstance(index, RuleIndex):
            return index
    except Exception:  # missing, unreadable, truncated, from other code: rebuild  # noqa: BLE001
        pass
    index = RuleIndex(load_rule_texts(sources))
    _store_index(target, key, index)
    return index


def _store_index(target: Path, key: str, index) -> None:
    import pickle

    try:
        data = pickle.dumps((key, index), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # an unpicklable rule would only cost speed  # noqa: BLE001
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, data)
        entries = sorted(target.parent.glob("*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[INDEX_ENTRIES_KEPT:]:
            old.unlink()
    except OSError:
        pass  # a read-only or full cache directory (or a concurrent prune) only costs speed
