"""Whole-repository conversion speed: 1 and 2 jobs, peak memory, cache-hit re-run, vs libcst parse+render.

Usage:
    pip download --no-deps transformers -d /tmp/tfdl
    python bench/bench_repo.py /tmp/tfdl/transformers-*.whl          # unzips models/ to a temp folder
    python bench/bench_repo.py /path/to/models [--pattern 'modeling_*.py'] [--limit N]

Each phase runs in a fresh Python process so its peak RSS (ru_maxrss; with workers, the
largest worker) is its own. Phases: bare libcst parse+render of every file (1 process);
`convert -o` with 1 job and 2 jobs (no cache); the same on a quarter of the files (memory
must not grow with the file count); a run that fills the cache and a re-run that hits it.
Figures go in docs/performance.md, "Batch conversion". Nothing of the corpus is kept.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path


def _files(root: Path, pattern: str, limit: int = 0) -> list[Path]:
    files = sorted(p for p in root.rglob(pattern) if p.is_file() and not p.is_symlink())
    return files[:limit] if limit else files


def _phase(args: argparse.Namespace) -> dict:
    files = _files(args.root, args.pattern, args.limit)
    if args.fraction < 1:
        files = files[: max(1, int(len(files) * args.fraction))]
    own = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = own.ru_utime + own.ru_stime
    t0 = time.perf_counter()
    if args.phase == "bare":
        import libcst as cst

        for f in files:
            try:
                _ = cst.parse_module(f.read_text(encoding="utf-8")).code
            except Exception:
                pass
        outcomes = []
    else:
        from torch2mlx import runner
        from torch2mlx.cache import run_salt

        root_out = Path(args.out)
        jobs = [runner.Job(f, str(f), root_out / f.relative_to(args.root)) for f in files]
        cache = Path(args.cache) if args.cache else None
        # the salt comes from the parent, so that two cache runs agree even while the package is being edited
        options = runner.Options("output", cache_dir=cache, cache_salt=args.salt or run_salt(), output_root=root_out)
        outcomes = list(runner.Run(jobs, options, args.jobs).start())
    seconds = time.perf_counter() - t0
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "cpu_seconds": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime - cpu0,
        "phase": args.phase, "jobs": args.jobs, "files": len(files), "seconds": seconds,
        "lines": sum(f.read_bytes().count(b"\n") for f in files),
        "peak_rss_mb": max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                           resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024,
        "statuses": {s: sum(1 for o in outcomes if o.status == s) for s in {o.status for o in outcomes}},
        "cached": sum(1 for o in outcomes if o.cached),
    }


def _run(root: Path, pattern: str, limit: int, phase: str, jobs: int = 1, fraction: float = 1.0, cache: str = "", salt: str = "") -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, __file__, str(root), "--pattern", pattern, "--limit", str(limit), "--phase", phase, "--jobs", str(jobs),
               "--fraction", str(fraction), "--out", out, "--cache", cache, "--salt", salt]
        result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        if phase == "convert":  # every output parses
            import ast

            bad = [p for p in Path(out).rglob("*.py") if _unparsable(p, ast)]
            result["outputs_unparsable"] = len(bad)
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def _unparsable(path: Path, ast) -> bool:
    try:
        ast.parse(path.read_bytes())
        return False
    except SyntaxError:
        return True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path, help="a models/ folder, or a transformers wheel")
    ap.add_argument("--pattern", default="*.py")
    ap.add_argument("--limit", type=int, default=0, help="only the first N files (sorted by path)")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--fraction", type=float, default=1.0, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--cache", default="", help=argparse.SUPPRESS)
    ap.add_argument("--salt", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(_phase(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root
        if root.suffix == ".whl":
            with zipfile.ZipFile(root) as wheel:
                wheel.extractall(tmp, [n for n in wheel.namelist() if n.startswith("transformers/models/")])
            root = Path(tmp) / "transformers" / "models"
        cache = str(Path(tmp) / "cache")
        bare = _run(root, args.pattern, args.limit, "bare")
        j1 = _run(root, args.pattern, args.limit, "convert", 1)
        j2 = _run(root, args.pattern, args.limit, "convert", 2)
        quarter = _run(root, args.pattern, args.limit, "convert", 1, 0.25)
        from torch2mlx.cache import run_salt

        salt = run_salt()
        fill = _run(root, args.pattern, args.limit, "convert", 2, cache=cache, salt=salt)
        hit = _run(root, args.pattern, args.limit, "convert", 2, cache=cache, salt=salt)
    print(f"corpus: {j1['files']} files, {j1['lines']} lines; statuses {j1['statuses']}; "
          f"unparsable outputs: {j1['outputs_unparsable']}")
    print("| run | wall s | CPU s | files/s | lines/s | lines per CPU s | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in (("libcst parse+render, 1 process", bare), ("convert, 1 job", j1), ("convert, 2 jobs", j2),
                    ("convert, 1 job, 1/4 of the files", quarter), ("convert, 2 jobs, filling the cache", fill),
                    ("re-run, 2 jobs, cache hits", hit)):
        print(f"| {name} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['files'] / r['seconds']:.1f} | "
              f"{r['lines'] / r['seconds']:.0f} | {r['lines'] / max(r['cpu_seconds'], 1e-9):.0f} | {r['peak_rss_mb']:.0f} |")
    print(f"\nspeed-up 2 jobs vs 1 (wall): {j1['seconds'] / j2['seconds']:.2f}x; CPU overhead of 2 jobs: "
          f"{j2['cpu_seconds'] / j1['cpu_seconds']:.2f}x; convert (1 job) / bare parse+render: wall "
          f"{j1['seconds'] / bare['seconds']:.2f}x, CPU {j1['cpu_seconds'] / bare['cpu_seconds']:.2f}x; "
          f"cache hits on re-run: {hit['cached']}/{hit['files']}; re-run time {hit['seconds']:.1f} s")


if __name__ == "__main__":
    main()
