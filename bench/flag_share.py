"""Share of torch API uses left flagged over transformers' `modeling_*.py` files.

Usage:
    python bench/flag_share.py [ROOT] [--pattern 'modeling_*.py'] [--every N] [--top 25] [--json out.json] [--hub transformers]

ROOT defaults to the installed `transformers/models` folder. Every file is converted with
`torch2mlx.convert_source` (one process, no cache). Counted as in docs/performance.md (and
`bench/bench_convert.py`): *translated* is `ConversionResult.converted`, *flagged* is
`ConversionResult.flagged` (diagnostics that are not `info`); the share is
flagged / (translated + flagged). `--every N` takes every N-th file of the sorted list (a sample
for iterating; report N with the figure). Prints the top flag kinds by rule id, and by rule id
with the message's shape (backquoted code and numbers blanked), each with a typical message and
place. `--hub transformers` converts as `torch2mlx convert --hub transformers` does (docs/transformers.md).
"""
from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

from torch2mlx import InputError, convert_source
from torch2mlx.api import build_index


def default_root() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("transformers is not installed: pass ROOT")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


_CODE = re.compile(r"`[^`]*`|'[^']*'|\"[^\"]*\"")
_NUM = re.compile(r"\b\d+\b")


def message_shape(message: str) -> str:
    """The message with its quoted code and numbers blanked, so that sites of one kind group."""
    return _NUM.sub("N", _CODE.sub("`…`", message))[:160]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path, nargs="?")
    ap.add_argument("--pattern", default="modeling_*.py")
    ap.add_argument("--every", type=int, default=1, help="take every N-th file (a sample)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--json", type=Path, help="write the counts and every flag here")
    ap.add_argument("--hub", action="append", default=[], choices=["transformers"],
                    help="convert with `--hub transformers` (the hub machinery from torch2mlx's MLX stand-ins)")
    args = ap.parse_args()
    root = args.root or default_root()
    files = sorted(root.rglob(args.pattern))[:: max(1, args.every)]
    build_index()

    t0 = time.process_time()
    translated = flagged = failed = 0
    crashed: list = []
    by_rule: Counter = Counter()
    by_shape: Counter = Counter()
    example: dict = {}
    flags: list = []
    rule_example: dict = defaultdict(str)
    for f in files:
        try:
            r = convert_source(f.read_text(encoding="utf-8"), str(f), hub=tuple(args.hub))
        except InputError:
            failed += 1
            continue
        except Exception as exc:  # noqa: BLE001 - an internal error of the converter: counted and named, not hidden
            crashed.append(f"{f.relative_to(root)}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
            continue
        translated += r.converted
        flagged += r.flagged
        for d in r.diagnostics:
            if d.severity.value == "info":
                continue
            shape = (d.rule_id, message_shape(d.message))
            by_rule[d.rule_id] += 1
            by_shape[shape] += 1
            where = f"{f.relative_to(root)}:{d.line}"
            example.setdefault(shape, (d.message, where))
            rule_example[d.rule_id] = rule_example[d.rule_id] or d.message
            flags.append([d.rule_id, d.message, where])
    cpu = time.process_time() - t0

    total = translated + flagged
    share = flagged / total if total else 0.0
    hub = f", --hub {','.join(args.hub)}" if args.hub else ""
    print(f"files {len(files)} (every {args.every}) of {root}{hub}, failed {failed}, {cpu:.0f} CPU s")
    print(f"API uses translated {translated}, flagged {flagged}: {100 * share:.1f}% left flagged")
    for line in crashed:
        print(f"  INTERNAL ERROR (file not counted): {line}")
    print(f"\ntop {args.top} rule ids:")
    for rule, n in by_rule.most_common(args.top):
        print(f"  {n:6d}  {rule}: {rule_example[rule][:150]}")
    print(f"\ntop {args.top} kinds (rule id, message shape):")
    for shape, n in by_shape.most_common(args.top):
        msg, where = example[shape]
        print(f"  {n:6d}  {shape[0]}: {msg[:150]}  [{where}]")
    if args.json:
        args.json.write_text(json.dumps({
            "files": len(files), "every": args.every, "failed": failed, "crashed": crashed,
            "translated": translated, "flagged": flagged, "share": share,
            "by_rule": dict(by_rule.most_common()), "flags": flags,
        }, indent=1))


if __name__ == "__main__":
    main()
