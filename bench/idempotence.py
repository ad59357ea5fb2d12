"""Idempotence on real code: every converted file, converted again, must come back byte-identical.

Usage:
    python bench/idempotence.py ROOT [ROOT ...] [--pattern '*.py'] [--limit N] [--every K] [--show 5] [--jobs J]

    # the real-code corpora (installed pinned, ../shared/realcode/README.md):
    SP=.venv/lib/python3.11/site-packages
    python bench/idempotence.py $SP/torchvision/models $SP/timm/models $SP/timm/layers \
        $SP/transformers/models --pattern '*.py' --every 4

Each file is converted with `torch2mlx.convert_source`; files the converter refuses (InputError) are
counted apart. The output is converted once more and compared: a difference (a flag added again, a
statement translated twice, an import moved) is a bug, shown as a short unified diff. `--every K`
takes every K-th file of the sorted list (a sample spread over the whole corpus); `--jobs J` converts in J
processes (a full run of the corpora takes about an hour of CPU). Exit 1 when any file changed. The suite
runs the same check on a small fixed sample of torch's own files, and on every file of torch and of the
installed corpora in its slow tests (tests/test_idempotence_real.py).
"""
from __future__ import annotations

import argparse
import difflib
import sys
import time
from pathlib import Path

from torch2mlx import InputError, convert_source
from torch2mlx.api import build_index


def corpus(roots: list, pattern: str, every: int = 1, limit: int = 0) -> list:
    files = sorted(p for root in roots for p in (Path(root).rglob(pattern) if Path(root).is_dir() else [Path(root)]))
    files = files[::max(every, 1)]
    return files[:limit] if limit else files


def second_pass_difference(text: str, path: str, index=None):
    """None when converting the output again changes nothing, else (first output, second output).
    Raises InputError when the converter refuses the input."""
    first = convert_source(text, path, index=index).code
    second = convert_source(first, path, index=index).code
    return None if first == second else (first, second)


def _check(path: Path):
    """('changed', path, first, second), ('refused', path) or None for one file (a worker's task)."""
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    try:
        found = second_pass_difference(text, str(path), _INDEX)
    except InputError:
        return ("refused", path)
    return None if found is None else ("changed", path, *found)


_INDEX = None


def _start_worker() -> None:
    global _INDEX
    _INDEX = build_index(())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", type=Path)
    ap.add_argument("--pattern", default="*.py")
    ap.add_argument("--every", type=int, default=1, help="take every K-th file (a spread sample)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--show", type=int, default=5, help="diffs to print")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    args = ap.parse_args()
    files = corpus(args.roots, args.pattern, args.every, args.limit)
    changed: list = []
    refused = 0
    start, wall = time.process_time(), time.perf_counter()
    if args.jobs > 1:
        import multiprocessing

        with multiprocessing.Pool(args.jobs, initializer=_start_worker) as pool:
            results = list(pool.imap(_check, files, chunksize=4))
    else:
        _start_worker()
        results = [_check(path) for path in files]
    for found in results:
        if found is not None and found[0] == "refused":
            refused += 1
        elif found is not None:
            changed.append(found[1:])
    for path, first, second in changed[:args.show]:
        diff = difflib.unified_diff(first.splitlines(), second.splitlines(), f"{path} (converted)",
                                    f"{path} (converted again)", lineterm="", n=1)
        print("\n".join(list(diff)[:30]))
    cpu = f"CPU {time.process_time() - start:.1f} s" if args.jobs <= 1 else f"{args.jobs} processes"
    print(f"files {len(files)}, refused {refused}, changed on a second pass {len(changed)}, {cpu}, "
          f"wall {time.perf_counter() - wall:.1f} s")
    for path, _, _ in changed:
        print(f"  changed: {path}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
