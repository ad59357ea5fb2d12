"""The CLI side of a many-file run: checks the paths, drives `runner.Run`, shows progress, writes reports.

A rich progress bar when stderr is a terminal, plain lines otherwise. The exit code is
the worst over all files (0 ok, 1 flagged or would change, 2 bad input, 3 internal error).
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import click
from rich.console import Console
from rich.markup import escape

from torch2mlx import runner
from torch2mlx.cache import run_salt
from torch2mlx.fileio import write_atomic
from torch2mlx.project import build_project_index
from torch2mlx.report import print_run_diagnostics, print_run_summary, run_report, write_report
from torch2mlx.sarif import write_sarif
from torch2mlx.table import RuleError, load_rule_files


@dataclass(frozen=True)
class BatchSettings:
    mode: str  # output | in-place | check | diff
    output: Optional[Path] = None
    force: bool = False
    copy_other: bool = True
    exit_zero: bool = False
    rule_files: tuple = ()
    excludes: tuple = ()
    jobs: Optional[int] = None
    cache_dir: Optional[Path] = None
    report_json: Optional[Path] = None
    report_file: Optional[Path] = None
    sarif_file: Optional[Path] = None
    verbose: bool = False
    quiet: bool = False


def _fail(console: Console, message: str) -> click.exceptions.Exit:
    console.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return click.exceptions.Exit(runner.EXIT_BAD_INPUT)


def _check_paths(err: Console, sources: Sequence[Path], s: BatchSettings) -> None:
    for source in sources:
        if not source.exists() and not source.is_symlink():
            raise _fail(err, f"{source}: no such file or directory")
    if s.mode != "output":
        return
    if len(sources) != 1 or not sources[0].is_dir():
        raise _fail(err, "-o/--output with several inputs needs exactly one SOURCE directory")
    out, src = s.output.resolve(), sources[0].resolve()
    if out == src:
        raise _fail(err, f"{s.output}: is the input directory; use --in-place to rewrite it")
    if s.output.exists() and not s.output.is_dir():
        raise _fail(err, f"{s.output}: exists and is not a directory")
    if s.output.is_dir() and any(s.output.iterdir()) and not s.force:
        raise _fail(err, f"{s.output}: exists and is not empty; pass --force to write into it")
    # an output directory inside the input tree is fine: discovery prunes it, so it is never read back


def run_batch(err: Console, sources: Sequence[Path], s: BatchSettings) -> None:
    _check_paths(err, sources, s)
    try:
        load_rule_files(s.rule_files)  # bad user rules stop the run here; the shipped table loads on first use
        salt = run_salt(s.rule_files) if s.cache_dir is not None else ""
    except (RuleError, OSError) as exc:
        raise _fail(err, str(exc))
    jobs, skipped = runner.discover(list(sources), s.excludes, s.output if s.mode == "output" else None,
                                    with_other_files=s.mode == "output" and s.copy_other)
    project = build_project_index([p for p in sources if p.is_dir()], [j.source for j in jobs if j.convertible])
    if s.cache_dir is not None:  # cross-file facts are part of every file's cache key
        salt = f"{salt}:{project.key()}"
    options = runner.Options(s.mode, s.rule_files, s.cache_dir, salt, s.copy_other,
                             s.output.resolve() if s.output is not None else None, project)
    run = runner.Run(jobs, options, s.jobs or os.cpu_count() or 1).start()
    outcomes = list(skipped)
    if err.is_terminal and not s.quiet:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("[bold]torch2mlx"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[last]}"))
        with Progress(*columns, console=err, transient=True) as progress:
            task = progress.add_task("files", total=len(jobs), last="")
            for outcome in run:
                outcomes.append(outcome)
                progress.update(task, advance=1, last=escape(outcome.path[-50:]))
    else:
        for outcome in run:
            outcomes.append(outcome)
            if outcome.status in ("failed", "internal-error") and not s.quiet:
                err.print(f"{escape(outcome.path)}: {outcome.status}", highlight=False, soft_wrap=True)
    report = run_report(outcomes, s.mode)
    if s.mode == "diff":
        for outcome in sorted(outcomes, key=lambda o: o.path):
            sys.stdout.write(outcome.diff)
    _write_reports(err, report, s)
    if not s.quiet:
        if s.verbose or s.mode == "check":
            print_run_diagnostics(report, err)
        else:
            print_run_diagnostics({**report, "files": [f for f in report["files"] if f["error"] and f["status"] != "skipped"]}, err)
        print_run_summary(report, err)
    code = runner.worst_exit(outcomes, s.mode)
    if s.exit_zero and code == runner.EXIT_FLAGGED:
        code = runner.EXIT_OK
    raise click.exceptions.Exit(code)


def _write_reports(err: Console, report: dict, s: BatchSettings) -> None:
    try:
        if s.report_json is not None:
            write_atomic(s.report_json, json.dumps(report, indent=2) + "\n")
        if s.report_file is not None:
            write_report(report, s.report_file)
        if s.sarif_file is not None:
            write_sarif(report, s.sarif_file)
    except OSError as exc:
        raise _fail(err, f"cannot write report: {exc}")
