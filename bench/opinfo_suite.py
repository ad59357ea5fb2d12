"""Third-party call sites at scale: torch's own OpInfo database, each sample converted and run under MLX.

    .venv/bin/python bench/opinfo_suite.py [--ops add sum nn.functional.softmax ...] [--limit N]
        [--samples 2] [--forms function,method] [--dtypes float32,int,bool] [--jobs 2] [--timeout 20]
        [--out /tmp/opinfo/run] [--markdown] [--list]

torch's test suite describes every operator it tests by an OpInfo (`torch.testing._internal.
common_methods_invocations.op_db`, ~700 entries; needs the `expecttest` package), whose
`sample_inputs(device, dtype)` gives the argument forms torch tests: negative dims, keepdim, dtype=,
out-of-range values, broadcasting, 0-d and empty tensors, Python scalars, kwargs and positional.
These were written by torch's authors, not by us; they are call sites the way third-party code writes
them. For each op (an OpInfo and its variant), each form it has (`torch.<name>(...)` / `F.<name>`
where the OpInfo's function is that public name; the method `x.<name>(...)`; the in-place method
`x.<name>_(...)` with `--forms ...,inplace`; reflected operators `__radd__` ... as `2 + x`), each dtype
(float32, an int dtype (int64, else int32), bool; those the op supports) and its first `--samples`
samples, a snippet is written: the inputs as `torch.tensor(<literal>, dtype=...)` (larger ones
`torch.from_numpy(np.load(<file>))`; float32 literals without dtype=, so that the float64 reference run of
the docstring machinery tells float32 rounding from a wrong value), then `out = <the call>`. The snippets are classified by the
docstring suite's machinery (bench/docstring_support.py): run under torch, converted with
torch2mlx.convert_source, run under MLX with torch blocked (one fork per snippet: a crash, an abort or
a hang is that snippet's CRASH), compared (float32 rtol 1e-4 / atol 1e-5, ints and bools exactly,
shapes exactly, dtypes by kind; the inputs too, after the call, so in-place changes count).
Classes: PASS, DTYPE, FLAGGED, WRONG, CRASH, CRASH-CONVERTER, NOT-COMPARABLE (random draws),
SKIP-* (torch itself raises, no value, nondeterministic). docs/opinfo.md has the figures.

Writes OUT/report.json (every snippet) and OUT/report.md (the table, then every WRONG and CRASH
with its snippet and converted code). Exit status 0 (the numbers are the result).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import docstring_support as ds

# Ops whose values are random draws (or depend on uninitialized memory): their snippets are run
# (a crash is a crash) but a value difference is NOT-COMPARABLE, never WRONG.
RANDOM_OPS = re.compile(
    r"^(cauchy|exponential|geometric|log_normal|normal|uniform|bernoulli|multinomial|rand\w*|randn\w*|randint\w*|"
    r"randperm|poisson|nn\.functional\.(dropout\w*|alpha_dropout|feature_alpha_dropout|rrelu|gumbel_softmax|"
    r"fractional_max_pool\w+)|empty\w*|new_empty\w*|svd_lowrank|pca_lowrank|torch\.empty\w*)$")
# Results whose order torch leaves unspecified (eigenvalues of a general matrix).
ORDER_AMBIGUOUS = re.compile(r"^(linalg\.eig|linalg\.eigvals)$")
# Results documented as unspecified where values tie (which index a tie gives, the order of equal keys).
TIE_AMBIGUOUS = re.compile(r"^(sort|argsort|topk|kthvalue|mode|median|nanmedian|msort|unique\w*|max\.reduction\w*|"
                           r"min\.reduction\w*)$")
REFLECTED = {"__radd__": "+", "__rsub__": "-", "__rmul__": "*", "__rdiv__": "/", "__rtruediv__": "/",
             "__rpow__": "**", "__rmod__": "%", "__rand__": "&", "__ror__": "|", "__rxor__": "^", "__rmatmul__": "@"}
NAMESPACE_PREFIX = {"nn.functional": "F", "linalg": "torch.linalg", "fft": "torch.fft", "special": "torch.special",
                    "signal.windows": "torch.signal.windows"}
LITERAL_MAX = 512  # tensors with more elements are saved as .npy files (read as float32: no float64 reference)


class Unrepresentable(Exception):
    """A sample argument user code would not write as a literal (a function, a generator, a layout ...)."""


class Writer:
    """Turns one SampleInput into Python source: the tensors as variables, the rest as literals."""

    def __init__(self, datadir: Path):
        self.datadir = datadir
        self.lines: list[str] = []
        self.count = 0
        self.uses_np = False

    def tensor(self, t) -> str:
        import torch
        name = f"x{self.count}" if self.count else "x"
        self.count += 1
        t = t.detach()
        if t.layout != torch.strided or t.is_complex() or t.dtype in (torch.bfloat16, torch.float16) or t.is_quantized:
            raise Unrepresentable(f"tensor {t.dtype} {t.layout}")
        arr = t.cpu().contiguous().numpy()
        # float32 literals take the default dtype (no dtype=): the suite's float64 reference run (torch's default
        # dtype float64) then gives float64 inputs, so float32 rounding is told from a wrong value
        dtype = "" if t.dtype == torch.float32 else f", dtype=torch.{str(t.dtype).replace('torch.', '')}"
        if arr.size <= LITERAL_MAX:
            self.lines.append(f"{name} = torch.tensor({self._literal(arr.tolist())}{dtype})")
        else:
            data = arr.tobytes() + str(arr.shape).encode() + arr.dtype.str.encode()
            path = self.datadir / f"{hashlib.sha1(data).hexdigest()[:16]}.npy"
            if not path.exists():
                np.save(path, arr)
            self.uses_np = True
            # from_numpy keeps the file's dtype (torch.tensor(<ndarray>.tolist()) would be flagged: list contents)
            self.lines.append(f"{name} = torch.from_numpy(np.load({str(path)!r}))")
        return name

    def _literal(self, v) -> str:
        if isinstance(v, list):
            return "[" + ", ".join(self._literal(i) for i in v) + "]"
        return self.scalar(v)

    @staticmethod
    def scalar(v) -> str:
        if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
            return repr(v)
        if isinstance(v, float):
            if math.isnan(v):
                return "float('nan')"
            if math.isinf(v):
                return "float('inf')" if v > 0 else "-float('inf')"
            return repr(v)
        if isinstance(v, complex):
            return repr(v)
        raise Unrepresentable(type(v).__name__)

    def value(self, v) -> str:
        import torch
        if isinstance(v, torch.Tensor):
            return self.tensor(v)
        if isinstance(v, torch.dtype):
            return f"torch.{str(v).replace('torch.', '')}"
        if isinstance(v, torch.Size):
            return repr(tuple(v))
        if isinstance(v, tuple):
            items = [self.value(i) for i in v]
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        if isinstance(v, list):
            return "[" + ", ".join(self.value(i) for i in v) + "]"
        if isinstance(v, slice):
            parts = [self.value(p) if p is not None else "" for p in (v.start, v.stop, v.step)]
            return ":".join(parts[:2]) + (f":{parts[2]}" if parts[2] else "")
        if v is Ellipsis:
            return "..."
        if isinstance(v, np.generic):
            v = v.item()
        return self.scalar(v)

    def index(self, v) -> str:
        """x[<this>]: a tuple index without parentheses, slices written a:b."""
        if isinstance(v, tuple) and v:
            return ", ".join(self.index(i) for i in v)
        if isinstance(v, list):
            return "[" + ", ".join(self.value(i) for i in v) + "]"
        return self.value(v)


def function_path(op) -> str | None:
    """The public spelling of the OpInfo's function (`torch.add`, `F.softmax`), or None when its function
    is not that public name (a lambda adapting the signature)."""
    import torch
    import torch.nn.functional as F  # noqa: N812
    name = op.name
    if name.startswith("_") or getattr(op.op, "__name__", "") == "<lambda>":
        return None
    for prefix, spelled in NAMESPACE_PREFIX.items():
        if name.startswith(prefix + "."):
            owner = {"F": F}.get(spelled) or eval(spelled, {"torch": torch})  # noqa: S307 - fixed names above
            fn = getattr(owner, name[len(prefix) + 1:], None)
            return f"{spelled}.{name[len(prefix) + 1:]}" if fn is not None and fn is op.op else None
    if "." in name:
        return None
    fn = getattr(torch, name, None)
    return f"torch.{name}" if fn is not None and fn is op.op else None


def method_name(op) -> str | None:
    m = op.method_variant
    n = getattr(m, "__name__", "") if m is not None else ""
    return n if n and n != "<lambda>" and not n.startswith("_") else None


def inplace_name(op) -> str | None:
    m = op.inplace_variant
    n = getattr(m, "__name__", "") if m is not None else ""
    return n if n and n != "<lambda>" and n.endswith("_") and not n.startswith("_") else None


def snippet(op, form: str, sample, datadir: Path) -> str:
    """The program of one sample under one form (raises Unrepresentable)."""
    import torch
    w = Writer(datadir)
    inp = sample.input
    if form in ("method", "inplace", "reflected", "getitem") and not isinstance(inp, torch.Tensor):
        raise Unrepresentable("the input is not a tensor")
    first = w.value(inp)
    args = [w.value(a) for a in sample.args]
    kwargs = [f"{k}={w.value(v)}" for k, v in sample.kwargs.items()]
    if form == "function":
        call = f"{function_path(op)}({', '.join([first, *args, *kwargs])})"
    elif form == "method":
        call = f"{first}.{method_name(op)}({', '.join([*args, *kwargs])})"
    elif form == "inplace":
        # as user code writes it: a statement, the updated tensor read afterwards (a used value is flagged)
        w.lines.append(f"{first}.{inplace_name(op)}({', '.join([*args, *kwargs])})")
        call = first
    elif form == "reflected":
        if len(sample.args) != 1 or sample.kwargs:
            raise Unrepresentable("reflected operator with other arguments")
        call = f"{args[0]} {REFLECTED[op.name]} {first}"
    else:  # getitem
        if len(sample.args) != 1 or sample.kwargs:
            raise Unrepresentable("indexing with other arguments")
        call = f"{first}[{w.index(sample.args[0])}]"
    header = ["import torch"]
    if w.uses_np:
        header.append("import numpy as np")
    if call.startswith("F."):
        header.append("import torch.nn.functional as F")
    return "\n".join(header + w.lines + [f"out = {call}"]) + "\n"


def forms_of(op, wanted: set) -> list[str]:
    out = []
    if op.name in REFLECTED:
        return ["reflected"] if "method" in wanted or "function" in wanted else []
    if op.name == "__getitem__":
        return ["getitem"] if "method" in wanted or "function" in wanted else []
    if "function" in wanted and function_path(op):
        out.append("function")
    if "method" in wanted and method_name(op):
        out.append("method")
    if "inplace" in wanted and inplace_name(op):
        out.append("inplace")
    return out


def dtypes_of(op, wanted: list[str]) -> list:
    import torch
    supported = op.supported_dtypes("cpu")
    out = []
    for w in wanted:
        if w == "int":
            choice = next((d for d in (torch.int64, torch.int32) if d in supported), None)
        else:
            choice = getattr(torch, w)
            choice = choice if choice in supported else None
        if choice is not None:
            out.append(choice)
    return out


def op_id(op) -> str:
    return op.name + (f".{op.variant_test_name}" if op.variant_test_name else "")


def build(ops_wanted, limit, samples, forms, dtypes, datadir: Path):
    """(examples, meta by example name, skipped counts)."""
    import torch
    from torch.testing._internal.common_methods_invocations import op_db
    examples, meta, skipped = [], {}, Counter()
    seen_programs: dict[str, str] = {}
    chosen = [op for op in op_db if ops_wanted is None or op.name in ops_wanted or op_id(op) in ops_wanted]
    if limit:
        chosen = chosen[:limit]
    for op in chosen:
        op_forms = forms_of(op, forms)
        if not op_forms:
            skipped["no public function or method form"] += 1
            continue
        for dtype in dtypes_of(op, dtypes):
            torch.manual_seed(0)
            try:
                sample_list = []
                for s in op.sample_inputs("cpu", dtype):
                    sample_list.append(s)
                    if len(sample_list) >= samples * 3:
                        break
            except Exception as exc:  # noqa: BLE001 - the OpInfo cannot make samples here
                skipped[f"sample_inputs raised {type(exc).__name__}"] += 1
                continue
            for form in op_forms:
                taken = 0
                for index, sample in enumerate(sample_list):
                    if taken >= samples:
                        break
                    if form == "inplace" and getattr(sample, "broadcasts_input", False):
                        continue
                    try:
                        program = snippet(op, form, sample, datadir)
                    except Unrepresentable as exc:
                        skipped[f"unrepresentable sample ({str(exc).split(' ')[0]})"] += 1
                        continue
                    taken += 1
                    name = f"{op_id(op)}[{form},{str(dtype).replace('torch.', '')},{index}]"
                    if program in seen_programs:
                        continue
                    seen_programs[program] = name
                    examples.append(ds.Example(name, program))
                    meta[name] = {"op": op_id(op), "form": form, "dtype": str(dtype).replace("torch.", ""),
                                  "random": bool(RANDOM_OPS.match(op.name)), "ties": bool(TIE_AMBIGUOUS.match(op_id(op)))}
    return examples, meta, skipped


def reclassify(outcomes, meta) -> None:
    """Random ops: a value difference is NOT-COMPARABLE; so is one of tie-ambiguous ops with int/bool inputs (ties
    are likely) and of ops whose result order torch leaves unspecified. A WRONG snippet whose conversion stated
    an assumption ("converted assuming ...", an info diagnostic) keeps its class; its cause says so."""
    import torch2mlx
    for o in outcomes:
        m = meta.get(o.name, {})
        if o.cls == ds.WRONG and m.get("random"):
            o.cls, o.cause = ds.NOT_COMPARABLE, "random op: values are draws"
        elif o.cls == ds.WRONG and m.get("ties") and m.get("dtype") in ("int64", "int32", "bool"):
            o.cls, o.cause = ds.NOT_COMPARABLE, "ties: torch leaves the order of equal values unspecified"
        elif o.cls == ds.WRONG and ORDER_AMBIGUOUS.match(m.get("op", "")):
            o.cls, o.cause = ds.NOT_COMPARABLE, "order: torch leaves the order of the results unspecified"
        if o.cls == ds.WRONG:
            assumed = [d.message for d in torch2mlx.convert_source(o.source, "example.py").diagnostics
                       if d.message.startswith("converted assuming") and "numpy dtype but float64" not in d.message]
            if assumed:
                o.cause = "stated: " + assumed[0][:200]
                m["assumed"] = True


def markdown(summary, outcomes, meta, header) -> str:
    parts = [header, ds.markdown_table(summary), ""]
    by_form = Counter((meta[o.name]["form"], o.cls) for o in outcomes if o.name in meta)
    forms = sorted({f for f, _ in by_form})
    parts += ["| form | " + " | ".join(ds.COUNTED) + " |", "|---|" + "---:|" * len(ds.COUNTED)]
    for f in forms:
        parts.append(f"| {f} | " + " | ".join(str(by_form[(f, c)]) for c in ds.COUNTED) + " |")
    parts += ["", "### Most common flag rule ids", "", "| rule id | snippets | its only flag |", "|---|---:|---:|"]
    for rule, n in summary["flag_rules"][:40]:
        parts.append(f"| `{rule}` | {n} | {summary['flag_only'].get(rule, 0)} |")
    parts += ["", "### Crash causes", "", "| cause | snippets | first |", "|---|---:|---|"]
    for cause, n in summary["crash_causes"][:40]:
        parts.append(f"| {ds._md(cause)} | {n} | {summary['crash_example'][cause]} |")
    for cls in (ds.WRONG, ds.CRASH, ds.CRASH_CONVERTER, ds.NOT_COMPARABLE, ds.DTYPE):
        chosen = [o for o in outcomes if o.cls == cls]
        if not chosen:
            continue
        assumed = sum(1 for o in chosen if meta.get(o.name, {}).get("assumed"))
        parts += ["", f"## {cls} ({len(chosen)}" + (f"; {assumed} under an assumption the conversion stated" if assumed else "")
                  + ")", ""]
        for o in chosen:
            parts.append(f"### `{o.name}`\n\n{ds._md(o.reason.splitlines()[0] if o.reason else '')}"
                         + (f" ({ds._md(o.cause)})" if o.cause and cls == ds.WRONG else "")
                         + (f" — at `{ds._md(o.error_line)}`" if o.error_line else ""))
            if cls in (ds.WRONG, ds.CRASH, ds.CRASH_CONVERTER):
                parts.append(f"\n```python\n{o.source or o.doctest}```\n\nconverted:\n\n```python\n{o.code}\n```\n")
    return "\n".join(parts) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", nargs="*", default=None, help="OpInfo names (add, nn.functional.softmax) or name.variant")
    parser.add_argument("--limit", type=int, default=0, help="only the first N OpInfos (after --ops)")
    parser.add_argument("--samples", type=int, default=2, help="samples per op, form and dtype (default 2)")
    parser.add_argument("--forms", default="function,method", help="function,method,inplace (default function,method)")
    parser.add_argument("--dtypes", default="float32,int,bool", help="float32,int,bool (int: int64, else int32)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes per side (default 2)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per run of one snippet")
    parser.add_argument("--out", default="/tmp/opinfo/run", help="report directory (report.json, report.md, data/)")
    parser.add_argument("--markdown", action="store_true", help="print only the class table")
    parser.add_argument("--list", action="store_true", help="list the snippet names and exit")
    opts = parser.parse_args(argv)

    started = time.time()
    import mlx.core  # noqa: F401
    import torch
    out = Path(opts.out)
    datadir = out / "data"
    datadir.mkdir(parents=True, exist_ok=True)
    examples, meta, skipped = build(set(opts.ops) if opts.ops else None, opts.limit, opts.samples,
                                    set(opts.forms.split(",")), opts.dtypes.split(","), datadir)
    if opts.list:
        for e in examples:
            print(e.name)
        return 0
    quiet = opts.markdown or not sys.stderr.isatty()

    def progress(side, done, total):
        if total is None:
            if not quiet:
                print(f"\r{side}: {done}", end="", file=sys.stderr, flush=True)
        elif not quiet or done == total:
            print(f"\r{side}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)

    print(f"{len(examples)} snippets from {len({m['op'] for m in meta.values()})} OpInfos "
          f"({time.time() - started:.0f}s to build)", file=sys.stderr)
    outcomes = ds.run_suite(examples, jobs=opts.jobs, timeout=opts.timeout, progress=progress)
    reclassify(outcomes, meta)
    summary = ds.summarize(outcomes)
    elapsed = time.time() - started
    versions = f"torch {torch.__version__}, mlx {sys.modules['mlx.core'].__version__}"
    report = {"versions": versions, "seconds": round(elapsed, 1), "summary": summary, "skipped_samples": dict(skipped),
              "snippets": [{**o.to_json(), **meta.get(o.name, {})} for o in outcomes]}
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    header = (f"## OpInfo parity ({versions}; {summary['total']} snippets, {elapsed:.0f}s; "
              f"command: bench/opinfo_suite.py {' '.join(argv if argv is not None else sys.argv[1:])})\n")
    md = markdown(summary, outcomes, meta, header)
    (out / "report.md").write_text(md, encoding="utf-8")
    print(ds.markdown_table(summary))
    if not opts.markdown:
        print(f"report: {out / 'report.md'}, {out / 'report.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
