"""Command line: a thin layer over `torch2mlx.convert_source`. Owns paths, output and exit codes.

Exit codes: 0 everything translated; 1 output written but something was flagged;
2 bad input or usage (no output written).
"""
from __future__ import annotations

import difflib
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from torch2mlx.api import build_index, convert_source
from torch2mlx.diagnostics import InputError
from torch2mlx.fileio import read_source, write_atomic
from torch2mlx.report import print_summary, report_dict, write_json
from torch2mlx.table import RuleError

EXIT_OK, EXIT_FLAGGED, EXIT_BAD_INPUT = 0, 1, 2

CONVERT_HELP = """Translate a PyTorch file to MLX.

\b
Examples:
  torch2mlx convert model.py                 # MLX code to stdout, report to stderr
  torch2mlx convert model.py -o model_mlx.py
  torch2mlx convert model.py --diff          # unified diff of what would change
  torch2mlx convert model.py --rules my_rules.yaml --report-json report.json

\b
Exit codes: 0 all translated; 1 output written but something was flagged
(see the `# torch2mlx:` comments); 2 bad input or usage, nothing written.
"""


def _fail(console: Console, message: str) -> "click.exceptions.Exit":
    console.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return click.exceptions.Exit(EXIT_BAD_INPUT)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="torch2mlx")
def main() -> None:
    """torch2mlx: translate PyTorch programs into native MLX programs."""


@main.command(help=CONVERT_HELP)
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the MLX code here (default: stdout).")
@click.option("--diff", is_flag=True, help="Print a unified diff instead of the converted code.")
@click.option("--in-place", is_flag=True, help="Rewrite SOURCE itself.")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("--rules", "rule_files", multiple=True, type=click.Path(path_type=Path), help="Extra YAML rule file (adds or overrides entries). Repeatable.")
@click.option("--report-json", type=click.Path(path_type=Path), help="Write the report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No summary on stderr.")
def convert(source: Path, output, diff, in_place, force, rule_files, report_json, quiet) -> None:
    err = Console(stderr=True)
    if sum(bool(x) for x in (output, diff, in_place)) > 1:
        raise _fail(err, "choose one of -o/--output, --diff and --in-place")
    if source.is_dir():
        raise _fail(err, f"{source}: is a directory (directory conversion is not available yet; pass a .py file)")
    try:
        index = build_index(tuple(rule_files))
    except RuleError as exc:
        raise _fail(err, str(exc))
    try:
        text = read_source(source)
        result = convert_source(text, str(source), index=index)
    except InputError as exc:
        raise _fail(err, str(exc))
    if output is not None:
        if output.exists() and not force and output.resolve() != source.resolve():
            raise _fail(err, f"{output}: exists; pass --force to overwrite")
        if output.resolve() == source.resolve():
            raise _fail(err, f"{output}: is the input file; use --in-place to rewrite it")
        try:
            write_atomic(output, result.code)
        except OSError as exc:
            raise _fail(err, f"{output}: cannot write: {exc.strerror or exc}")
    elif in_place:
        if result.changed:
            write_atomic(source, result.code)
    elif diff:
        sys.stdout.writelines(difflib.unified_diff(
            text.splitlines(keepends=True), result.code.splitlines(keepends=True),
            fromfile=f"a/{source}", tofile=f"b/{source}"))
    else:
        sys.stdout.write(result.code)
    report = report_dict([(str(source), result)])
    if report_json is not None:
        write_json(report, str(report_json))
    if not quiet:
        print_summary(report, err)
    raise click.exceptions.Exit(EXIT_FLAGGED if result.flagged else EXIT_OK)


if __name__ == "__main__":  # pragma: no cover
    main()
