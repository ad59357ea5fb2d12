"""Third-party API parity: torch's own docstring examples, converted and run under MLX.

    .venv/bin/python bench/docstring_suite.py [--jobs 2] [--out /tmp/torch2mlx-docstrings]
        [--only torch.add torch.Tensor.scatter_ ...] [--namespace torch.fft ...] [--timeout 30] [--markdown]
        [--run-flagged] [--list]

Every public callable of torch, torch.Tensor, torch.nn.functional, torch.linalg, torch.fft and
torch.special whose docstring has `>>>` examples gives one example (all its `>>>` lines, in order;
docstrings giving the same program are merged). The examples are read from the installed torch at
run time, never stored. Each printed expression becomes `_outN = <expr>`; those and the final
top-level variables are compared (float rtol 1e-4 / atol 1e-5, ints and bools exactly, shapes
exactly, dtypes by kind). Random draws of torch are recorded and replayed through mx.random.
Classes and the machinery: bench/docstring_support.py and docs/docstrings.md.

Writes OUT/report.json (every example: class, reason, doc program, converted code, diagnostics)
and OUT/report.md; prints the summary. --markdown prints only the class table (for docs/docstrings.md).
Exit status 0 (the numbers are the result; tests/test_docstring_sample.py is the gate).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import docstring_support as ds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="worker processes per side (default 2)")
    parser.add_argument("--out", default="/tmp/torch2mlx-docstrings", help="report directory (report.json, report.md)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these example names (or aliases)")
    parser.add_argument("--namespace", nargs="*", default=None, choices=ds.NAMESPACES, help="limit to these namespaces")
    parser.add_argument("--timeout", type=float, default=ds.DEFAULT_TIMEOUT, help="seconds per run of one example")
    parser.add_argument("--markdown", action="store_true", help="print the class table only (markdown)")
    parser.add_argument("--run-flagged", action="store_true",
                        help="run FLAGGED examples too; the report says what they would have been (they stay FLAGGED)")
    parser.add_argument("--list", action="store_true", help="list the example names and exit")
    opts = parser.parse_args(argv)

    started = time.time()
    import mlx.core  # noqa: F401 - only the version; nothing runs here
    import torch

    examples = ds.extract_examples(tuple(opts.namespace or ds.NAMESPACES))
    if opts.only is not None:
        wanted = set(opts.only)
        examples = [e for e in examples if e.name in wanted or wanted & set(e.aliases)]
    if opts.list:
        for e in examples:
            print(e.name + (f"  (also {', '.join(e.aliases)})" if e.aliases else ""))
        return 0
    quiet = opts.markdown or not sys.stderr.isatty()

    def progress(side, done, total):
        if total is None:  # conversions, counted as they go
            if not quiet:
                print(f"\r{side}: {done}", end="", file=sys.stderr, flush=True)
        elif not quiet or done == total:
            print(f"\r{side}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)

    outcomes = ds.run_suite(examples, jobs=opts.jobs, timeout=opts.timeout, progress=progress, run_flagged=opts.run_flagged)
    summary = ds.summarize(outcomes)
    elapsed = time.time() - started
    versions = f"torch {torch.__version__}, mlx {sys.modules['mlx.core'].__version__}"
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"versions": versions, "seconds": round(elapsed, 1), "summary": summary,
              "examples": [o.to_json() for o in outcomes]}
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    header = f"## Docstring parity ({versions}; {summary['total']} examples, {elapsed:.0f}s)\n"
    md = ds.markdown_report(summary, outcomes, header)
    (out / "report.md").write_text(md, encoding="utf-8")
    if opts.markdown:
        print(ds.markdown_table(summary))
    else:
        print(md)
        print(f"report: {out / 'report.md'}, {out / 'report.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
