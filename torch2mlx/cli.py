"""Command line: a thin layer over `torch2mlx.convert_source`. Owns paths, output and exit codes.

Exit codes: 0 everything translated; 1 output written but something was flagged (or,
with --check, something would change); 2 bad input or usage; 3 internal error in a file.
`convert` and `check` turn their arguments into one `runner.ConvertOptions` and hand it to
`batch.run`, the same pipeline for one file, several, a tree or stdin (imported on use, so
that `--help` and the other commands stay fast). Rule tooling lives in `cli_rules.py`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import click
from rich.console import Console
from rich.text import Text

from torch2mlx.cli_rules import rules_group
from torch2mlx.diagnostics import InputError
from torch2mlx.fileio import read_source
from torch2mlx.hub import HUBS

EXIT_OK, EXIT_FLAGGED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3

CONVERT_HELP = """Translate PyTorch files, or a whole directory tree, to MLX.

\b
Examples:
  torch2mlx convert model.py                 # MLX code to stdout, report to stderr
  torch2mlx convert - < model.py             # stdin to stdout
  torch2mlx convert model.py -o model_mlx.py
  torch2mlx convert model.py --diff          # unified diff of what would change
  torch2mlx convert model.py --rules my_rules.yaml --report-json report.json
  torch2mlx convert src/ -o out/ --report report.md   # a whole tree, in parallel
  torch2mlx convert src/ --in-place --exclude 'tests/*'
  torch2mlx convert src/ --check                      # exit 1 if anything would change

\b
Every option means the same for one file, several files and a tree (reports,
SARIF, the cache, --check, --diff); only -o differs: a file for one input file,
a directory mirroring one input directory.

\b
Exit codes: 0 all translated; 1 output written but something was flagged
(see the `# torch2mlx:` comments), or with --check something would change;
2 bad input or usage (for a directory: some file could not be read or parsed;
the others are still converted); 3 internal error in some file (others still written).
"""

CHECK_HELP = """Report PyTorch code torch2mlx would translate; write nothing.

\b
Exit codes: 0 nothing to translate (flagged leftovers do not count); 1 some file
would be rewritten (each is listed with the changed lines); 2 bad input; 3 internal error.
Used by the `torch2mlx-check` pre-commit hook.
"""


def _fail(console: Console, message: str) -> "click.exceptions.Exit":
    console.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)
    return click.exceptions.Exit(EXIT_BAD_INPUT)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="torch2mlx")
def main() -> None:
    """torch2mlx: translate PyTorch programs into native MLX programs."""


_common = [
    click.option("--rules", "rule_files", multiple=True, type=click.Path(path_type=Path), help="Extra YAML rule file (adds or overrides entries). Repeatable."),
    click.option("--exclude", "excludes", multiple=True, metavar="GLOB", help="Skip paths matching this .gitignore-style pattern (relative to the directory). Repeatable; .gitignore files are respected too."),
    click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes (default: all cores; one file uses one)."),
    click.option("--no-cache", is_flag=True, help="Convert every file even if an identical one was converted before."),
    click.option("--cache-dir", type=click.Path(path_type=Path), envvar="TORCH2MLX_CACHE_DIR", help="Where cached results live (default: ~/.cache/torch2mlx)."),
    click.option("--report-json", type=click.Path(path_type=Path), help="Write the report as JSON."),
    click.option("--report", "report_file", type=click.Path(path_type=Path), help="Write a migration report: Markdown, or HTML for .html."),
    click.option("--sarif", "sarif_file", type=click.Path(path_type=Path), help="Write the diagnostics as SARIF 2.1.0."),
    click.option("-v", "--verbose", is_flag=True, help="List every diagnostic, also for several files (one file: always listed)."),
    click.option("-q", "--quiet", is_flag=True, help="Nothing on stderr but errors (no summary, no diagnostics); the exit code is unchanged."),
    click.option("--select", "select", multiple=True, metavar="IDS", help="Report only these rule ids or prefixes (comma-separated, repeatable; replaces the configuration's)."),
    click.option("--ignore", "ignore", multiple=True, metavar="IDS", help="Do not report these rule ids or prefixes (comma-separated, repeatable; replaces the configuration's). The flag comments stay in the code."),
    click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False), help="Read this configuration file (pyproject.toml, torch2mlx.toml) instead of looking for one."),
    click.option("--isolated", is_flag=True, help="Ignore every configuration file."),
    click.option("--layout", "layout", type=click.Choice(["auto", "channels-last", "torch"]), default=None, help="Where MLX's channels-last layers (convolutions, pools, norms) get their data: 'channels-last' (the classes take NHWC; what the analysis cannot follow is flagged), 'torch' (layers built as helpers taking torch's NCHW, code keeps torch's layout), 'auto' (default: channels-last unless that would flag the file, or any file of a directory)."),
    click.option("--hub", "hub", multiple=True, type=click.Choice(list(HUBS)), help="Take this model hub's machinery from torch2mlx's MLX stand-ins: with 'transformers', a modeling file's PreTrainedModel, ACT2FN, caches, masks and output classes (docs/transformers.md). Repeatable."),
]


def common_options(func):
    for option in reversed(_common):
        func = option(func)
    return func


def _ids(values) -> Optional[tuple]:
    """`--select a,b --select c` -> ("a", "b", "c"); None when the flag was not given."""
    ids = tuple(i.strip() for value in values for i in value.split(",") if i.strip())
    return ids if values else None


def _options(err: Console, sources, mode: str, *, no_cache: bool, cache_dir, no_copy: bool = False, **flags):
    """The one `ConvertOptions` of this run: the command line's flags over the configuration file's keys."""
    from torch2mlx.cache import default_cache_dir
    from torch2mlx.config import ConfigError, Selection, resolve
    from torch2mlx.runner import ConvertOptions

    config_file, isolated = flags.pop("config_file"), flags.pop("isolated")
    if config_file is not None and isolated:
        raise _fail(err, "choose one of --config and --isolated")
    try:
        config = resolve(list(sources), config_file, isolated)
    except ConfigError as exc:
        raise _fail(err, str(exc))
    select, ignore = _ids(flags.pop("select")), _ids(flags.pop("ignore"))
    rule_files, excludes = tuple(flags.pop("rule_files")), tuple(flags.pop("excludes"))
    extra: dict = {}
    if config is not None:
        select = select if select is not None else config.select
        ignore = ignore if ignore is not None else config.ignore
        rule_files = (rule_files or config.rules or ()) + config.extend_rules
        flags["jobs"] = flags["jobs"] or config.jobs
        flags["hub"] = flags["hub"] or config.hub
        flags["layout"] = flags["layout"] or config.layout
        cache_dir = cache_dir or config.cache_dir
        extra = {"config_file": config.path, "config_excludes": config.exclude}
    selection = Selection(select, ignore or (), config.per_file_ignores if config else (), config.root if config else None)
    selection = selection if selection.active else None
    flags["hub"] = tuple(flags["hub"])
    flags["layout"] = flags["layout"] or "auto"
    return ConvertOptions(mode=mode, copy_other=not no_copy, cache_dir=None if no_cache else (cache_dir or default_cache_dir()),
                          rule_files=rule_files, excludes=excludes, selection=selection, **extra, **flags)


@main.command(help=CONVERT_HELP)
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path, allow_dash=True))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the MLX code here: a file, or a directory mirroring SOURCE's tree (default, or -: stdout).")
@click.option("--diff", is_flag=True, help="Print a unified diff instead of the converted code.")
@click.option("--in-place", is_flag=True, help="Rewrite the SOURCE files themselves (each atomically).")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if any file would be rewritten (for CI and pre-commit).")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists (or a non-empty output directory).")
@click.option("--no-copy", is_flag=True, help="With a directory, do not copy non-Python files to OUTPUT.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when something was flagged (bad input still exits 2).")
@common_options
def convert(sources, diff, in_place, check, **flags) -> None:
    from torch2mlx import batch  # the pipeline: imported for conversions only

    err = Console(stderr=True)
    if flags["output"] == Path("-"):
        flags["output"] = None  # `-o -`: standard output, as the default is (never a file named "-")
    if sum(bool(x) for x in (flags["output"], diff, in_place, check)) > 1:
        raise _fail(err, "choose one of -o/--output, --diff, --check and --in-place")
    mode = "check" if check else "diff" if diff else "in-place" if in_place else "output" if flags["output"] else "stdout"
    batch.run(err, sources, _options(err, sources, mode, **flags))


@main.command(help=CHECK_HELP)
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path, allow_dash=True))
@common_options
def check(sources, **flags) -> None:
    from torch2mlx import batch

    err = Console(stderr=True)
    batch.run(err, sources, _options(err, sources, "check", **flags))


VERIFY_HELP = """Convert a model file, run torch and MLX on the same random input, compare.

\b
Examples:
  torch2mlx verify model.py --model LeNet --args '10' --input 1,1,28,28
  torch2mlx verify mlp.py --model MLP --args '12, hidden=16, num_classes=3' --input 2,12
  torch2mlx verify lm.py --model LM --args '50, 8' --input int:0:50:2,12   # int64 tokens in [0, 50)

  torch2mlx verify model.py --model Net --args 'Block, [2, 2]' --kwargs 'num_classes=10' --input 1,3,32,32

\b
The file is imported as a module (not as __main__: an `if __name__ == "__main__":` block does
not run, other top-level code does), its folder importable: torch imports the sibling modules,
MLX their conversions. --args/--kwargs are Python expressions evaluated in each side's module.
torch's weights are copied into the MLX model; both run in eval mode (--train for train mode).
--input shapes are torch's (NCHW); a class converted to channels-last gets them NHWC and its
feature-map outputs are compared channels-last. Tuple / dict outputs get a per-output table;
a FAIL that randomness may explain (train mode, dropout, torch runs that differ) gets a hint.
Exit codes: 0 PASS; 1 FAIL (outputs differ, or the converted model does not build, load or run);
2 bad input (missing file or class, bad --args/--kwargs or --input).
"""

EXPORT_HELP = """Write a torch checkpoint as MLX weights for the converted model.

\b
Example:
  torch2mlx export-weights model.py --model LeNet --args '10' ckpt.pt -o lenet.safetensors

\b
CHECKPOINT is a torch.save'd state_dict (or a dict holding one under state_dict,
model_state_dict or model), loaded with weights_only=True. The converted MLX model is built
with --args, the weights are loaded into it (names and layouts as load_torch_weights) and
saved with model.save_weights (.safetensors or .npz); reload with model.load_weights(path).
Exit codes: 0 written; 1 the checkpoint does not fit the model (nothing written); 2 bad input.
"""


def _read_model(err: Console, source: Path) -> str:
    try:
        return read_source(source)
    except InputError as exc:
        raise _fail(err, str(exc))


@main.command(help=VERIFY_HELP)
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--model", "class_name", required=True, help="The nn.Module class to build.")
@click.option("--args", "args", default="", help="Positional constructor arguments, Python expressions in the module's namespace: 'Block, [2, 2]'.")
@click.option("--kwargs", "kwargs", default="", help="Keyword constructor arguments, likewise: 'num_classes=10, hidden=32'.")
@click.option("--input", "inputs", multiple=True, required=True, metavar="SHAPE",
              help="One forward argument: a torch shape such as 1,3,32,32 (float32 normal), or int:LOW:HIGH:SHAPE. Repeatable.")
@click.option("--eval/--train", "eval_mode", default=True, show_default=True, help="Run both models in eval or in train mode.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--atol", type=float, default=1e-4, show_default=True)
@click.option("--rtol", type=float, default=1e-4, show_default=True)
def verify(source, class_name, args, kwargs, inputs, eval_mode, seed, atol, rtol) -> None:
    from torch2mlx import verify_model  # numpy, torch and mlx: only for this command

    err = Console(stderr=True)
    text = _read_model(err, source)
    try:
        check = verify_model.verify_model(text, class_name, args, inputs, seed=seed, atol=atol, rtol=rtol, path=str(source),
                                          kwargs=kwargs, train=not eval_mode)
    except verify_model.BadModelInput as exc:
        raise _fail(err, str(exc))
    except InputError as exc:  # a sibling module that cannot be read or parsed
        raise _fail(err, str(exc))
    for diagnostic in check.diagnostics:
        err.print(Text(diagnostic.format()), highlight=False, soft_wrap=True)
    click.echo(check.report())
    if check.bad_input:
        raise click.exceptions.Exit(EXIT_BAD_INPUT)
    raise click.exceptions.Exit(EXIT_OK if check.passed else EXIT_FLAGGED)


@main.command("export-weights", help=EXPORT_HELP)
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--model", "class_name", required=True, help="The nn.Module class to build.")
@click.option("--args", "args", default="", help="Constructor arguments, as Python literals: '10, hidden=32'.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="The MLX weights file (.safetensors or .npz).")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def export_weights(source, checkpoint, class_name, args, output, force) -> None:
    from torch2mlx import verify_model  # numpy, torch and mlx: only for this command
    from torch2mlx.weights import WeightLoadError

    err = Console(stderr=True)
    if output.suffix not in (".safetensors", ".npz"):
        raise _fail(err, f"{output}: MLX saves weights as .safetensors or .npz")
    if output.exists() and not force:
        raise _fail(err, f"{output}: exists; pass --force to overwrite")
    text = _read_model(err, source)
    try:
        state_dict = verify_model.load_checkpoint(str(checkpoint))
        report = verify_model.export_weights(text, class_name, args, state_dict, str(output), path=str(source))
    except verify_model.BadModelInput as exc:
        raise _fail(err, str(exc))
    except WeightLoadError as exc:
        err.print(Text.assemble((f"checkpoint does not fit {class_name}:", "red"), " ", str(exc)), highlight=False, soft_wrap=True)
        raise click.exceptions.Exit(EXIT_FLAGGED)
    err.print(Text(f"{output}: {len(report.loaded)} arrays written"), highlight=False, soft_wrap=True)


main.add_command(rules_group)


if __name__ == "__main__":  # pragma: no cover
    main()
