"""Start-up cost: converting a 3-line file vs a bare `import libcst, yaml, click, rich`.

Usage:
    python bench/bench_startup.py [--repeat 9] [--cold] [--as-is] [--compare-with DIR]

Each measurement is a fresh child process; its CPU seconds (user + system, from `os.wait4`) are
taken, the two commands alternate (so load from other jobs falls on both alike), and the median
of the repetitions is printed with the ratio. The conversion runs with a warm rule-index cache in
a temporary `TORCH2MLX_CACHE_DIR` (filled by one untimed run first); `--cold` also times it with
an empty cache directory each time (the index rebuilt from YAML). The aim (issue: fast start) is
a ratio of at most 2.5. Run by hand; figures go in docs/performance.md ("Start-up").

Bytecode: an installed package has its `.pyc` files, so both commands run with
`PYTHONDONTWRITEBYTECODE` unset and `PYTHONPYCACHEPREFIX` pointing into the temporary directory
(filled by the untimed first runs; the checkout's tree is not written). `--as-is` keeps the
environment's own settings instead (with `PYTHONDONTWRITEBYTECODE=1` every torch2mlx module is
compiled from source on each run, about 0.2 CPU s more).

`--compare-with DIR` also times the conversion by another copy of the code (DIR holds its
`torch2mlx/` and `rules/`, e.g. `git archive <commit> | tar -x -C DIR`), put first on PYTHONPATH,
in the same interleaved loop: before/after figures from one run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET = 2.5
SMALL = "import torch\ndef f(x):\n    return torch.softmax(x, dim=-1)\n"
IMPORT_LINE = "import libcst, yaml, click, rich"


def torch2mlx_command() -> list[str]:
    """The installed console script (what a pre-commit hook runs), else `python -m torch2mlx`."""
    script = Path(sys.executable).with_name("torch2mlx")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "torch2mlx"]


def cpu_seconds(argv: list[str], env: dict, cwd: Path) -> float:
    """User + system CPU seconds of one child process (and whatever it waited for)."""
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode not in (0, 1):  # 1: something flagged, still a full conversion
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err}")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--cold", action="store_true", help="also time the conversion with an empty index cache")
    ap.add_argument("--as-is", action="store_true", help="keep the environment's bytecode settings")
    ap.add_argument("--compare-with", type=Path, metavar="DIR", help="another copy of the code to time as well")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="t2m-startup-") as tmp:
        tmp_path = Path(tmp)
        small = tmp_path / "small.py"
        small.write_text(SMALL, encoding="utf-8")
        cache = tmp_path / "cache"
        env = dict(os.environ, TORCH2MLX_CACHE_DIR=str(cache))
        if not args.as_is:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")
        bare = [sys.executable, "-c", IMPORT_LINE]
        # --no-cache: a conversion, not a hit in the result cache (one file goes through the runner too)
        convert = [*torch2mlx_command(), "convert", "--no-cache", str(small)]

        cpu_seconds(convert, env, tmp_path)  # fills the index cache (and warms the OS file cache)
        if not list((cache / "index").glob("*.pickle")):
            raise SystemExit(f"no index cache was written under {cache}")
        cpu_seconds(bare, env, tmp_path)
        other_env = None
        if args.compare_with is not None:
            other = args.compare_with.resolve()
            if not (other / "torch2mlx" / "__init__.py").is_file():
                raise SystemExit(f"{other}: no torch2mlx/ package there")
            other_env = dict(env, PYTHONPATH=os.pathsep.join(filter(None, [str(other), env.get("PYTHONPATH")])),
                             TORCH2MLX_CACHE_DIR=str(tmp_path / "other-cache"))
            probe = subprocess.run([sys.executable, "-c", "import torch2mlx; print(torch2mlx.__file__)"],
                                   env=other_env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
            if not Path(probe).resolve().is_relative_to(other):
                raise SystemExit(f"--compare-with: torch2mlx is still imported from {probe}")
            cpu_seconds(convert, other_env, tmp_path)

        timings: dict[str, list[float]] = {"bare": [], "convert": [], "cold": [], "other": []}
        for _ in range(args.repeat):
            timings["bare"].append(cpu_seconds(bare, env, tmp_path))
            timings["convert"].append(cpu_seconds(convert, env, tmp_path))
            if other_env is not None:
                timings["other"].append(cpu_seconds(convert, other_env, tmp_path))
            if args.cold:
                cold_cache = tmp_path / "cold-cache"
                shutil.rmtree(cold_cache, ignore_errors=True)
                timings["cold"].append(cpu_seconds(convert, dict(env, TORCH2MLX_CACHE_DIR=str(cold_cache)), tmp_path))

    median = {name: statistics.median(values) for name, values in timings.items() if values}
    bytecode = "environment's bytecode settings" if args.as_is else "bytecode cached"
    print(f"CPU seconds per child process, median of {args.repeat} (min .. max), {bytecode}:")
    labels = {"bare": f'python -c "{IMPORT_LINE}"',
              "convert": "torch2mlx convert small.py (warm index cache)",
              "cold": "torch2mlx convert small.py (empty index cache)",
              "other": f"torch2mlx convert small.py, code of {args.compare_with}"}
    for name, value in median.items():
        print(f"  {labels[name]:<52} {value:6.3f}  ({min(timings[name]):.3f} .. {max(timings[name]):.3f})")
    ratio = median["convert"] / median["bare"]
    print(f"ratio convert / bare import: {ratio:.2f}x (target <= {TARGET}x: {'met' if ratio <= TARGET else 'NOT met'})")
    for name in ("cold", "other"):
        if name in median:
            print(f"ratio {labels[name]} / bare import: {median[name] / median['bare']:.2f}x")


if __name__ == "__main__":
    main()
