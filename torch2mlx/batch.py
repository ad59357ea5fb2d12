"""The CLI side of every `convert` and `check` run: one file, several, a tree or stdin.

`run(err, sources, options)` checks the paths against the options, turns them into
`runner.Job`s, drives `runner.Run`, shows progress, writes the converted code or diff to
stdout, writes the reports, prints the summary and exits with the worst code over all
files (0 ok, 1 flagged or would change, 2 bad input, 3 internal error). The same steps,
cache and reports for every kind of input: only the checks on `-o` depend on whether the
input is one file or one directory.

A rich progress bar when stderr is a terminal and there are several files, plain lines
otherwise. `--quiet` leaves only errors on stderr.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import NoReturn, Sequence

import click
from rich.console import Console
from rich.text import Text

from torch2mlx import runner
from torch2mlx.fileio import write_atomic
from torch2mlx.report import print_run_diagnostics, print_run_summary, run_report
from torch2mlx.runner import ConvertOptions

STDIN = Path("-")


def fail(console: Console, message: str) -> click.exceptions.Exit:
    """Print `error: message` (as plain text: never read as markup) and return the exit-2 exception to raise."""
    console.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)
    return click.exceptions.Exit(runner.EXIT_BAD_INPUT)


def _check_paths(err: Console, sources: Sequence[Path], o: ConvertOptions) -> None:
    """Refuse, before anything is read or written, what cannot be done (exit 2)."""
    if STDIN in sources:
        if len(sources) > 1:
            raise fail(err, "- (stdin) cannot be combined with other paths")
        if o.mode == "in-place":
            raise fail(err, "--in-place needs a file; stdin is converted to stdout, -o FILE, --diff or --check")
    for source in sources:
        if source != STDIN and not source.exists() and not source.is_symlink():
            raise fail(err, f"{source}: no such file or directory")
    one_file = len(sources) == 1 and (sources[0] == STDIN or not sources[0].is_dir())
    if o.mode == "stdout" and not one_file:
        raise fail(err, "a directory or several files need -o/--output DIR, --in-place, --diff or --check")
    if o.mode != "output":
        return
    if one_file:
        _check_output_file(err, sources[0], o)
        return
    if len(sources) != 1:
        raise fail(err, "-o/--output with several inputs needs exactly one SOURCE directory")
    if _real(o.output) == _real(sources[0]):
        raise fail(err, f"{o.output}: is the input directory; use --in-place to rewrite it")
    if o.output.exists() and not o.output.is_dir():
        raise fail(err, f"{o.output}: exists and is not a directory")
    if o.output.is_dir() and any(o.output.iterdir()) and not o.force:
        raise fail(err, f"{o.output}: exists and is not empty; pass --force to write into it")
    # an output directory inside the input tree is fine: discovery prunes it, so it is never read back


def _real(path: Path) -> str:
    return os.path.realpath(path)  # unlike Path.resolve, never raises on a symlink loop


def _check_output_file(err: Console, source: Path, o: ConvertOptions) -> None:
    if source != STDIN and _real(o.output) == _real(source):
        raise fail(err, f"{o.output}: is the input file; use --in-place to rewrite it")
    if o.output.is_dir():
        raise fail(err, f"{o.output}: is a directory; -o DIR mirrors a directory, give a file name for one file")
    if (o.output.exists() or o.output.is_symlink()) and not o.force:
        raise fail(err, f"{o.output}: exists; pass --force to overwrite")


def _jobs(sources: Sequence[Path], o: ConvertOptions) -> tuple[list, list]:
    if sources == [STDIN]:
        data = sys.stdin.buffer.read()
        job = runner.Job(Path(runner.STDIN_DISPLAY), runner.STDIN_DISPLAY, o.output, data=data)
        return [job], []
    mirror = o.mode == "output" and sources[0].is_dir()
    rooted = ((o.config_file.parent, o.config_excludes),) if o.config_file is not None and o.config_excludes else ()
    jobs, skipped = runner.discover(list(sources), o.excludes, o.output if mirror else None,
                                    with_other_files=mirror and o.copy_other, rooted_excludes=rooted)
    if o.mode == "output" and not mirror:
        jobs = [dataclasses.replace(job, target=o.output) for job in jobs]
    return jobs, skipped


def run(err: Console, sources: Sequence[Path], o: ConvertOptions) -> NoReturn:
    """Convert (or check, or diff) `sources` as `o` says; always ends by raising click's Exit."""
    sources = list(sources)
    _check_paths(err, sources, o)
    if o.verbose and not o.quiet and o.config_file is not None:
        err.print(Text.assemble("torch2mlx: configuration ", str(o.config_file)), highlight=False, soft_wrap=True)
    from torch2mlx.table import RuleError, load_rule_files

    try:
        if o.rule_files:
            load_rule_files(o.rule_files)  # bad user rules stop the run here; the shipped table loads on first use
        if o.cache_dir is not None:
            from torch2mlx.cache import run_salt

            salt = run_salt(o.rule_files)
        else:
            salt = ""
    except (RuleError, OSError) as exc:
        raise fail(err, str(exc))
    jobs, skipped = _jobs(sources, o)
    directories = [p for p in sources if p != STDIN and p.is_dir()]
    project = None
    if directories:  # cross-file facts: only files inside a directory given have them
        from torch2mlx.project import build_project_index

        project = build_project_index(directories, [j.source for j in jobs if j.convertible])
        if o.cache_dir is not None:  # cross-file facts are part of every file's cache key
            salt = f"{salt}:{project.key()}"
    output_root = None
    if o.mode == "output":
        output_root = Path(_real(o.output if directories else o.output.parent))
    options = runner.Options.derive(o, salt, output_root, project)
    outcomes = list(skipped) + _collect(err, runner.Run(jobs, options, o.jobs or os.cpu_count() or 1).start(), o)
    report = run_report(outcomes, o.mode)
    for outcome in sorted(outcomes, key=lambda x: x.path):
        sys.stdout.write(outcome.output if o.mode == "stdout" else outcome.diff if o.mode == "diff" else "")
    sys.stdout.flush()
    _write_reports(err, report, o)
    if o.quiet:
        print_run_diagnostics(report, err, errors_only=True)
    else:
        print_run_diagnostics(report, err, listing=o.verbose or o.mode == "check" or len(outcomes) == 1)
        print_run_summary(report, err)
    code = runner.worst_exit(outcomes, o.mode)
    if o.exit_zero and code == runner.EXIT_FLAGGED:
        code = runner.EXIT_OK
    raise click.exceptions.Exit(code)


def _collect(err: Console, run: "runner.Run", o: ConvertOptions) -> list:
    """The outcomes, with a progress bar on a terminal (several files), else a line per failed file."""
    outcomes = []
    if err.is_terminal and not o.quiet and len(run.jobs) > 1:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("[bold]torch2mlx"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[last]}", markup=False))  # a path: plain text
        with Progress(*columns, console=err, transient=True) as progress:
            task = progress.add_task("files", total=len(run.jobs), last="")
            for outcome in run:
                outcomes.append(outcome)
                progress.update(task, advance=1, last=outcome.path[-50:])
        return outcomes
    for outcome in run:
        outcomes.append(outcome)
        if outcome.status in ("failed", "internal-error") and not o.quiet and len(run.jobs) > 1:
            err.print(Text.assemble(outcome.path, ": ", outcome.status), highlight=False, soft_wrap=True)
    return outcomes


def _write_reports(err: Console, report: dict, o: ConvertOptions) -> None:
    try:
        if o.report_json is not None:
            write_atomic(o.report_json, json.dumps(report, indent=2) + "\n")
        if o.report_file is not None:
            from torch2mlx.report import write_report

            write_report(report, o.report_file)
        if o.sarif_file is not None:
            from torch2mlx.sarif import write_sarif

            write_sarif(report, o.sarif_file)
    except OSError as exc:
        raise fail(err, f"cannot write report: {exc}")
