"""Every conversion run: discovery, the cache, a process pool, and writing each output atomically.

One file, a list of files, a tree and stdin all go through here (`batch.run` drives it for
the CLI). The runner never prints. `ConvertOptions` is what the user asked for (built once
from the command line); `Options` is what converting one file needs, derived from it once
per run (`Options.derive`: the cache salt, the cross-file facts). `discover` turns the
user's paths into `Job`s (one per file); `Run` converts them, in worker processes when
`workers > 1`, and yields one small, pickleable `FileOutcome` per file as it finishes.
One bad file is an outcome, never an exception that stops the others.

Modes: `stdout` (the converted text comes back in the outcome), `output` (a file, or a
mirror of a tree), `in-place`, `diff` and `check` (nothing written).

Only what every run needs is imported here: pathspec (for .gitignore and --exclude) and the
process pool are imported when a directory is walked or several workers are used.

Safety: symlinks inside a tree are never followed (a symlinked file or directory there is
reported as skipped; a file named explicitly is read through its link), nothing is ever
written through a symlink, every write lands inside the output root (or the input file
itself for --in-place), and an output directory inside the input tree is not read back
as input.
"""
from __future__ import annotations

import difflib
import functools
import os
import stat
import sys
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Optional, Sequence

from torch2mlx.api import build_index, convert_source
from torch2mlx.cache import Cache, diagnostics_from_entry, diagnostics_to_entry
from torch2mlx.diagnostics import Diagnostic, InputError
from torch2mlx.fileio import decode_source, write_atomic, write_bytes_atomic

EXIT_OK, EXIT_FLAGGED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
CONVERTIBLE_SUFFIXES = (".py",)
NOTEBOOK_SUFFIX = ".ipynb"
ALWAYS_PRUNED = {".git", ".hg", ".svn", "__pycache__"}
MODES = ("stdout", "output", "in-place", "diff", "check")
STDIN_DISPLAY = "<stdin>"


@dataclass(frozen=True)
class ConvertOptions:
    """Everything the user chose for a `convert` or `check` run, built once from the command line.

    mode: stdout (one file or stdin, the MLX code to stdout) | output (`-o`: a file, or a
    directory mirroring one input directory) | in-place | diff | check.
    """

    mode: str = "stdout"
    output: Optional[Path] = None          # -o: a file (one input) or a directory (one input directory)
    force: bool = False                    # overwrite an existing output file / write into a non-empty directory
    copy_other: bool = True                # output mode, directories: copy non-Python files too
    exit_zero: bool = False                # flagged files do not fail the run
    rule_files: tuple = ()                 # extra YAML rule files (Paths)
    excludes: tuple = ()                   # .gitignore-style patterns, relative to each input directory
    jobs: Optional[int] = None             # worker processes (None: all cores)
    cache_dir: Optional[Path] = None       # None: no cache
    report_json: Optional[Path] = None
    report_file: Optional[Path] = None     # Markdown, or HTML for .html
    sarif_file: Optional[Path] = None
    verbose: bool = False                  # list every diagnostic, also for several files
    quiet: bool = False                    # nothing on stderr but errors
    selection: Optional[object] = None     # torch2mlx.config.Selection: which diagnostics are reported
    config_file: Optional[Path] = None     # the configuration file read (None: none)
    config_excludes: tuple = ()            # its `exclude` globs, relative to its directory
    hub: tuple = ()                        # `--hub`: model hubs whose machinery comes from MLX stand-ins (torch2mlx/hub)
    layout: str = "auto"                   # `--layout`: auto | channels-last | torch (convert_source's layout)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if (self.mode == "output") != (self.output is not None):
            raise ValueError("an output path goes with mode 'output', and only with it")


@dataclass(frozen=True)
class Options:
    """What converting one file needs (sent to each worker): derived from `ConvertOptions` per run."""

    mode: str
    rule_files: tuple = ()
    cache_dir: Optional[Path] = None
    cache_salt: str = ""
    copy_other: bool = True
    output_root: Optional[Path] = None  # output mode: every write lands inside it
    project: Optional[object] = None  # torch2mlx.project.ProjectIndex: cross-file facts
    selection: Optional[object] = None  # torch2mlx.config.Selection, applied after the cache
    hub: tuple = ()  # `--hub` (part of the cache salt: it changes the conversion)
    layout: str = "auto"  # `--layout` (part of the cache salt too)

    @classmethod
    def derive(cls, options: ConvertOptions, cache_salt: str = "", output_root: Optional[Path] = None,
               project: Optional[object] = None) -> "Options":
        selection = options.selection if options.selection is not None and options.selection.active else None
        hub = tuple(options.hub)
        salt = f"{cache_salt}:hub={','.join(hub)}" if hub else cache_salt
        salt = f"{salt}:layout={options.layout}" if options.layout != "auto" else salt
        return cls(options.mode, tuple(options.rule_files), options.cache_dir, salt, options.copy_other,
                   output_root, project, selection, hub, options.layout)


@dataclass(frozen=True)
class Job:
    source: Path
    display: str                   # the path as shown in messages and reports
    target: Optional[Path] = None  # where the output goes (output mode)
    convertible: bool = True       # .py (or notebook); other files are only copied
    data: Optional[bytes] = None   # the input itself, when it is not a file (stdin)

    def read(self) -> bytes:
        return self.data if self.data is not None else self.source.read_bytes()


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
    output: str = ""  # stdout mode: the converted text (the input's text when nothing changed)
    ignored: int = 0  # diagnostics dropped by the configuration's select / ignore / per-file-ignores

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
    """`--exclude` globs (relative to the root), the configuration's `exclude` globs (relative to
    its directory) and every .gitignore met on the way down."""

    def __init__(self, root: Path, excludes: Sequence[str], rooted: Sequence = ()):
        import pathspec  # directories only

        self.root = root
        self.excludes = pathspec.GitIgnoreSpec.from_lines(excludes) if excludes else None
        self.rooted = [(Path(os.path.abspath(base)), pathspec.GitIgnoreSpec.from_lines(globs)) for base, globs in rooted if globs]
        self.gitignores: dict = {}  # directory -> pathspec.GitIgnoreSpec

    def load(self, directory: Path) -> None:
        import pathspec

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
        for base, spec in self.rooted:
            try:
                if spec.match_file(Path(os.path.abspath(path)).relative_to(base).as_posix() + suffix):
                    return True
            except ValueError:  # outside the configuration's directory
                continue
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
             with_other_files: bool = False, rooted_excludes: Sequence = ()) -> tuple[list[Job], list[FileOutcome]]:
    """Jobs for every file under `sources`, and `skipped` outcomes for symlinks met on the way.

    With `output_root`, `sources` must be one directory whose tree is mirrored there.
    Explicitly named files are always taken, whatever their suffix, and read through a
    symbolic link (the user named them; pre-commit passes them one by one); writing in
    place through a link is still refused. Only what is found inside a directory is filtered.
    `rooted_excludes`: (directory, globs) pairs whose globs are relative to that directory
    (the configuration file's `exclude`).
    """
    jobs: list[Job] = []
    skipped: list[FileOutcome] = []
    prune = {output_root.resolve()} if output_root is not None else set()
    for source in sources:
        if not source.is_dir():
            jobs.append(Job(source, str(source)))
            continue
        root = source
        ignores = _Ignores(root, excludes, rooted_excludes)
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
        raise InputError(f"output path {target} is a symbolic link: not written through", job.display)
    if options.mode == "output":
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot write {target}: {exc.strerror or exc}", job.display) from None
        if root is not None and not _inside(target.parent, root):
            raise InputError("output path leaves the output directory: not written", job.display)
    return target


def _write(target: Path, write, payload) -> None:
    """Write atomically; a failure is this file's bad outcome, naming the path."""
    try:
        write(target, payload)
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}", str(target)) from None


def _copy_mode(source: Path, target: Path) -> None:
    """The mirror keeps each file's permission bits (a temporary file starts as 0600)."""
    os.chmod(target, stat.S_IMODE(source.stat().st_mode))


def _select(options: Options, diagnostics: tuple, source: Path) -> tuple[tuple, int]:
    """`select` / `ignore` of the configuration: a flag shown by the name the user wrote (`torch.nn.BatchNorm2d`)
    matches by that name and by the id of the table's rule that made it (`torch.nn.BatchNormNd.class`)."""
    return options.selection.apply(diagnostics, source)


def _convert(data: bytes, job: Job, options: Options) -> tuple[dict, bool]:
    """The cache entry for this file's bytes: from the cache, or by converting now."""
    cache = _cache(options)
    entry = cache.get(data) if cache is not None else None
    if entry is not None:
        return entry, True
    try:
        text = decode_source(data, job.display)
        index = build_index(tuple(options.rule_files))
        if job.source.suffix == NOTEBOOK_SUFFIX and notebook_support():
            from torch2mlx.notebook import convert_notebook  # type: ignore[import-not-found]

            result = convert_notebook(text, job.display, index=index)
        else:
            project = options.project
            module = project.module_of(job.source) if project is not None else None
            result = convert_source(text, job.display, index=index, project=project, module_name=module, hub=options.hub,
                                    layout=options.layout)
    except InputError as exc:
        entry = {"error": exc.message, "line": exc.line, "column": exc.column}
    else:
        entry = {
            "code": result.code if result.changed else None,
            "diagnostics": diagnostics_to_entry(result.diagnostics),
            "converted": result.converted,
            "table_ids": [d.table_id for d in result.diagnostics],  # what select / ignore match besides the shown id
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
        return FileOutcome(job.display, "failed", error=exc.message, error_line=exc.line, error_column=exc.column)
    except OSError as exc:
        return FileOutcome(job.display, "failed", error=f"{exc.strerror or exc}")
    except Exception as exc:  # a converter bug: report it, keep going with the other files
        summary = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-4:])
        return FileOutcome(job.display, "internal-error", error=f"{type(exc).__name__}: {exc}\n{summary}")


def _read(job: Job) -> bytes:
    try:
        return job.read()
    except IsADirectoryError:
        raise InputError("is a directory", job.display) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", job.display) from None


def _process(job: Job, options: Options) -> FileOutcome:
    data = _read(job)
    if not job.convertible:
        if options.mode == "output" and options.copy_other:
            target = _checked_target(job, options)
            _write(target, write_bytes_atomic, data)
            _copy_mode(job.source, target)
        return FileOutcome(job.display, "copied")
    entry, cached = _convert(data, job, options)
    lines = data.count(b"\n")
    if "error" in entry:
        return FileOutcome(job.display, "failed", cached=cached, lines=lines, error=entry["error"],
                           error_line=entry.get("line", 0), error_column=entry.get("column", 0))
    code = entry["code"]
    diagnostics = diagnostics_from_entry(entry["diagnostics"], job.display)
    if any(entry.get("table_ids", ())):
        diagnostics = tuple(replace(d, table_id=t) for d, t in zip(diagnostics, entry["table_ids"]))
    ignored = 0
    if options.selection is not None:  # select / ignore: what is reported and counted, not what is converted
        diagnostics, ignored = _select(options, diagnostics, job.source)
    changed = code is not None
    diff, changed_lines, output = "", (), ""
    if options.mode == "stdout":
        output = code if changed else decode_source(data, job.display)
    elif options.mode == "output":
        target = _checked_target(job, options)
        if changed:
            _write(target, write_atomic, code)
        else:
            _write(target, write_bytes_atomic, data)  # byte-identical, encoding and line endings kept
        if job.data is None:
            _copy_mode(job.source, target)
    elif options.mode == "in-place" and changed:
        _write(_checked_target(job, options), write_atomic, code)
    elif options.mode in ("check", "diff") and changed:
        original = decode_source(data, job.display)
        changed_lines = _changed_lines(original, code)
        if options.mode == "diff":
            diff = "".join(difflib.unified_diff(original.splitlines(keepends=True), code.splitlines(keepends=True),
                                                fromfile=f"a/{job.display}", tofile=f"b/{job.display}"))
    flagged = any(d.severity.value != "info" for d in diagnostics)
    status = "flagged" if flagged else "converted" if changed else "unchanged"
    return FileOutcome(job.display, status, diagnostics, entry["converted"], changed, cached, lines,
                       diff=diff, changed_lines=changed_lines, output=output, ignored=ignored)


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
        self._executor = None  # a ProcessPoolExecutor when workers > 1
        self._futures: dict = {}

    def start(self) -> "Run":
        if self._any_miss():
            build_index(tuple(self.options.rule_files))  # load once (about 2 s); forked workers inherit it
        if self.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor  # several workers only

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
                if job.convertible and not cache.has(job.read()):
                    return True
            except OSError:
                continue
        return False

    def __iter__(self) -> Iterator[FileOutcome]:
        if self._executor is None:
            for job in self.jobs:
                yield process(job, self.options)
            return
        from concurrent.futures import as_completed

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
