"""Single-process conversion speed vs libcst's bare parse+render, on a real corpus.

Usage:
    pip download --no-deps transformers -d /tmp/tfdl
    unzip -q /tmp/tfdl/transformers-*.whl 'transformers/models/*' -d /tmp/corpus
    python bench/bench_convert.py /tmp/corpus/transformers/models --pattern 'modeling_*.py' [--limit N]

Prints files, lines, CPU seconds and lines per CPU second for (1) libcst parse_module + .code and
(2) torch2mlx.convert_source, and the ratio. Run by hand; figures go in docs/performance.md.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import libcst as cst

from torch2mlx import InputError, convert_source
from torch2mlx.api import build_index


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("--pattern", default="*.py")
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    files = sorted(args.root.rglob(args.pattern))
    if args.limit:
        files = files[: args.limit]
    texts = [f.read_text(encoding="utf-8") for f in files]
    lines = sum(t.count("\n") for t in texts)
    build_index()  # load the rule table outside the timed region

    # CPU time of this process: the machine is often shared, and wall time then says little
    t0 = time.process_time()
    for text in texts:
        _ = cst.parse_module(text).code
    bare = time.process_time() - t0

    t0 = time.process_time()
    flagged = converted = failed = 0
    for f, text in zip(files, texts):
        try:
            r = convert_source(text, str(f))
        except InputError:
            failed += 1
            continue
        converted += r.converted
        flagged += r.flagged
    ours = time.process_time() - t0

    print(f"files {len(files)}, lines {lines}")
    print(f"libcst parse+render: {bare:7.2f} CPU s  {lines / bare:9.0f} lines per CPU s")
    print(f"torch2mlx convert:   {ours:7.2f} CPU s  {lines / ours:9.0f} lines per CPU s")
    print(f"ratio converter / bare parse+render: {ours / bare:.2f}x")
    print(f"API uses converted {converted}, flagged {flagged}, files failed {failed}")


if __name__ == "__main__":
    main()
