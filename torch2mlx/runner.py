"""Many files: discovery, a process pool, the cache, and writing each output atomically.

The runner never prints. `discover` turns the user's paths into `Job`s (one per file);
`Run` converts them, in worker processes when `workers > 1`, and yields one small,
pickleable `FileOutcome` per file as it finishes. One bad file is an outcome, never an
exception that stops the others.

Safety: symlinks are never followed or written through (a symlinked file or directory
inside the tree is reported as skipped), every write lands inside the output root (or
the input file itself for --in-place), and an output directory inside the input tree is
not read back as input.
"""
from __future__ import annotations

import difflib
import functools
import os
import stat
import sys
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import pathspec

from torch2mlx.api import build_index, convert_source, decode_source
from torch2mlx.cache import Cache, diagnostics_from_entry, diagnostics_to_entry
from torch2mlx.diagnostics import Diagnostic, InputError
from torch2mlx.fileio import write_atomic, write_bytes_atomic

EXIT_OK, EXIT_FLAGGED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
CONVERTIBLE_SUFFIXES = (".py",)
NOTEBOOK_SUFFIX = ".ipynb"
ALWAYS_PRUNED = {".git", ".hg", ".svn", "__pycache__"}


@dataclass(frozen=True)
class Options:
    """What the CLI flags become. mode: output | in-place | check | diff."""

    mode: str
    rule_files: tuple = ()
    cache_dir: Optional[Path] = None
    cache_salt: str = ""
    copy_other: bool = True
    output_root: Optional[Path] = None
    project: Optional[object] = None  # torch2mlx.project.ProjectIndex: cross-file facts


@dataclass(frozen=True)
class Job:
    source: Path
    display: str                   # the path as shown in messages and reports
    target: Optional[Path] = None  # where the output goes (output mode)
    convertible: bool = True       # .py (or notebook); other files are only copied


@dataclass(frozen=True)
class FileOutcome:
    """One file's result. status: converted | flagged | unchanged | failed | internal-error | copied | skipped."""

    path: str
    status: str
    diagnostics: tuple[Diagnostic, ...] = ()
    converted: int = 0
    changed: bool = False
    cached: bool = False
    lines: int = 0
    error: str = ""
    error_line: int = 0
    error_column: int = 0
    diff: str = ""
    changed_lines: tuple[int, ...] = field(default=())  # first lines of changed hunks (check/diff)

    @property
    def flagged(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity.value != "info")

    def exit_code(self, mode: str) -> int:
        if self.status == "internal-error":
            return EXIT_INTERNAL
        if self.status == "failed":
            return EXIT_BAD_INPUT
        if mode == "check":
            return EXIT_FLAGGED if self.changed else EXIT_OK
        return EXIT_FLAGGED if self.flagged else EXIT_OK


# --------------------------------------------------------------------------- discovery

class _Ignores:
    """`--exclude` globs (relative to the root) plus every .gitignore met on the way down."""

    def __init__(self, root: Path, excludes: Sequence[str]):
        self.root = root
        self.excludes = pathspec.GitIgnoreSpec.from_lines(excludes) if excludes else None
        self.gitignores: dict[Path, pathspec.GitIgnoreSpec] = {}

    def load(self, directory: Path) -> None:
        gi = directory / ".gitignore"
        if gi.is_file() and not gi.is_symlink():
            try:
                self.gitignores[directory] = pathspec.GitIgnoreSpec.from_lines(gi.read_text(encoding="utf-8", errors="replace").splitlines())
            except Exception:  # a malformed .gitignore only loses its own patterns
                pass

    def ignored(self, path: Path, is_dir: bool) -> bool:
        suffix = "/" if is_dir else ""
        rel = path.relative_to(self.root).as_posix() + suffix
        if self.excludes is not None and self.excludes.match_file(rel):
            return True
        for directory, spec in self.gitignores.items():
            if directory == path or directory not in path.parents:
                continue
            if spec.match_file(path.relative_to(directory).as_posix() + suffix):
                return True
        return False


def _convertible(path: Path) -> bool:
    return path.suffix in CONVERTIBLE_SUFFIXES or (path.suffix == NOTEBOOK_SUFFIX and notebook_support())


@functools.lru_cache(maxsize=1)
def notebook_support() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch2mlx.notebook") is not None


def discover(sources: Sequence[Path], excludes: Sequence[str] = (), output_root: Optional[Path] = None,
             with_other_files: bool = False) -> tuple[list[Job], list[FileOutcome]]:
    """Jobs for every file under `sources`, and `skipped` outcomes for symlinks met on the way.

    With `output_root`, `sources` must be one directory whose tree is mirrored there.
    Explicitly named files are always taken (pre-commit passes them one by one).
    """
    jobs: list[Job] = []
    skipped: list[FileOutcome] = []
    prune = {output_root.resolve()} if output_root is not None else set()
    for source in sources:
        if not source.is_dir():
            if source.is_symlink():
                skipped.append(FileOutcome(str(source), "skipped", error="symbolic link: not followed"))
            elif _convertible(source):
                jobs.append(Job(source, str(source)))
            continue
        root = source
        ignores = _Ignores(root, excludes)
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            here = Path(dirpath)
            ignores.load(here)
            keep = []
            for name in sorted(dirnames):
                sub = here / name
                if name in ALWAYS_PRUNED or sub.resolve() in prune or ignores.ignored(sub, True):
                    continue
                if sub.is_symlink():
                    skipped.append(FileOutcome(str(sub), "skipped", error="symbolic link: not followed"))
                    continue
                keep.append(name)
            dirnames[:] = keep
            for name in sorted(filenames):
                path = here / name
                if ignores.ignored(path, False):
                    continue
                if path.is_symlink():
                    skipped.append(FileOutcome(str(path), "skipped", error="symbolic link: not followed"))
                    continue
                convertible = _convertible(path)
                if not convertible and not with_other_files:
                    continue
                target = output_root / path.relative_to(root) if output_root is not None else None
                jobs.append(Job(path, str(path), target, convertible))
    return jobs, skipped


# --------------------------------------------------------------------------- one file

_CACHE: Optional[Cache] = None


def _cache(options: Options) -> Optional[Cache]:
    global _CACHE
    if options.cache_dir is None:
        return None
    if _CACHE is None or _CACHE.directory != options.cache_dir or _CACHE.salt != options.cache_salt:
        _CACHE = Cache(options.cache_dir, options.cache_salt)
    return _CACHE


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _checked_target(job: Job, options: Options) -> Path:
    """The path to write, refusing anything that would escape the output root or follow a link."""
    target = job.target if options.mode == "output" else job.source
    assert target is not None
    root = options.output_root if options.mode == "output" else target.parent
    if target.is_symlink():
        raise InputError("output path is a symbolic link: not written through", job.display)
    if options.mode == "output":
        target.parent.mkdir(parents=True, exist_ok=True)
        if not _inside(target.parent, root):
            raise InputError("output path leaves the output directory: not written", job.display)
    return target


def _copy_mode(source: Path, target: Path) -> None:
    """The mirror keeps each file's permission bits (a temporary file starts as 0600)."""
    os.chmod(target, stat.S_IMODE(source.stat().st_mode))


def _convert(data: bytes, job: Job, options: Options) -> tuple[dict, bool]:
    """The cache entry for this file's bytes: from the cache, or by converting now."""
    cache = _cache(options)
    entry = cache.get(data) if cache is not None else None
    if entry is not None:
        return entry, True
    try:
        text = decode_source(data, job.display)
        if job.source.suffix == NOTEBOOK_SUFFIX:
            from torch2mlx.notebook import convert_notebook  # type: ignore[import-not-found]

            result = convert_notebook(text, job.display)
        else:
            index = build_index(tuple(options.rule_files))
            project = options.project
            module = project.module_of(job.source) if project is not None else None
            result = convert_source(text, job.display, index=index, project=project, module_name=module)
    except InputError as exc:
        entry = {"error": exc.message, "line": exc.line, "column": exc.column}
    else:
        entry = {
            "code": result.code if result.changed else None,
            "diagnostics": diagnostics_to_entry(result.diagnostics),
            "converted": result.converted,
        }
    if cache is not None:
        cache.put(data, entry)
    return entry, False


def _changed_lines(old: str, new: str) -> tuple[int, ...]:
    matcher = difflib.SequenceMatcher(None, old.splitlines(), new.splitlines(), autojunk=False)
    return tuple(i1 + 1 for tag, i1, _i2, _j1, _j2 in matcher.get_opcodes() if tag != "equal")


def process(job: Job, options: Options) -> FileOutcome:
    """Convert (or copy) one file and write the result as the mode says. Never raises."""
    try:
        return _process(job, options)
    except InputError as exc:
        return FileOutcome(job.display, "failed", error=exc.message)
    except OSError as exc:
        return FileOutcome(job.display, "failed", error=f"{exc.strerror or exc}")
    except Exception as exc:  # a converter bug: report it, keep going with the other files
        summary = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-4:])
        return FileOutcome(job.display, "internal-error", error=f"{type(exc).__name__}: {exc}\n{summary}")


def _process(job: Job, options: Options) -> FileOutcome:
    data = job.source.read_bytes()
    if not job.convertible:
        if options.mode == "output" and options.copy_other:
            target = _checked_target(job, options)
            write_bytes_atomic(target, data)
            _copy_mode(job.source, target)
        return FileOutcome(job.display, "copied")
    entry, cached = _convert(data, job, options)
    lines = data.count(b"\n")
    if "error" in entry:
        return FileOutcome(job.display, "failed", cached=cached, lines=lines, error=entry["error"],
                           error_line=entry.get("line", 0), error_column=entry.get("column", 0))
    code = entry["code"]
    diagnostics = diagnostics_from_entry(entry["diagnostics"], job.display)
    changed = code is not None
    diff, changed_lines = "", ()
    if options.mode == "output":
        target = _checked_target(job, options)
        if changed:
            write_atomic(target, code)
        else:
            write_bytes_atomic(target, data)  # byte-identical, encoding and line endings kept
        _copy_mode(job.source, target)
    elif options.mode == "in-place" and changed:
        write_atomic(_checked_target(job, options), code)
    elif options.mode in ("check", "diff") and changed:
        original = decode_source(data, job.display)
        changed_lines = _changed_lines(original, code)
        if options.mode == "diff":
            diff = "".join(difflib.unified_diff(original.splitlines(keepends=True), code.splitlines(keepends=True),
                                                fromfile=f"a/{job.display}", tofile=f"b/{job.display}"))
    flagged = any(d.severity.value != "info" for d in diagnostics)
    status = "flagged" if flagged else "converted" if changed else "unchanged"
    return FileOutcome(job.display, status, diagnostics, entry["converted"], changed, cached, lines,
                       diff=diff, changed_lines=changed_lines)


# --------------------------------------------------------------------------- many files

_WORKER_OPTIONS: Optional[Options] = None


def _init_worker(options: Options) -> None:
    global _WORKER_OPTIONS
    _WORKER_OPTIONS = options


def _process_in_worker(job: Job) -> FileOutcome:
    assert _WORKER_OPTIONS is not None
    return process(job, _WORKER_OPTIONS)


class Run:
    """`start()` then iterate: one FileOutcome per job, in completion order.

    Start before opening a progress display: with the fork start method the workers are
    forked at the first submit, and forking while a display thread runs is unsafe.
    """

    def __init__(self, jobs: Sequence[Job], options: Options, workers: int = 1):
        self.jobs = list(jobs)
        self.options = options
        self.workers = max(1, min(workers, len(self.jobs) or 1))
        self._executor: Optional[ProcessPoolExecutor] = None
        self._futures: dict = {}

    def start(self) -> "Run":
        if self._any_miss():
            build_index(tuple(self.options.rule_files))  # load once (about 2 s); forked workers inherit it
        if self.workers > 1:
            import multiprocessing

            # fork shares the loaded rule table for free; elsewhere (macOS, Windows) the
            # platform default is the safe choice and each worker loads the table once
            context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
            self._executor = ProcessPoolExecutor(self.workers, mp_context=context,
                                                 initializer=_init_worker, initargs=(self.options,))
            self._futures = {self._executor.submit(_process_in_worker, job): job for job in self.jobs}
        return self

    def _any_miss(self) -> bool:
        """Whether some file needs converting (a run of cache hits never loads the rule table)."""
        cache = _cache(self.options)
        if cache is None:
            return True
        for job in self.jobs:
            try:
                if job.convertible and not cache.has(job.source.read_bytes()):
                    return True
            except OSError:
                continue
        return False

    def __iter__(self) -> Iterator[FileOutcome]:
        if self._executor is None:
            for job in self.jobs:
                yield process(job, self.options)
            return
        try:
            for future in as_completed(self._futures):
                job = self._futures[future]
                try:
                    yield future.result()
                except Exception as exc:  # a worker died (killed, out of memory)
                    yield FileOutcome(job.display, "internal-error", error=f"worker failed: {type(exc).__name__}: {exc}")
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)


def worst_exit(outcomes: Sequence[FileOutcome], mode: str) -> int:
    return max((o.exit_code(mode) for o in outcomes), default=EXIT_OK)
