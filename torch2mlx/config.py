"""Configuration: `[tool.torch2mlx]` in pyproject.toml, or `torch2mlx.toml` / `.torch2mlx.toml`.

Found as ruff finds its configuration: in the directory of the first path given (stdin: the
current directory) or the closest parent that has one, stopping at the first found. In each
directory `.torch2mlx.toml`, then `torch2mlx.toml`, then `pyproject.toml` (only when it has a
`[tool.torch2mlx]` table) are tried. Paths and globs in the file are relative to its directory.

Keys (all optional): `select`, `ignore` (rule ids or prefixes), `per-file-ignores` (glob ->
rule ids), `exclude` (globs), `rules`, `extend-rules` (YAML rule files), `jobs`, `cache-dir`,
`hub` (model hubs whose machinery maps to MLX stand-ins: `["transformers"]`, docs/transformers.md),
`layout` (`"auto"`, `"channels-last"` or `"torch"`: where channels-last layers get their data, docs/cli.md).
An unknown key, a wrong type or bad TOML is a `ConfigError` naming `path:line:col`.

`Selection` is what a run applies to each file's diagnostics (after the cache: the cached
conversion never depends on it). It is light: pathspec is imported only for per-file-ignores.
"""
from __future__ import annotations

import functools
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from torch2mlx.hub import HUBS

CONFIG_NAMES = (".torch2mlx.toml", "torch2mlx.toml", "pyproject.toml")
SECTION = ("tool", "torch2mlx")
LIST_KEYS = ("select", "ignore", "exclude", "rules", "extend-rules", "hub")
KEYS = (*LIST_KEYS, "per-file-ignores", "jobs", "cache-dir", "layout")
LAYOUTS = ("auto", "channels-last", "torch")


class ConfigError(Exception):
    """A configuration file that cannot be used: bad TOML, an unknown key, a wrong type."""

    def __init__(self, message: str, path: Path, line: int = 0, column: int = 0):
        super().__init__(message)
        self.message, self.path, self.line, self.column = message, path, line, column

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}" if self.line else str(self.path)
        return f"{where}: {self.message}"


# --------------------------------------------------------------------------- which diagnostics count

def matches(entry: str, rule_id: str) -> bool:
    """A rule id, or a prefix of one ending at `.` or `-`: `torch.nn.functional` covers
    `torch.nn.functional.softmax`, `torch` covers `torch.sum` and `torch-reference`."""
    if rule_id == entry:
        return True
    return bool(entry) and rule_id.startswith(entry) and (entry[-1] in ".-" or rule_id[len(entry)] in ".-")


@functools.lru_cache(maxsize=None)
def _spec(pattern: str):
    import pathspec  # only when there are per-file-ignores

    return pathspec.GitIgnoreSpec.from_lines([pattern])


def relative_to_root(path: Path, root: Path) -> Optional[str]:
    """`path` relative to `root` (posix), or None when it lies outside."""
    try:
        return Path(os.path.abspath(path)).relative_to(Path(os.path.abspath(root))).as_posix()
    except ValueError:
        return None


@dataclass(frozen=True)
class Selection:
    """Which diagnostics a run reports: `select` (None: all), minus `ignore`, minus the
    per-file-ignores whose glob matches the file (relative to `root`). Ignore wins over select."""

    select: Optional[tuple] = None
    ignore: tuple = ()
    per_file_ignores: tuple = ()  # ((glob, (rule ids, ...)), ...)
    root: Optional[Path] = None

    @property
    def active(self) -> bool:
        return self.select is not None or bool(self.ignore) or bool(self.per_file_ignores)

    def ignored_for(self, source: Path) -> tuple:
        ignored = list(self.ignore)
        if self.per_file_ignores:
            rel = relative_to_root(source, self.root or Path.cwd())
            if rel is not None:
                for pattern, ids in self.per_file_ignores:
                    if _spec(pattern).match_file(rel):
                        ignored += ids
        return tuple(ignored)

    def keeps(self, ids: Sequence[str], ignored: Sequence[str]) -> bool:
        """A diagnostic known by `ids` (the id shown, and the id of the table's rule that made it where that differs)
        is reported: some id selected, none ignored."""
        if self.select is not None and not any(matches(e, i) for e in self.select for i in ids):
            return False
        return not any(matches(e, i) for e in ignored for i in ids)

    def apply(self, diagnostics: Sequence, source: Path) -> tuple[tuple, int]:
        """(the diagnostics reported for the file `source`, how many were dropped). A flag shown by the name the user
        wrote (`torch.IntTensor`) matches by that name and by the id of the table's rule that made it
        (`torch.TypedTensor.construct`), never by another rule covering the same name."""
        ignored = self.ignored_for(source)
        kept = tuple(d for d in diagnostics if self.keeps((d.rule_id, d.table_id) if d.table_id else (d.rule_id,), ignored))
        return kept, len(diagnostics) - len(kept)


# --------------------------------------------------------------------------- the file

@dataclass(frozen=True)
class Config:
    path: Path                    # the file read
    select: Optional[tuple] = None
    ignore: tuple = ()
    per_file_ignores: tuple = ()
    exclude: tuple = ()
    rules: Optional[tuple] = None  # Paths, made absolute
    extend_rules: tuple = ()
    jobs: Optional[int] = None
    cache_dir: Optional[Path] = None
    hub: tuple = ()               # `--hub`: docs/transformers.md
    layout: Optional[str] = None  # `--layout`: auto | channels-last | torch (docs/cli.md)

    @property
    def root(self) -> Path:
        return self.path.parent


def _has_section(path: Path) -> bool:
    """A pyproject.toml counts only with a [tool.torch2mlx] table (bad TOML there is an error)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    if "torch2mlx" not in text:
        return False
    tool = _parse(path, text).get("tool", {})
    return isinstance(tool, dict) and "torch2mlx" in tool


def find(start: Path) -> Optional[Path]:
    """The configuration file of the closest directory, from `start` (a file's directory) upwards."""
    directory = Path(os.path.abspath(start))
    if not directory.is_dir():
        directory = directory.parent
    for candidate_dir in (directory, *directory.parents):
        for name in CONFIG_NAMES:
            candidate = candidate_dir / name
            if candidate.is_file() and (name != "pyproject.toml" or _has_section(candidate)):
                return candidate
    return None


def _toml():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib


def _parse(path: Path, text: str) -> dict:
    toml = _toml()
    try:
        return toml.loads(text)
    except toml.TOMLDecodeError as exc:
        message = str(exc)
        where = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line, column = (int(where.group(1)), int(where.group(2))) if where else (0, 0)
        if "(at end of document)" in message:
            line, column = text.count("\n") + 1, len(text.rsplit("\n", 1)[-1]) + 1
        raise ConfigError(f"not valid TOML: {re.sub(r' *[(]at .*[)]$', '', message)}", path, line, column) from None


def _header(line: str) -> Optional[tuple]:
    m = re.match(r"\s*\[\[?([^\]]+)\]\]?\s*(#.*)?$", line)
    if m is None:
        return None
    return tuple(part.strip().strip("\"'") for part in m.group(1).split("."))


def _position(text: str, section: tuple, key: str, after: int = 0) -> tuple[int, int]:
    """(line, column) of `key` in `section` of the TOML text (best effort: its table's header otherwise)."""
    current: tuple = ()
    header_line = 0
    pattern = re.compile(r"\s*([\"']?)" + re.escape(key) + r"\1\s*[=.]")
    for number, line in enumerate(text.splitlines(), 1):
        header = _header(line)
        if header is not None:
            current = header
            if header == section:
                header_line = number
            if header == (*section, key) and number > after:
                return number, line.index("[") + 1
            continue
        if current == section and number > after:
            m = pattern.match(line)
            if m:
                return number, m.start(1) + 1
    return (header_line, 1) if header_line else (1, 1)


def _strings(value, what: str, fail) -> tuple:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise fail(f"{what} must be a list of non-empty strings")
    return tuple(value)


def load(path: Path) -> Config:
    """Read and check one configuration file (pyproject.toml: its [tool.torch2mlx] table)."""
    path = Path(os.path.abspath(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {getattr(exc, 'strerror', None) or exc}", path) from None
    data = _parse(path, text)
    section: tuple = ()
    if path.name == "pyproject.toml":
        section = SECTION
        data = data.get("tool", {}).get("torch2mlx", {})
        if not isinstance(data, dict):
            raise ConfigError("tool.torch2mlx must be a table", path, *_position(text, ("tool",), "torch2mlx"))
    values: dict = {}
    for key, value in data.items():
        def fail(message: str, key=key) -> ConfigError:
            return ConfigError(message, path, *_position(text, section, key))

        if key not in KEYS:
            raise fail(f"unknown key {key!r} (known: {', '.join(KEYS)})")
        if key in LIST_KEYS:
            values[key] = _strings(value, key, fail)
            if key == "hub" and set(values[key]) - set(HUBS):
                raise fail(f"unknown hub {sorted(set(values[key]) - set(HUBS))[0]!r} (known: {', '.join(HUBS)})")
        elif key == "per-file-ignores":
            if not isinstance(value, dict):
                raise fail("per-file-ignores must be a table of glob = [rule ids]")
            where = _position(text, section, key)[0]
            pairs = []
            for glob, ids in value.items():
                if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
                    line, column = _position(text, (*section, key), glob, after=where - 1)
                    if line <= where:
                        line, column = where, _position(text, section, key)[1]
                    raise ConfigError(f"per-file-ignores {glob!r} must be a list of rule ids", path, line, column)
                pairs.append((glob, tuple(ids)))
            values[key] = tuple(pairs)
        elif key == "jobs":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise fail("jobs must be an integer >= 1")
            values[key] = value
        elif key == "layout":
            if value not in LAYOUTS:
                raise fail(f"layout must be one of {', '.join(repr(v) for v in LAYOUTS)}")
            values[key] = value
        elif key == "cache-dir":
            if not isinstance(value, str) or not value:
                raise fail("cache-dir must be a path (a string)")
            values[key] = value
    root = path.parent

    def files(key: str):
        return tuple(root / Path(os.path.expanduser(p)) for p in values[key]) if key in values else None

    return Config(
        path,
        select=values.get("select"),
        ignore=values.get("ignore", ()),
        per_file_ignores=values.get("per-file-ignores", ()),
        exclude=values.get("exclude", ()),
        rules=files("rules"),
        extend_rules=files("extend-rules") or (),
        jobs=values.get("jobs"),
        cache_dir=root / Path(os.path.expanduser(values["cache-dir"])) if "cache-dir" in values else None,
        hub=values.get("hub", ()),
        layout=values.get("layout"),
    )


def resolve(sources: Sequence[Path], config_file: Optional[Path] = None, isolated: bool = False) -> Optional[Config]:
    """The configuration of this run: none with `isolated`, `config_file` if named, else the closest."""
    if isolated:
        return None
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError("no such configuration file", config_file)
        return load(config_file)
    first = sources[0] if sources else Path("-")
    found = find(Path.cwd() if str(first) == "-" else first)
    return load(found) if found is not None else None
