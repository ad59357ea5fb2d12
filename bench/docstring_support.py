"""Machinery of the docstring parity suite (bench/docstring_suite.py, tests/test_docstring_sample.py).

The `>>>` examples of torch's own docstrings are extracted at run time from the installed torch,
turned into programs whose printed values are kept (`_outN = <expr>`), run under torch (values of
random functions recorded), converted with torch2mlx, run under MLX with torch blocked (the
recorded random values replayed through `mx.random`), and compared.

Process layout: the main process extracts, converts (torch2mlx, in its main thread, with a
timeout), classifies and compares (numpy); it imports torch for the docstrings but never runs an
example. `jobs` worker processes per side (this file run with `--worker torch|mlx`) take examples
over a pipe, both pools started at once, torch results converted and queued for MLX as they come.
Torch workers run many examples each, in fresh namespaces, with a SIGALRM timeout; global settings
are put back after each run and a worker left unhealthy is replaced; a worker that dies or passes
the pool's deadline is killed and restarted (that example is skipped). MLX workers block `import
torch` before anything is imported and run each example in a fork (timeout, own process group,
stdout discarded, stderr kept), so an abort, a segfault or a hang is a CRASH of one example, never
of the run; they never evaluate an MLX array themselves (MLX's scheduler threads do not survive a
fork).

Values cross process boundaries as plain tagged tuples (see `normalize`):
("arr", ndarray, dtype name), ("num", value, kind), ("dtype", name), ("seq", [..]), ("dict", {..}),
("nc", why) for anything not comparable.
"""
from __future__ import annotations

import ast
import os
import pickle
import queue
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NAMESPACES = ("torch", "torch.Tensor", "torch.nn.functional", "torch.linalg", "torch.fft", "torch.special")
RTOL, ATOL = 1e-4, 1e-5
HALF_RTOL, HALF_ATOL = 1e-2, 1e-3
DEFAULT_TIMEOUT = 30.0
# Outputs of these may differ by the sign of a vector (or a permutation of eigenpairs): compared up to sign.
SIGN_AMBIGUOUS = re.compile(r"\b(svd|svdvals|eig|eigh|eigvals|eigvalsh|qr|pca_lowrank|svd_lowrank|lobpcg|lstsq)\b")
OUT_NAME = re.compile(r"^_out\d+$")
SNAP = "__t2m_snap"

# Classes. Counted: examples whose torch run gives comparable values.
PASS, DTYPE, FLAGGED, WRONG, CRASH, CRASH_CONVERTER, NOT_COMPARABLE = (
    "PASS", "DTYPE", "FLAGGED", "WRONG", "CRASH", "CRASH-CONVERTER", "NOT-COMPARABLE")
SKIP_TORCH, SKIP_NO_VALUES, SKIP_NONDET = "SKIP-TORCH-FAILS", "SKIP-NO-VALUES", "SKIP-NONDETERMINISTIC"
COUNTED = (PASS, DTYPE, FLAGGED, WRONG, CRASH, CRASH_CONVERTER, NOT_COMPARABLE)
SKIPPED = (SKIP_TORCH, SKIP_NO_VALUES, SKIP_NONDET)
FAILING = (WRONG, CRASH, CRASH_CONVERTER)
CLASS_HELP = {
    PASS: "converted without a flag, every value equal (shape, dtype, values)",
    DTYPE: "converted without a flag, values equal, but a dtype width differs (e.g. int64 vs int32, float64 vs float32, 0-d array vs Python number)",
    FLAGGED: "the converter reported a non-info diagnostic (the tool says it could not translate something)",
    WRONG: "converted without a flag, a value, shape or dtype kind differs",
    CRASH: "converted without a flag, the MLX program raised, aborted or timed out",
    CRASH_CONVERTER: "torch2mlx.convert_source itself raised or hung",
    NOT_COMPARABLE: "values differ, but the MLX program's random draws did not line up with torch's (replay desynchronised)",
    SKIP_TORCH: "torch itself raises on the doc example (or it is not valid Python)",
    SKIP_NO_VALUES: "the torch run has no comparable value (only None, modules, strings, ...)",
    SKIP_NONDET: "every value changes between two torch runs replaying the same random draws (unrecorded randomness, torch.empty)",
}


# ----------------------------------------------------------------------------------------- extraction

@dataclass
class Example:
    name: str  # e.g. torch.add, torch.Tensor.scatter_, torch.nn.functional.pad
    doctest: str  # the `>>>` lines, prompts removed, with the imports the example lacks
    aliases: list = field(default_factory=list)  # other names whose docstring gives the same program
    error: str = ""  # not valid Python


def doctest_source(doc: str) -> str:
    """The `>>>` lines of a docstring (with their `...` continuation lines), prompts removed."""
    lines: list[str] = []
    in_example = False
    for raw in doc.splitlines():
        text = raw.strip()
        if text.startswith(">>>"):
            lines.append(text[4:] if text.startswith(">>> ") else text[3:])
            in_example = True
        elif in_example and text.startswith("..."):
            lines.append(text[4:] if text.startswith("... ") else text[3:])
        else:
            in_example = False
    return "\n".join(lines).strip("\n") + "\n" if any(l.strip() for l in lines) else ""


def add_imports(src: str) -> str:
    header = []
    if not re.search(r"^import torch\s*$", src, re.MULTILINE):
        header.append("import torch")
    uses = lambda alias: re.search(rf"(?<![\w.]){alias}\.", src) and not re.search(rf"\bas {alias}\b|import {alias}\b", src)
    if uses("F"):
        header.append("import torch.nn.functional as F")
    if uses("nn"):
        header.append("import torch.nn as nn")
    if uses("np"):
        header.append("import numpy as np")
    for module in ("numpy", "math", "itertools", "functools", "operator", "io", "os", "random", "collections", "warnings"):
        if uses(module):
            header.append(f"import {module}")
    for module in ("linalg", "fft", "special"):
        if uses(module):
            header.append(f"from torch import {module}")
    return "\n".join(header) + "\n" + src if header else src


def public_callables(namespace: str):
    """(qualified name, docstring) of the public callables of a namespace that have `>>>` examples."""
    import importlib
    import inspect

    import torch

    module = torch.Tensor if namespace == "torch.Tensor" else importlib.import_module(namespace)
    for attr in sorted(dir(module)):
        if attr.startswith("_"):
            continue
        try:
            obj = getattr(module, attr)
        except Exception:  # noqa: BLE001 - lazy attributes that fail to load
            continue
        if inspect.isclass(obj) or inspect.ismodule(obj) or not callable(obj):
            continue
        doc = getattr(obj, "__doc__", None)
        if isinstance(doc, str) and ">>>" in doc:
            yield f"{namespace}.{attr}", doc


def extract_examples(namespaces=NAMESPACES) -> list[Example]:
    """One example per docstring; docstrings giving the same program are merged (aliases)."""
    by_program: dict[str, Example] = {}
    for namespace in namespaces:
        for name, doc in public_callables(namespace):
            src = doctest_source(doc)
            if not src:
                continue
            program = add_imports(src)
            if program in by_program:
                by_program[program].aliases.append(name)
                continue
            example = Example(name, program)
            try:
                ast.parse(program)
            except SyntaxError as exc:
                example.error = f"SyntaxError: {exc.msg} (line {exc.lineno})"
            by_program[program] = example
    return list(by_program.values())


# ----------------------------------------------------------------------------------- instrumentation

def _segment(src: str, lines: list[str], node: ast.stmt) -> str:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.While, ast.With, ast.Try)):
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        return "\n".join(lines[first - 1:node.end_lineno])
    return ast.get_source_segment(src, node)


@dataclass
class Instrumented:
    torch_program: str  # outputs wrapped in __t2m_snap (a copy taken when the doc would print)
    outputs: dict  # _outN -> the doc's expression
    variables: list  # top-level names assigned by the example


def instrument(src: str, bare: frozenset = frozenset(), snap: bool = False) -> Instrumented:
    """Each top-level expression statement becomes `_outN = <expr>` (print(x) -> `_outN = x`; an in-place
    method call on a name, `x.add_(1)`, stays and is followed by `_outN = x`). Outputs in `bare` (torch gave
    None or something not comparable) stay plain statements, as in the doc."""
    tree = ast.parse(src)
    lines = src.splitlines()
    body, outputs, variables = [], {}, []
    n = 0
    for node in tree.body:
        text = _segment(src, lines, node)
        for target in _assigned(node):
            if target not in variables and not target.startswith("_"):
                variables.append(target)
        if not isinstance(node, ast.Expr) or isinstance(node.value, ast.Constant):
            body.append(text)
            continue
        name = f"_out{n}"
        n += 1
        value = node.value
        expr = None
        prefix = ""
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "print":
            args = [a for a in value.args if not isinstance(a, (ast.Constant, ast.JoinedStr, ast.Starred))]
            if args:
                expr = ", ".join(ast.get_source_segment(src, a) for a in args)
        elif (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and isinstance(value.func.value, ast.Name)
              and value.func.attr.endswith("_") and not value.func.attr.endswith("__")):
            prefix = text + "\n"
            expr = value.func.value.id
        else:
            expr = text
        if expr is None or name in bare:
            body.append(text)
            continue
        outputs[name] = expr
        body.append(f"{prefix}{name} = {SNAP}(({expr}))" if snap else f"{prefix}{name} = {expr}")
    return Instrumented("\n".join(body) + "\n", outputs, variables)


def _assigned(node: ast.stmt) -> list[str]:
    targets = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        targets = [node.target]
    names = []
    for t in targets:
        for sub in ast.walk(t):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                names.append(sub.id)
    return names


def wrap_outputs(code: str) -> str:
    """Converted code with each top-level `_outN = value` taking a snapshot (`__t2m_snap((value))`):
    MLX arrays can be updated in place (`a[0] = 1`), and the doc shows the value at that point."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    lines = [l.encode("utf-8") for l in code.split("\n")]
    edits = []
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and OUT_NAME.match(node.targets[0].id)):
            v = node.value
            edits.append((v.end_lineno, v.end_col_offset, b"))"))
            edits.append((v.lineno, v.col_offset, f"{SNAP}((".encode()))
    for line, col, text in sorted(edits, reverse=True):
        lines[line - 1] = lines[line - 1][:col] + text + lines[line - 1][col:]
    return "\n".join(l.decode("utf-8") for l in lines)


# ----------------------------------------------------------------------------------------- values

def dtype_kind(name: str) -> str:
    if name == "bool":
        return "b"
    if name.startswith("complex"):
        return "c"
    if name.startswith(("float", "bfloat")):
        return "f"
    if name.startswith("uint"):
        return "u"
    if name.startswith("int"):
        return "i"
    return "?"


def normalize(value: Any, depth: int = 0) -> tuple:
    """A framework value as a plain tagged tuple (see the module docstring)."""
    if depth > 6:
        return ("nc", "nested too deep")
    torch = sys.modules.get("torch")
    mx = sys.modules.get("mlx.core")
    if torch is not None and isinstance(value, torch.Tensor):
        try:
            t = value.detach()
            if t.layout != torch.strided:
                t = t.to_dense()
            if t.is_quantized:
                t = t.dequantize()
            t = t.cpu().resolve_conj().resolve_neg()
            name = str(t.dtype).replace("torch.", "")
            if t.dtype in (torch.bfloat16, torch.float16):
                t = t.float()
            return ("arr", t.numpy().copy(), name)
        except Exception as exc:  # noqa: BLE001 - nested, meta, uint16 ... tensors
            return ("nc", f"tensor without numpy view ({type(exc).__name__})")
    if mx is not None and isinstance(value, mx.array):
        name = str(value.dtype).split(".")[-1]
        if value.dtype == mx.bfloat16:
            value = value.astype(mx.float32)
        return ("arr", np.array(value), name)
    if isinstance(value, np.ndarray):
        return ("arr", value.copy(), value.dtype.name)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return ("num", value, "b")
    if isinstance(value, int):
        return ("num", value, "i")
    if isinstance(value, float):
        return ("num", value, "f")
    if isinstance(value, complex):
        return ("num", value, "c")
    if torch is not None and isinstance(value, torch.dtype):
        return ("dtype", str(value).replace("torch.", ""))
    if mx is not None and isinstance(value, mx.Dtype):
        return ("dtype", str(value).split(".")[-1])
    if isinstance(value, (tuple, list)):
        items = [normalize(v, depth + 1) for v in value]
        if items and all(i[0] == "nc" for i in items):
            return ("nc", f"{type(value).__name__} of {items[0][1]}")
        return ("seq", items)
    if isinstance(value, dict) and all(isinstance(k, (str, int)) for k in value):
        return ("dict", {k: normalize(v, depth + 1) for k, v in value.items()})
    return ("nc", type(value).__name__)


def describe_value(v: tuple) -> str:
    tag = v[0]
    if tag == "arr":
        arr = v[1]
        flat = np.array2string(arr.ravel()[:6], precision=4, separator=", ", threshold=10)
        return f"{v[2]}{list(arr.shape)} {flat}{' ...' if arr.size > 6 else ''}"
    if tag == "num":
        return repr(v[1])
    if tag == "dtype":
        return v[1]
    if tag == "seq":
        return "[" + ", ".join(describe_value(i) for i in v[1][:4]) + (", ..." if len(v[1]) > 4 else "") + "]"
    if tag == "dict":
        return "{" + ", ".join(f"{k}: {describe_value(i)}" for k, i in list(v[1].items())[:4]) + "}"
    return f"<{v[1]}>"


EQUAL, DTYPE_ONLY, DIFFER = 0, 1, 2


def compare_values(e: tuple, a: tuple, up_to_sign: bool = False, where: str = "", ref: tuple | None = None) -> tuple[int, str]:
    """(EQUAL | DTYPE_ONLY | DIFFER, description). `e` is torch's value; its `nc` parts are not compared.
    `ref`: the same value computed by torch in float64 (the example re-run with float64 as the default
    dtype), or None: a float32 value is also right when its error against it is no larger than twice
    torch float32's own (see _within_torch_rounding)."""
    if e[0] == "nc":
        return EQUAL, ""
    if a[0] == "nc":
        return DIFFER, f"{where}: MLX gave {a[1]}, torch {describe_value(e)}"
    if e[0] in ("arr", "num") and a[0] in ("arr", "num"):
        return _compare_numeric(e, a, up_to_sign, where, ref)
    if e[0] != a[0]:
        return DIFFER, f"{where}: MLX {describe_value(a)} vs torch {describe_value(e)}"
    if e[0] == "dtype":
        if e[1] == a[1]:
            return EQUAL, ""
        if dtype_kind(e[1]) == dtype_kind(a[1]):
            return DTYPE_ONLY, f"{where}: dtype {a[1]} vs torch {e[1]}"
        return DIFFER, f"{where}: dtype {a[1]} vs torch {e[1]}"
    if e[0] == "seq":
        if len(e[1]) != len(a[1]):
            return DIFFER, f"{where}: {len(a[1])} items vs torch {len(e[1])}"
        refs = ref[1] if ref is not None and ref[0] == "seq" and len(ref[1]) == len(e[1]) else [None] * len(e[1])
        items = [(i, *compare_values(x, y, up_to_sign, f"{where}[{i}]", r)) for i, (x, y, r) in enumerate(zip(e[1], a[1], refs))]
    else:  # dict
        if set(e[1]) != set(a[1]):
            return DIFFER, f"{where}: keys {sorted(map(str, a[1]))} vs torch {sorted(map(str, e[1]))}"
        refs = ref[1] if ref is not None and ref[0] == "dict" else {}
        items = [(k, *compare_values(e[1][k], a[1][k], up_to_sign, f"{where}[{k!r}]", refs.get(k))) for k in e[1]]
    worst = max([lvl for _, lvl, _ in items], default=EQUAL)
    return worst, next((msg for _, lvl, msg in items if lvl == worst and msg), "")


def _within_torch_rounding(e, ev, y, ref, rtol, atol) -> bool:
    """MLX's float32 value `y` against torch's float64 result `ref` of the same example: right when it is within
    the tolerance of it, or when its largest error is no larger than twice torch float32's own (`ev`): a sum of
    hundreds of float32 terms (conv3d) rounds beyond rtol 1e-4 in torch as much as in MLX. Only a float64
    array of the same shape as torch's float32 one counts as a reference (an example that fixes its dtype
    gives none)."""
    if ref is None or ref[0] != "arr" or e[0] != "arr" or e[2] != "float32" or ref[2] != "float64":
        return False
    r = ref[1]
    if r.shape != ev.shape or not np.all(np.isfinite(r)):
        return False
    x = ev.astype(np.float64)
    if not np.all(np.isfinite(y)):
        return False
    if np.allclose(y, r, rtol=rtol, atol=atol):
        return True
    return bool(np.max(np.abs(y - r)) <= 2 * np.max(np.abs(x - r)))


def _compare_numeric(e, a, up_to_sign, where, ref=None):
    note = ""
    if e[0] == "num":
        ev, ename, eshape = np.asarray(e[1]), {"b": "bool", "i": "int", "f": "float", "c": "complex"}[e[2]], ()
    else:
        ev, ename, eshape = e[1], e[2], e[1].shape
    if a[0] == "num":
        av, aname, ashape = np.asarray(a[1]), {"b": "bool", "i": "int", "f": "float", "c": "complex"}[a[2]], ()
    else:
        av, aname, ashape = a[1], a[2], a[1].shape
    if e[0] != a[0]:
        note = f"{where}: MLX gave a {'Python number' if a[0] == 'num' else '0-d array'}, torch a {'Python number' if e[0] == 'num' else 'tensor'}"
    if tuple(eshape) != tuple(ashape):
        return DIFFER, f"{where}: shape {tuple(ashape)} vs torch {tuple(eshape)}"
    ek, ak = dtype_kind(ename), dtype_kind(aname)
    if ek != ak and not ({ek, ak} <= {"i", "u"}):
        return DIFFER, f"{where}: dtype {aname} vs torch {ename} ({describe_value(a)} vs {describe_value(e)})"
    if ek in "fc":
        half = any(n in ("float16", "bfloat16") for n in (ename, aname))
        rtol, atol = (HALF_RTOL, HALF_ATOL) if half else (RTOL, ATOL)
        target = np.complex128 if ek == "c" else np.float64
        x, y = ev.astype(target), av.astype(target)
        ok = np.allclose(y, x, rtol=rtol, atol=atol, equal_nan=True)
        if not ok and ek == "f" and not half:
            ok = _within_torch_rounding(e, ev, y, ref, rtol, atol)
        if not ok and up_to_sign:
            ok = np.allclose(np.abs(y), np.abs(x), rtol=rtol, atol=atol, equal_nan=True)
        if not ok:
            with np.errstate(invalid="ignore"):
                err = np.nanmax(np.abs(y - x)) if x.size else 0
            return DIFFER, f"{where}: values differ (max abs error {err:.3g}): MLX {describe_value(a)} vs torch {describe_value(e)}"
    elif not np.array_equal(ev.astype(np.int64) if ek != "b" else ev, av.astype(np.int64) if ak != "b" else av):
        return DIFFER, f"{where}: values differ: MLX {describe_value(a)} vs torch {describe_value(e)}"
    if note:
        return DTYPE_ONLY, note
    if e[0] == "arr" and ename != aname:
        return DTYPE_ONLY, f"{where}: dtype {aname} vs torch {ename}"
    if e[0] == "num" and e[2] != a[2]:
        return DTYPE_ONLY, f"{where}: {aname} vs torch {ename}"
    return EQUAL, ""


def same_values(x: tuple, y: tuple) -> bool:
    return compare_values(x, y)[0] == EQUAL and compare_values(y, x)[0] == EQUAL


# ------------------------------------------------------------------------------------ forked runs

def _register_source(code: str) -> None:
    """So that tracebacks through `<example>` show the failing line."""
    import linecache
    linecache.cache["<example>"] = (len(code), None, code.splitlines(True), "<example>")


def describe_exception(exc: BaseException, filename: str = "<example>") -> dict:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    text = str(exc).strip().split("\n")[0][:400]
    return {"type": type(exc).__name__, "message": text, "line": frames[-1].lineno if frames else 0,
            "source_line": (frames[-1].line or "") if frames else ""}


def fork_call(fn: Callable[[], Any], timeout: float, cwd: str) -> dict:
    """Run fn() in a forked child. {"status": ok|error|signal|died|timeout, "value"|"error", "stderr"}."""
    read_fd, write_fd = os.pipe()
    err = tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_fd)
            os.setpgid(0, 0)
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(err.fileno(), 2)
            os.chdir(cwd)
            try:
                result = {"status": "ok", "value": fn()}
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                result = {"status": "error", "error": describe_exception(exc)}
            try:
                data = pickle.dumps(result, protocol=4)
            except Exception as exc:  # noqa: BLE001
                data = pickle.dumps({"status": "error", "error": {"type": "PickleError", "message": str(exc)[:200], "line": 0, "source_line": ""}})
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view):]
        finally:
            os._exit(0)
    os.close(write_fd)
    chunks, deadline, timed_out = [], time.monotonic() + timeout, False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([read_fd], [], [], min(left, 1.0))
        if ready:
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    os.close(read_fd)
    if timed_out:
        for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                target()
            except OSError:
                pass
    _, status = os.waitpid(pid, 0)
    err.seek(0, 2)
    size = err.tell()
    err.seek(max(0, size - 4000))
    stderr = err.read().decode("utf-8", "replace")
    err.close()
    if timed_out:
        return {"status": "timeout", "stderr": stderr}
    if chunks:
        try:
            result = pickle.loads(b"".join(chunks))
            result["stderr"] = stderr
            return result
        except Exception:  # noqa: BLE001 - truncated by a crash while writing
            pass
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return {"status": "signal", "signal": signal.Signals(sig).name if sig in signal.valid_signals() else str(sig), "stderr": stderr}
    return {"status": "died", "exitcode": os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1, "stderr": stderr}


def _collect(namespace: dict, keys) -> dict:
    out = {}
    for key in keys:
        if key not in namespace:
            out[key] = ("nc", "not defined")
        else:
            value = namespace[key]
            out[key] = value if isinstance(value, _Snap) else normalize(value)
    return out


class _Snap(tuple):
    """A normalized value taken by __t2m_snap (tells it apart from a tuple the program made)."""


def _snap(value):
    return _Snap(normalize(value))


def _plain(values: dict) -> dict:
    return {k: tuple(v) if isinstance(v, _Snap) else v for k, v in values.items()}


# ------------------------------------------------------------------------------- torch side (record)

class Tape:
    """Random draws in call order: record them (first torch run) or replay them (second torch run)."""

    def __init__(self, records=None):
        self.replay = records is not None
        self.records = list(records or [])
        self.pos = 0
        self.desync = ""

    def next(self, kind: str, shape: tuple):
        if self.desync or self.pos >= len(self.records):
            self.desync = self.desync or f"more draws than recorded ({kind}{list(shape)})"
            return None
        k, value = self.records[self.pos]
        if k != kind or tuple(value.shape) != tuple(shape):
            self.desync = f"draw #{self.pos}: {kind}{list(shape)} vs recorded {k}{list(value.shape)}"
            return None
        self.pos += 1
        return value


def _arg(args, kwargs, index, name, default=None):
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


_TAPE: list = [None]  # the tape of the torch run in progress (None: the wrappers only pass through)


def install_torch_tape() -> None:
    """Wrap torch's random functions (once per worker): they record into / replay from _TAPE[0]."""
    import torch

    def f64(x):
        x = torch.as_tensor(x).detach()
        return x.to(torch.complex128) if x.is_complex() else x.double()

    def affine(kind, loc_scale):
        """Draw x = loc + scale * z: record z, replay loc + scale * z."""
        def canon(out, args, kwargs):
            loc, scale = loc_scale(args, kwargs)
            return ((f64(out) - f64(loc)) / f64(scale)).numpy()

        def apply(out, z, args, kwargs):
            loc, scale = loc_scale(args, kwargs)
            return f64(loc) + f64(scale) * torch.from_numpy(z)
        return kind, canon, apply

    def direct(kind, as_bool=False):
        def canon(out, args, kwargs):
            value = out.detach().cpu().numpy().copy()
            return value != 0 if as_bool else value
        return kind, canon, lambda out, value, args, kwargs: torch.from_numpy(np.asarray(value))

    standard = affine("normal", lambda a, k: (0.0, 1.0))
    unit = affine("uniform", lambda a, k: (0.0, 1.0))
    normal = affine("normal", lambda a, k: (_arg(a, k, 0, "mean", 0.0), _arg(a, k, 1, "std", 1.0)))
    normal_ = affine("normal", lambda a, k: (_arg(a, k, 1, "mean", 0.0), _arg(a, k, 2, "std", 1.0)))
    uniform_ = affine("uniform", lambda a, k: (_arg(a, k, 1, "from", 0.0), f64(_arg(a, k, 2, "to", 1.0)) - f64(_arg(a, k, 1, "from", 0.0))))
    table = [
        (torch, "randn", standard), (torch, "randn_like", standard), (torch, "rand", unit), (torch, "rand_like", unit),
        (torch, "normal", normal), (torch.Tensor, "normal_", normal_), (torch.Tensor, "uniform_", uniform_),
        (torch, "randint", direct("randint")), (torch, "randint_like", direct("randint")), (torch.Tensor, "random_", direct("randint")),
        (torch, "randperm", direct("permutation")),
        (torch, "bernoulli", direct("bernoulli", True)), (torch.Tensor, "bernoulli", direct("bernoulli", True)),
        (torch.Tensor, "bernoulli_", direct("bernoulli", True)),
        (torch, "multinomial", direct("categorical")), (torch.Tensor, "multinomial", direct("categorical")),
    ]
    for owner, attr, (kind, canon, apply) in table:
        _wrap_torch(owner, attr, kind, canon, apply)
    # In the replaying run, uninitialized memory gets other contents than in the recording run.
    for owner, attr in ((torch, "empty"), (torch, "empty_like"), (torch, "empty_strided"), (torch, "empty_permuted"),
                        (torch.Tensor, "new_empty"), (torch.Tensor, "new_empty_strided")):
        if hasattr(owner, attr):
            _fill_uninitialized(owner, attr)


def _fill_uninitialized(owner, attr):
    import torch
    original = getattr(owner, attr)

    def wrapper(*args, **kwargs):
        out = original(*args, **kwargs)
        tape = _TAPE[0]
        if tape is not None and tape.replay and isinstance(out, torch.Tensor):
            try:
                with torch.no_grad():
                    out.fill_(True if out.dtype == torch.bool else 7)
            except Exception:  # noqa: BLE001 - quantized, meta ... tensors stay as they are
                pass
        return out

    wrapper.__name__ = attr
    wrapper.__doc__ = getattr(original, "__doc__", None)
    setattr(owner, attr, wrapper)


def _wrap_torch(owner, attr, kind, canon, apply):
    import torch
    original = getattr(owner, attr)

    def wrapper(*args, **kwargs):
        out = original(*args, **kwargs)
        tape = _TAPE[0]
        if tape is None or not isinstance(out, torch.Tensor) or tape.desync:
            return out
        drawn = kind + "-complex" if out.is_complex() else kind  # never matches an mx.random draw
        # torch.rand(..., dtype=complex64) is torch.rand(..., 2) viewed as complex (real, imaginary interleaved):
        # recorded as that real draw, which the translation's mx.random.uniform(shape + (2,)) replays
        pairs = attr in ("rand", "rand_like") and out.dtype == torch.complex64
        try:
            if pairs:
                if tape.replay:
                    value = tape.next(kind, tuple(out.shape) + (2,))
                    if value is not None:
                        with torch.no_grad():
                            out.copy_(torch.view_as_complex(torch.from_numpy(np.asarray(value, dtype=np.float32)).contiguous()))
                else:
                    tape.records.append((kind, torch.view_as_real(out.detach()).double().numpy().copy()))
            elif tape.replay:
                value = tape.next(drawn, tuple(out.shape))
                if value is not None:
                    with torch.no_grad():
                        out.copy_(apply(out, value, args, kwargs).reshape(out.shape))
            else:
                tape.records.append((drawn, np.asarray(canon(out, args, kwargs))))
        except Exception as exc:  # noqa: BLE001 - recording must never change what torch does
            tape.desync = f"{attr}: {type(exc).__name__}: {exc}"[:200]
        return out

    wrapper.__name__ = attr
    wrapper.__doc__ = getattr(original, "__doc__", None)
    setattr(owner, attr, wrapper)


def _seed_all(seed: int) -> None:
    import random
    random.seed(seed)
    np.random.seed(seed)


class _TorchState:
    """Global torch settings a doc example may change (set_default_dtype, ...), put back after each run."""

    def __init__(self):
        import copy

        import torch
        self.torch = torch
        self.saved = (torch.get_default_dtype(), torch.is_grad_enabled(), torch.are_deterministic_algorithms_enabled(),
                      torch.is_deterministic_algorithms_warn_only_enabled(), torch.is_anomaly_enabled(),
                      torch.get_float32_matmul_precision(), copy.copy(torch._tensor_str.PRINT_OPTS.__dict__),
                      torch.get_num_threads())

    def restore(self):
        """Only what changed (some setters import a lot the first time they run); never raises."""
        torch = self.torch
        dtype, grad, det, warn, anomaly, precision, printopts, threads = self.saved
        steps = (
            lambda: torch.get_default_dtype() != dtype and torch.set_default_dtype(dtype),
            lambda: torch.set_grad_enabled(grad),
            lambda: ((torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) != (det, warn)
                     and torch.use_deterministic_algorithms(det, warn_only=warn)),
            lambda: torch.is_anomaly_enabled() != anomaly and torch.autograd.set_detect_anomaly(anomaly),
            lambda: torch.get_float32_matmul_precision() != precision and torch.set_float32_matmul_precision(precision),
            lambda: torch._tensor_str.PRINT_OPTS.__dict__.update(printopts),
            lambda: torch.get_num_threads() != threads and torch.set_num_threads(threads),
            lambda: torch.set_default_device(None),  # set_default_device("cuda") makes every later tensor fail
        )
        for step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001
                pass


def torch_run(program: str, keys: list, records: list | None, seed: int, timeout: float, float64: bool = False) -> dict:
    """One run of the example in this process (a torch worker), in a fresh namespace; `float64`: with float64
    as torch's default dtype (the reference run: tensors made from Python floats and random draws, replayed
    from `records`, come out float64)."""
    import warnings

    import torch
    state = _TorchState()
    tape = Tape(records)
    _TAPE[0] = tape
    try:
        with warnings.catch_warnings(), _Alarm(timeout, "the torch run"):
            warnings.simplefilter("ignore")
            _seed_all(seed)
            torch.manual_seed(seed)
            if float64:
                torch.set_default_dtype(torch.float64)
            namespace = {"__name__": "__main__", SNAP: _snap}
            _register_source(program)
            exec(compile(program, "<example>", "exec"), namespace)  # noqa: S102 - torch's own doc examples
            values = _plain(_collect(namespace, keys))
        return {"status": "ok", "values": values, "records": tape.records, "desync": tape.desync}
    except BaseException as exc:  # noqa: BLE001 - torch rejects its own example: skipped
        return {"status": "error", "error": describe_exception(exc)}
    finally:
        _TAPE[0] = None
        state.restore()


def torch_task(task: dict, cwd: str) -> dict:
    """Two torch runs in this worker: the first records the random draws, the second (another seed,
    fresh uninitialized memory) replays them; values that differ between the two depend on something
    the tape does not see (other random functions, torch.empty)."""
    program, keys, timeout = task["program"], task["keys"], task["timeout"]
    started = time.monotonic()
    first = torch_run(program, keys, None, 0, timeout)
    if first["status"] != "ok":
        return {"status": "error", "error": first["error"], "seconds": time.monotonic() - started}
    second = torch_run(program, keys, first["records"], 1, timeout)
    if second["status"] != "ok":
        nondet = list(keys)
    else:
        nondet = [k for k in keys if not same_values(first["values"][k], second["values"].get(k, ("nc", "missing")))]
    reference = {}
    if any(_has_float32(first["values"][k]) for k in keys if k not in nondet):
        # the float64 reference: the same program (same recorded draws) with float64 as the default dtype
        run64 = torch_run(program, keys, first["records"], 0, timeout, float64=True)
        if run64["status"] == "ok" and not run64["desync"]:
            reference = {k: v for k, v in run64["values"].items() if _has_float32(first["values"].get(k, ("nc",)))}
    return {"status": "ok", "values": first["values"], "records": first["records"], "nondet": nondet,
            "reference": reference, "seconds": time.monotonic() - started}


def _has_float32(value: tuple) -> bool:
    if value[0] == "arr":
        return value[2] == "float32"
    if value[0] == "seq":
        return any(_has_float32(v) for v in value[1])
    if value[0] == "dict":
        return any(_has_float32(v) for v in value[1].values())
    return False


# ------------------------------------------------------------------------------- MLX side (replay)

class MlxReplay:
    """mx.random functions patched to return torch's recorded draws, in order, shape-checked. On the
    first mismatch the replay stops (desync) and MLX draws its own numbers from then on."""

    def __init__(self, records):
        self.tape = Tape(records)
        self.unreplayable = ""

    def install(self) -> None:
        import mlx.core as mx
        rnd = mx.random
        orig = {name: getattr(rnd, name) for name in
                ("normal", "uniform", "randint", "bernoulli", "permutation", "categorical", "gumbel", "truncated_normal",
                 "laplace", "multivariate_normal")}
        tape = self.tape

        def shape_of(shape):
            return tuple(int(s) for s in shape) if shape is not None else ()

        def normal(shape=(), dtype=mx.float32, loc=None, scale=None, key=None, stream=None):
            complex_ = dtype is not None and mx.issubdtype(dtype, mx.complexfloating)
            z = tape.next("normal-complex" if complex_ else "normal", shape_of(shape))
            if z is None:
                return orig["normal"](shape=shape, dtype=dtype, loc=loc, scale=scale, key=key)
            out = mx.array(z.astype(np.complex64 if complex_ else np.float32))
            if scale is not None:
                out = out * scale
            if loc is not None:
                out = out + loc
            return out.astype(dtype or mx.float32)

        def uniform(low=0, high=1, shape=(), dtype=mx.float32, key=None, stream=None):
            u = tape.next("uniform", shape_of(shape))
            if u is None:
                return orig["uniform"](low=low, high=high, shape=shape, dtype=dtype, key=key)
            return (low + (high - low) * mx.array(u.astype(np.float32))).astype(dtype or mx.float32)

        def randint(low, high, shape=(), dtype=mx.int32, key=None, stream=None):
            v = tape.next("randint", shape_of(shape))
            if v is None:
                return orig["randint"](low, high, shape=shape, dtype=dtype, key=key)
            return mx.array(v).astype(dtype or mx.int32)

        def bernoulli(p=0.5, shape=None, key=None, stream=None):
            want = shape_of(shape) if shape is not None else tuple(getattr(p, "shape", ()))
            v = tape.next("bernoulli", want)
            if v is None:
                return orig["bernoulli"](p, shape=shape, key=key) if shape is not None else orig["bernoulli"](p, key=key)
            return mx.array(v.astype(bool))

        def permutation(x, axis=0, key=None, stream=None):
            n = int(x) if isinstance(x, int) else x.shape[axis]
            v = tape.next("permutation", (n,))
            if v is None:
                return orig["permutation"](x, axis=axis, key=key)
            perm = mx.array(v.astype(np.int32))
            return perm if isinstance(x, int) else mx.take(x, perm, axis=axis)

        def categorical(logits, axis=-1, shape=None, num_samples=None, key=None, stream=None):
            rest = [d for i, d in enumerate(logits.shape) if i != axis % logits.ndim]
            want = shape_of(shape) if shape is not None else tuple(rest) + ((num_samples,) if num_samples else ())
            v = tape.next("categorical", want)
            if v is None:
                kwargs = {"axis": axis, "key": key}
                if shape is not None:
                    kwargs["shape"] = shape
                if num_samples is not None:
                    kwargs["num_samples"] = num_samples
                return orig["categorical"](logits, **kwargs)
            return mx.array(v).astype(mx.uint32)

        def unreplayable(name):
            def draw(*args, **kwargs):
                tape.desync = tape.desync or f"mx.random.{name} cannot replay torch's draws"
                return orig[name](*args, **kwargs)
            return draw

        for fn in (normal, uniform, randint, bernoulli, permutation, categorical):
            setattr(rnd, fn.__name__, fn)
        for name in ("gumbel", "truncated_normal", "laplace", "multivariate_normal"):
            setattr(rnd, name, unreplayable(name))


def mlx_child(code: str, keys: list, records: list) -> dict:
    import warnings

    import mlx.core as mx
    warnings.simplefilter("ignore")
    _seed_all(0)
    mx.random.seed(0)
    replay = MlxReplay(records)
    replay.install()
    namespace = {"__name__": "__main__", SNAP: _snap}
    _register_source(code)
    exec(compile(code, "<example>", "exec"), namespace)  # noqa: S102 - converted doc examples
    values = _plain(_collect(namespace, keys))
    return {"values": values, "desync": replay.tape.desync, "unconsumed": len(records) - replay.tape.pos}


class _Alarm:
    """A SIGALRM timeout around Python code (main thread only; elsewhere no timeout)."""

    def __init__(self, seconds, what):
        self.seconds, self.what = max(1, int(seconds)), what
        self.active = threading.current_thread() is threading.main_thread()

    def _fire(self, *_):
        raise TimeoutError(f"{self.what} took more than {self.seconds}s")

    def __enter__(self):
        if self.active:
            self.old = signal.signal(signal.SIGALRM, self._fire)
            signal.alarm(self.seconds)
        return self

    def __exit__(self, *exc):
        if self.active:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, self.old)


def convert(source: str, timeout: float) -> dict:
    """torch2mlx.convert_source in this process: {"status": ok|flagged|convert-crash, "code", "diagnostics"}."""
    import torch2mlx
    try:
        with _Alarm(timeout, "the conversion"):
            result = torch2mlx.convert_source(source, "example.py")
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        info = describe_exception(exc, filename="")
        info["traceback"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-6:])[-2000:]
        return {"status": "convert-crash", "error": info}
    diagnostics = [{"severity": d.severity.value, "rule_id": d.rule_id, "kind": d.kind.value, "message": d.message,
                    "line": d.line} for d in result.diagnostics]
    return {"status": "flagged" if result.flagged else "ok", "code": result.code, "diagnostics": diagnostics}


def mlx_task(task: dict, cwd: str) -> dict:
    """Run converted code in a fork of this (MLX) worker."""
    started = time.monotonic()
    run = fork_call(lambda: mlx_child(wrap_outputs(task["code"]), task["keys"], task["records"]), task["timeout"], cwd)
    out = {"stderr": run.get("stderr", "")[-1500:], "seconds": time.monotonic() - started}
    if run["status"] == "ok":
        out.update(status="ok", **run["value"])
    else:
        out.update(status=run["status"], error=_crash_reason(run))
    return out


def _crash_reason(run: dict) -> dict:
    if run["status"] == "error":
        return run["error"]
    stderr = [l for l in run.get("stderr", "").splitlines() if l.strip()]
    meaningful = [l for l in stderr if "terminat" in l or "rror" in l or "xception" in l or "Abort" in l]
    tail = (meaningful or stderr or [""])[-1].strip()[:300]
    if run["status"] == "timeout":
        return {"type": "Timeout", "message": "no result within the timeout", "line": 0, "source_line": ""}
    if run["status"] == "signal":
        return {"type": run["signal"], "message": tail, "line": 0, "source_line": ""}
    return {"type": "ProcessDied", "message": f"exit code {run.get('exitcode')}: {tail}", "line": 0, "source_line": ""}


# ------------------------------------------------------------------------------------------ workers

class _BlockTorch:
    """A meta path finder: `import torch` (and torch.*) raises ImportError in the MLX workers."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is blocked in the MLX run (import {name})")


def block_torch() -> None:
    for name in list(sys.modules):
        if name == "torch" or name.startswith("torch."):
            del sys.modules[name]
    if not any(isinstance(f, _BlockTorch) for f in sys.meta_path):
        sys.meta_path.insert(0, _BlockTorch())


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=4)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _receive(stream):
    head = stream.read(8)
    if len(head) < 8:
        return None
    (size,) = struct.unpack("<Q", head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def _receive_within(fd: int, deadline: float):
    """A message from a worker's pipe; None if it closed, "timeout" past the deadline."""
    def read(n):
        data = bytearray(n)
        view, pos = memoryview(data), 0
        while pos < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                got = os.readv(fd, [view[pos:]])
                if not got:
                    return None
                pos += got
        return bytes(data)

    head = read(8)
    if not isinstance(head, bytes):
        return head
    body = read(struct.unpack("<Q", head)[0])
    return pickle.loads(body) if isinstance(body, bytes) else body


def _torch_healthy() -> bool:
    try:
        import torch
        return (torch.get_default_dtype() == torch.float32 and torch.is_grad_enabled()
                and torch.ones(2).add(1).sum().item() == 4.0 and str(torch.ones(1).device) == "cpu")
    except Exception:  # noqa: BLE001
        return False


def worker_main(side: str, cwd: str) -> None:
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.makedirs(cwd, exist_ok=True)
    if side == "mlx":
        block_torch()
        import mlx.core
        import mlx.nn  # noqa: F401
        handler = mlx_task
    else:
        import torch
        import torch.testing
        torch.set_num_threads(1)
        install_torch_tape()
        os.chdir(cwd)  # files the examples write (torch.save) land here
        handler = torch_task
    while True:
        task = _receive(proto_in)
        if task is None:
            return
        try:
            result = handler(task, cwd)
        except BaseException as exc:  # noqa: BLE001 - the worker must keep serving
            result = {"status": "worker-error", "error": describe_exception(exc, filename="")}
        healthy = side == "mlx" or _torch_healthy()
        result["restart"] = not healthy  # an example left torch in a state _TorchState does not put back
        _send(proto_out, result)
        if not healthy:
            return


class WorkerPool:
    """`jobs` worker processes of one side, started at once (their imports overlap other work).
    submit() queues a task; a thread per worker sends it, waits for the result (killing and
    restarting a worker past the deadline) and hands it to the task's callback. Nothing in this
    process forks but subprocess."""

    def __init__(self, side: str, jobs: int, workdir: str, deadline: float):
        self.side, self.workdir = side, workdir
        self.deadline = deadline  # seconds a worker may take for one task before it is killed
        self.queue: queue.Queue = queue.Queue()
        self.started = 0  # worker processes started (restarts included)
        self.threads = [threading.Thread(target=self._serve, args=(k,), daemon=True) for k in range(max(1, jobs))]
        for t in self.threads:
            t.start()

    def _start(self, index: int):
        self.started += 1
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MLX_DEVICE="cpu", PYTHONHASHSEED="0")
        cwd = os.path.join(self.workdir, f"{self.side}{index}")
        log = open(os.path.join(self.workdir, f"{self.side}{index}.log"), "ab")
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", self.side, cwd],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, cwd=str(ROOT), bufsize=0)
        log.close()
        return proc

    def submit(self, task: dict, callback: Callable[[dict], None]) -> None:
        self.queue.put((task, callback))

    def close(self) -> None:
        """Wait for every submitted task, then stop the workers."""
        for _ in self.threads:
            self.queue.put(None)
        for t in self.threads:
            t.join()

    def _serve(self, index: int) -> None:
        proc = self._start(index)
        while True:
            item = self.queue.get()
            if item is None:
                break
            task, callback = item
            if proc is None:
                proc = self._start(index)
            try:
                _send(proc.stdin, task)
                result = _receive_within(proc.stdout.fileno(), time.monotonic() + self.deadline)
            except (BrokenPipeError, OSError):
                result = None
            if not isinstance(result, dict):
                proc.kill()
                proc.wait()
                proc = None
                timeout = result == "timeout"
                result = {"status": "worker-died", "error": {
                    "type": "Timeout" if timeout else "WorkerDied", "line": 0, "source_line": "",
                    "message": "the worker gave no result within the timeout" if timeout else "the worker process died"}}
            if result.pop("restart", False):  # the worker exits after this result; start a fresh one
                proc.wait()
                proc = None
            try:
                callback(result)
            except Exception:  # noqa: BLE001 - a callback bug must not leave close() waiting
                traceback.print_exc()
        if proc is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
            proc.wait()


# --------------------------------------------------------------------------------------- the suite

@dataclass
class Outcome:
    name: str
    cls: str
    reason: str = ""
    aliases: list = field(default_factory=list)
    doctest: str = ""  # the doc's program (imports added)
    source: str = ""  # what the converter was given
    code: str = ""  # what it gave back
    rule_ids: list = field(default_factory=list)
    flags: list = field(default_factory=list)  # first lines of the non-info diagnostics
    cause: str = ""  # grouping key for crashes / skips
    error_line: str = ""
    seconds: float = 0.0  # torch runs + conversion + MLX run
    compared: list = field(default_factory=list)  # the values compared (_outN, variables)
    flag_kinds: list = field(default_factory=list)  # diagnostic kinds of the flags (no-equivalent, ...)
    flagged_run: str = ""  # FLAGGED and run anyway (--run-flagged): the class it would have had
    flagged_run_reason: str = ""

    def to_json(self) -> dict:
        return dict(self.__dict__)


RUN_INFO: dict = {}  # worker processes started by the last run_suite (restarts show here)


def run_suite(examples: list[Example], jobs: int = 2, timeout: float = DEFAULT_TIMEOUT, code_for: dict | None = None,
              progress: Callable[[str, int, int], None] | None = None, run_flagged: bool = False) -> list[Outcome]:
    """Classify each example. `code_for` maps an example name to MLX code used instead of converting
    (the tests give deliberately wrong or aborting programs). With run_flagged, FLAGGED examples are
    run too and Outcome.flagged_run says what they would have been (they stay FLAGGED)."""
    workdir = tempfile.mkdtemp(prefix="t2m-docstrings-")
    try:
        return _run_suite(examples, jobs, timeout, code_for or {}, progress, workdir, run_flagged)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run_suite(examples, jobs, timeout, code_for, progress, workdir, run_flagged):
    """A pipeline: torch results are converted (here, in the main thread) as they come, and their MLX
    runs queued at once; both pools start at the beginning."""
    outcomes: dict[str, Outcome] = {}
    torch_pool = WorkerPool("torch", jobs, workdir, 2 * timeout + 30)
    mlx_pool = WorkerPool("mlx", jobs, workdir, timeout + 30)
    torch_done: queue.Queue = queue.Queue()
    runnable = []
    try:
        for ex in examples:
            outcome = Outcome(ex.name, "", aliases=ex.aliases, doctest=ex.doctest)
            outcomes[ex.name] = outcome
            if ex.error:
                outcome.cls, outcome.reason, outcome.cause = SKIP_TORCH, ex.error, "SyntaxError (not valid Python)"
                continue
            inst = instrument(ex.doctest, snap=True)
            task = {"program": inst.torch_program, "keys": list(inst.outputs) + inst.variables, "timeout": timeout}
            torch_pool.submit(task, lambda res, ex=ex: torch_done.put((ex, res)))
            runnable.append(ex)
        if not code_for or len(code_for) < len(runnable):
            convert("import torch\nx = torch.ones(2)\n", timeout * 4)  # loads the rule table while torch runs
        pending = []
        mlx_results: dict = {}
        counts = {"torch": 0, "mlx": 0, "convert": 0}
        lock = threading.Lock()

        def mlx_finished(name, res):
            with lock:
                mlx_results[name] = res
                counts["mlx"] += 1
                n = counts["mlx"]
            if progress:
                progress("mlx", n, None)

        for _ in runnable:
            ex, res = torch_done.get()
            counts["torch"] += 1
            if progress:
                progress("torch", counts["torch"], len(runnable))
            conv = _after_torch(outcomes[ex.name], ex, res, code_for, timeout)
            if conv is None:
                continue
            counts["convert"] += 1
            pending.append((ex, res, conv))
            if conv["status"] == "ok" or (run_flagged and conv["status"] == "flagged"):
                mlx_pool.submit({"code": conv["code"], "keys": conv["keys"], "records": res["records"], "timeout": timeout},
                                lambda r, name=ex.name: mlx_finished(name, r))
    finally:
        torch_pool.close()
        mlx_pool.close()
        RUN_INFO.update(torch_workers=torch_pool.started, mlx_workers=mlx_pool.started)
    if progress:
        progress("mlx", counts["mlx"], counts["mlx"])
    for ex, tres, conv in pending:
        mres = dict(conv)
        if conv["status"] == "ok":
            mres.update(mlx_results[ex.name])
        classify(outcomes[ex.name], ex, tres, mres, conv["keys"])
        if conv["status"] == "flagged" and ex.name in mlx_results:
            would = Outcome(ex.name, "")
            classify(would, ex, tres, {**conv, "diagnostics": [], **mlx_results[ex.name]}, conv["keys"])
            outcomes[ex.name].flagged_run = would.cls
            outcomes[ex.name].flagged_run_reason = would.reason.split("\n")[0][:300]
    return [outcomes[ex.name] for ex in examples]


def _after_torch(outcome: Outcome, ex: Example, res: dict, code_for: dict, timeout: float) -> dict | None:
    """Classify a skipped example; else convert it (the conversion result, with the keys to compare)."""
    outcome.seconds = res.get("seconds", 0.0)
    if res["status"] != "ok":
        err = res["error"]
        outcome.cls, outcome.reason = SKIP_TORCH, f"{err['type']}: {err['message']}"
        outcome.cause = group_key(err["type"], err["message"])
        return None
    values = res["values"]
    comparable = [k for k, v in values.items() if v[0] != "nc" and k not in res["nondet"]]
    if not comparable:
        nondet = [k for k in res["nondet"] if values[k][0] != "nc"]
        outcome.cls = SKIP_NONDET if nondet else SKIP_NO_VALUES
        outcome.reason = f"nondeterministic: {', '.join(nondet)}" if nondet else "no comparable value"
        return None
    bare = frozenset(k for k, v in values.items() if OUT_NAME.match(k) and v[0] == "nc")
    outcome.source = instrument(ex.doctest, bare=bare).torch_program
    if ex.name in code_for:
        conv = {"status": "ok", "code": code_for[ex.name], "diagnostics": []}
    else:
        started = time.monotonic()
        conv = convert(outcome.source, timeout)
        outcome.seconds += time.monotonic() - started
    conv["keys"] = comparable
    return conv


def classify(outcome: Outcome, ex: Example, tres: dict, mres: dict, keys: list) -> None:
    outcome.code = mres.get("code", "")
    outcome.seconds += mres.get("seconds", 0.0)
    status = mres["status"]
    flags = [d for d in mres.get("diagnostics", []) if d["severity"] != "info"]
    outcome.rule_ids = sorted({d["rule_id"] for d in flags})
    outcome.flag_kinds = sorted({d["kind"] for d in flags})
    outcome.compared = list(keys)
    outcome.flags = [f"{d['rule_id']}: {d['message'].splitlines()[0][:160]}" for d in flags]
    if status == "convert-crash":
        err = mres["error"]
        outcome.cls, outcome.reason = CRASH_CONVERTER, f"{err['type']}: {err['message']}\n{err.get('traceback', '')}"
        outcome.cause = group_key(err["type"], err["message"])
        return
    if status == "flagged":
        outcome.cls, outcome.reason = FLAGGED, "; ".join(outcome.flags)
        return
    if status != "ok":
        err = mres.get("error") or {"type": status, "message": "", "line": 0, "source_line": ""}
        outcome.cls = CRASH
        outcome.reason = f"{err['type']}: {err['message']}"
        outcome.error_line = re.sub(rf"{SNAP}\(\((.*)\)\)$", r"\1", err.get("source_line", "") or "")
        outcome.cause = group_key(err["type"], err["message"])
        return
    up_to_sign = bool(SIGN_AMBIGUOUS.search(ex.doctest))
    worst, messages = EQUAL, []
    tolerance_checks = _tolerance_check_outputs(outcome.source or "")
    tolerance_flipped = []
    for key in keys:
        level, msg = compare_values(tres["values"][key], mres["values"].get(key, ("nc", "missing")), up_to_sign, key,
                                    tres.get("reference", {}).get(key))
        if level == DIFFER and key in tolerance_checks:
            tolerance_flipped.append(key)
            continue
        worst = max(worst, level)
        if level:
            messages.append((level, msg))
    messages.sort(key=lambda m: -m[0])
    outcome.reason = "; ".join(m for _, m in messages[:3])
    if tolerance_flipped and worst != DIFFER:
        # `torch.allclose(A @ x, b)` at its own tolerance (rtol 1e-5, atol 1e-8, tighter than ours) turns on float
        # rounding: the values it checks are compared above, and agree
        outcome.cls, outcome.cause = NOT_COMPARABLE, "a tolerance check (allclose/isclose) differs at float rounding"
        outcome.reason = f"{outcome.cause}: {', '.join(tolerance_flipped)}"
        return
    if worst == DIFFER:
        desync = mres.get("desync") or (f"{mres['unconsumed']} recorded draw(s) not used by MLX" if mres.get("unconsumed") else "")
        if desync:
            outcome.cls, outcome.cause = NOT_COMPARABLE, desync
            outcome.reason = f"{desync}; {outcome.reason}"
        else:
            outcome.cls = WRONG
    else:
        outcome.cls = DTYPE if worst == DTYPE_ONLY else PASS


_TOLERANCE_CHECK = re.compile(r"^(_out\d+) = .*\b(?:allclose|isclose)\(", re.MULTILINE)


def _tolerance_check_outputs(program: str) -> frozenset:
    """The `_outN` outputs of a program that print a tolerance check (`torch.allclose(A @ x, b)`)."""
    return frozenset(m.group(1) for m in _TOLERANCE_CHECK.finditer(program))


def group_key(kind: str, message: str) -> str:
    """An exception type and message with the example's particulars (numbers, shapes) taken out,
    keeping names: "AttributeError: 'array' object has no attribute 'X'" stays as is."""
    msg = (message or "").split("\n")[0].strip()
    msg = re.sub(r"libc\+\+abi: terminating due to uncaught exception of type ", "uncaught ", msg)
    msg = re.sub(r"\((?:\s*-?\d+\s*,?)+\)", "(…)", msg)
    msg = re.sub(r"\[(?:\s*-?\d+\s*,?)+\]", "[…]", msg)
    msg = re.sub(r"(?<![\w.])-?\d+(\.\d+)?(e-?\d+)?", "N", msg)
    msg = re.sub(r"0x[0-9a-f]+", "0x…", msg)
    return f"{kind}: {msg}"[:160]


def summarize(outcomes: list[Outcome]) -> dict:
    counts = Counter(o.cls for o in outcomes)
    counted = sum(counts[c] for c in COUNTED)
    flag_rules: Counter = Counter()
    flag_only: Counter = Counter()  # examples flagged by this rule alone (fixing it alone unblocks them)
    flag_example: dict = {}
    for o in outcomes:
        if o.cls == FLAGGED:
            if len(o.rule_ids) == 1:
                flag_only[o.rule_ids[0]] += 1
            for rule in o.rule_ids:
                flag_rules[rule] += 1
                flag_example.setdefault(rule, (o.name, next((f for f in o.flags if f.startswith(rule + ":")), "")))
    causes: Counter = Counter()
    cause_example: dict = {}
    for o in outcomes:
        if o.cls in (CRASH, CRASH_CONVERTER):
            causes[o.cause] += 1
            cause_example.setdefault(o.cause, o.name)
    skips: Counter = Counter(o.cause or o.reason for o in outcomes if o.cls == SKIP_TORCH)
    flag_kinds: Counter = Counter(k for o in outcomes if o.cls == FLAGGED for k in o.flag_kinds)
    itself = sum(1 for o in outcomes if o.cls == FLAGGED  # rule ids name methods Tensor.x
                 and {r for n in [o.name, *o.aliases] for r in (n, n.replace("torch.Tensor.", "Tensor."))} & set(o.rule_ids))
    return {"counts": {c: counts[c] for c in COUNTED + SKIPPED}, "counted": counted, "total": len(outcomes),
            "flag_rules": flag_rules.most_common(), "flag_only": dict(flag_only), "flag_example": flag_example, "flag_kinds": flag_kinds.most_common(), "flag_itself": itself,
            "flagged_run": Counter(o.flagged_run for o in outcomes if o.flagged_run).most_common(),
            "crash_causes": causes.most_common(), "crash_example": cause_example, "skip_causes": skips.most_common(15)}


def markdown_table(summary: dict) -> str:
    counted = summary["counted"] or 1
    rows = ["| class | examples | % of those torch runs |", "|---|---:|---:|"]
    for c in COUNTED:
        n = summary["counts"][c]
        rows.append(f"| {c} | {n} | {100 * n / counted:.1f}% |")
    rows.append(f"| **torch runs (counted)** | **{summary['counted']}** | 100% |")
    for c in SKIPPED:
        rows.append(f"| {c} | {summary['counts'][c]} | — |")
    rows.append(f"| **all examples** | **{summary['total']}** | |")
    return "\n".join(rows)


def markdown_report(summary: dict, outcomes: list[Outcome], header: str = "", limit_causes: int = 30) -> str:
    parts = [header, markdown_table(summary), "", "### Most common flag rule ids (examples flagged by each)", "",
             "| rule id | examples | its only flag | first example |", "|---|---:|---:|---|"]
    for rule, n in summary["flag_rules"][:30]:
        name, msg = summary["flag_example"][rule]
        parts.append(f"| `{rule}` | {n} | {summary['flag_only'].get(rule, 0)} | {name}: {_md(msg)} |")
    parts += ["", "Flagged examples by diagnostic kind: "
              + ", ".join(f"{kind} {n}" for kind, n in summary["flag_kinds"])
              + f". Flagged on the documented function itself: {summary['flag_itself']}."]
    if summary["flagged_run"]:
        parts += ["", "Flagged examples run anyway (--run-flagged), the class they would have had: "
                  + ", ".join(f"{cls} {n}" for cls, n in summary["flagged_run"])
                  + f" (a {PASS} here may be a flag that is too cautious; see report.json, flagged_run)."]
    parts += ["", "### Most common crash causes", "", "| cause | examples | first example |", "|---|---:|---|"]
    for cause, n in summary["crash_causes"][:limit_causes]:
        parts.append(f"| {_md(cause)} | {n} | {summary['crash_example'][cause]} |")
    parts += ["", "### Why torch could not run an example (skipped)", "", "| cause | examples |", "|---|---:|"]
    for cause, n in summary["skip_causes"]:
        parts.append(f"| {_md(cause)} | {n} |")
    for cls in (WRONG, CRASH, CRASH_CONVERTER, NOT_COMPARABLE, DTYPE):
        chosen = [o for o in outcomes if o.cls == cls]
        if not chosen:
            continue
        parts += ["", f"### {cls} ({len(chosen)})", ""]
        for o in chosen:
            parts.append(f"- `{o.name}`: {_md(o.reason.splitlines()[0] if o.reason else '')}"
                         + (f" — at `{_md(o.error_line)}`" if o.error_line else ""))
    return "\n".join(parts) + "\n"


def _md(text: str) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")[:220]


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--worker":
    worker_main(sys.argv[2], sys.argv[3])
