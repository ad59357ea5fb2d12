"""Random expressions over the supported API, run under torch and (converted) under MLX.

An expression is a small tree: leaves are the inputs `x`, `y` (same shape), nodes are calls
taken from the rule table's own examples (unary, binary, reduction, shape ops), each drawn
with random dims (negative too) and a random mix of positional and keyword arguments.
A case is: torch raises -> skipped; converted with a warning -> flagged; else both run and
are compared with torch2mlx.verify.compare (float rtol 1e-4, atol 1e-5; ints exactly).

The MLX side runs in a worker process (`MLXWorker`): an MLX abort (a C++ exception that
terminates, a segfault) or a hang kills only the worker, and the case is recorded as "crash"
with its expression instead of ending the test run. Not a fork of the test process: a child
forked after MLX has evaluated anything in the parent (other tests did) deadlocks on CPU.
"""
from __future__ import annotations

import os
import pickle
import random
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from torch2mlx import InputError, convert_source
from torch2mlx.verify import compare, example_source, run_function, to_numpy

# The worker imports only numpy and mlx (0.3 s; torch and torch2mlx would take 3 s). Its
# run/convert mirror torch2mlx.verify.run_function(..., "mlx") and the MLX branches of
# to_numpy; anything else in a result (a torch tensor left unconverted) goes through to_numpy.
_WORKER = r"""
import os, pickle, struct, sys
import numpy as np
import mlx.core as mx

out = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)  # prints of the code under test go to stderr, not into the protocol
inp = sys.stdin.buffer

def convert(value):
    if isinstance(value, mx.array):
        return np.array(value.astype(mx.float32) if value.dtype == mx.bfloat16 else value)
    if isinstance(value, mx.Dtype):
        return ("dtype", str(value).replace("mlx.core.", "").rstrip("_"))
    if isinstance(value, (list, tuple)):
        return type(value)(convert(v) for v in value) if not hasattr(value, "_fields") else tuple(convert(v) for v in value)
    if type(value).__module__.split(".")[0] == "torch":
        from torch2mlx.verify import to_numpy
        return to_numpy(value)
    return value

while True:
    head = inp.read(8)
    if len(head) < 8:
        break
    code, inputs = pickle.loads(inp.read(struct.unpack("<Q", head)[0]))
    try:
        args = {k: mx.array(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
        namespace = {"__name__": "example"}
        exec(compile(code, "<mlx example>", "exec"), namespace)
        reply = pickle.dumps(("ok", convert(namespace["example"](**args))))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as "mlx-raises"
        reply = pickle.dumps(("raises", f"{type(exc).__name__}: {exc}"[:300]))
    out.write(struct.pack("<Q", len(reply)) + reply)
    out.flush()
"""


class MLXCrash(Exception):
    """The worker died (signal, abort, exit) or timed out while running a case."""


class MLXWorker:
    """A subprocess that runs converted code under MLX, one case at a time; restarted after a crash."""

    def __init__(self, timeout: float = float(os.environ.get("TORCH2MLX_FUZZ_TIMEOUT", 60))):
        self.timeout = timeout
        self.proc = None
        self.stderr = None

    def _start(self) -> None:
        self.stderr = tempfile.TemporaryFile()
        env = dict(os.environ, MLX_DEVICE=os.environ.get("MLX_DEVICE", "cpu"), PYTHONFAULTHANDLER="1")
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, env=env)

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc.stdin.close()
            self.proc.stdout.close()
            self.stderr.close()
            self.proc = None

    def run(self, code: str, inputs: dict):
        """("ok", numpy result) or ("raises", message); MLXCrash when the process dies or hangs."""
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            self._start()
        start = self.stderr.seek(0, 2)
        message = pickle.dumps((code, inputs))
        try:
            self.proc.stdin.write(struct.pack("<Q", len(message)) + message)
            self.proc.stdin.flush()
            head = self._read(8)
            return pickle.loads(self._read(struct.unpack("<Q", head)[0]))
        except (MLXCrash, OSError) as exc:
            timed_out = isinstance(exc, MLXCrash) and "timed out" in str(exc)
            if self.proc.poll() is None:
                self.proc.kill()
            code_ = self.proc.wait()
            self.stderr.seek(start)
            tail = self.stderr.read().decode("utf-8", "replace").strip()[-600:]
            self.close()
            how = (f"timed out after {self.timeout:g} s" if timed_out else
                   f"killed by {signal.Signals(-code_).name}" if code_ < 0 else f"exited with {code_}")
            raise MLXCrash(f"{how}: {tail}") from None

    def _read(self, n: int) -> bytes:
        fd, data, deadline = self.proc.stdout.fileno(), b"", time.monotonic() + self.timeout
        while len(data) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise MLXCrash("timed out")
            chunk = os.read(fd, n - len(data))
            if not chunk:
                raise MLXCrash("end of output")
            data += chunk
        return data


_worker = None


def run_mlx(code: str, inputs: dict):
    """Run converted code under MLX in the shared worker process (see MLXWorker.run)."""
    global _worker
    if _worker is None:
        import atexit

        _worker = MLXWorker()
        atexit.register(_worker.close)
    return _worker.run(code, inputs)

UNARY = ["torch.abs({a})", "torch.exp(torch.tanh({a}))", "torch.sin({a})", "torch.tanh({a})", "torch.sigmoid({a})",
         "torch.relu({a})", "F.relu({a})", "{a}.abs()", "{a}.neg()", "torch.sqrt(torch.abs({a}))", "-{a}",
         "torch.clamp({a}, min=-0.5, max=0.5)", "{a}.clamp(-1, 1)", "F.gelu({a})", "F.silu({a})", "torch.square({a})",
         "{a}.float()", "torch.sign({a})", "torch.floor({a})", "{a}.round()", "torch.log1p(torch.abs({a}))"]
BINARY = ["torch.add({a}, {b})", "torch.mul({a}, {b})", "torch.maximum({a}, {b})", "torch.sub({a}, {b}, alpha=2)",
          "({a} + {b})", "torch.where({a} > 0, {a}, {b})", "({a} * {b})", "torch.minimum({a}, {b})", "{a}.add({b})",
          "torch.matmul({a}, {b}.transpose(-1, -2))", "torch.cat([{a}, {b}], {d})", "torch.stack([{a}, {b}], dim={d})"]
REDUCE = ["torch.sum({a}, {d})", "torch.sum({a}, dim={d}, keepdim={k})", "{a}.mean({d})", "{a}.mean(dim={d}, keepdim={k})",
          "torch.amax({a}, {d})", "torch.var({a}, {d})", "torch.std({a}, dim={d}, unbiased=False)", "{a}.var()",
          "torch.logsumexp({a}, {d})", "torch.softmax({a}, {d})", "F.softmax({a}, dim={d})", "F.log_softmax({a}, {d})",
          "torch.cumsum({a}, {d})", "{a}.argmax({d})", "torch.argmin({a}, dim={d}, keepdim={k})", "torch.prod({a}, {d})",
          "torch.max({a}, {d})[0]", "torch.min({a}, dim={d}).values", "{a}.sum()", "torch.mean({a})", "torch.norm({a})",
          "torch.all({a} > 0, {d})", "torch.any({a} > 0)", "torch.median({a})", "torch.cummax({a}, {d})[0]"]
SHAPE = ["{a}.transpose({d}, {e})", "torch.transpose({a}, {d}, {e})", "torch.flatten({a})", "{a}.reshape(-1)",
         "torch.unsqueeze({a}, {d})", "{a}.squeeze()", "torch.flip({a}, [{d}])", "{a}.view(-1, {n})",
         "{a}.permute({p})", "torch.movedim({a}, {d}, {e})", "{a}.t()", "{a}.flatten(start_dim={d})",
         "torch.tril({a})", "torch.triu({a}, 1)", "{a}[..., ::2]", "{a}.expand(2, *{a}.shape)", "torch.narrow({a}, {d}, 0, 1)",
         "torch.split({a}, 1, {d})[0]", "torch.chunk({a}, 2, dim={d})[-1]", "{a}.repeat(2, 1)", "torch.roll({a}, 1, {d})"]
KINDS = [("unary", UNARY, 1), ("binary", BINARY, 2), ("reduce", REDUCE, 1), ("shape", SHAPE, 1)]


@dataclass(frozen=True)
class Node:
    template: str
    children: tuple
    dims: tuple  # values for {d}, {e}, {k}, {n}, {p}

    def render(self) -> str:
        fill = dict(zip("abc", (c.render() if isinstance(c, Node) else c for c in self.children)))
        d, e, k, n, p = self.dims
        return self.template.format(**fill, d=d, e=e, k=k, n=n, p=p)

    def subtrees(self):
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.subtrees()


def random_tree(rng: random.Random, depth: int):
    if depth == 0 or rng.random() < 0.25:
        return rng.choice(["x", "x", "y"])
    _, templates, arity = rng.choice(KINDS)
    template = rng.choice(templates)
    children = tuple(random_tree(rng, depth - 1) for _ in range(arity))
    dims = (rng.randint(-3, 2), rng.randint(-3, 2), rng.choice([True, False]), rng.choice([1, 2, 3, 4, 6]),
            ", ".join(str(i) for i in rng.sample(range(3), 3)) if rng.random() < 0.7 else "1, 0")
    return Node(template, children, dims)


def random_inputs(rng: random.Random) -> dict:
    shape = tuple(rng.choice([[2, 3], [3, 4], [2, 3, 4], [4, 4], [1, 3, 2]]))
    dtype = rng.choice([np.float32, np.float32, np.float32, np.int32, np.int64])
    data = np.random.RandomState(rng.randrange(2**31))
    make = (lambda: data.standard_normal(shape).astype(np.float32)) if dtype == np.float32 else (lambda: data.randint(-5, 6, size=shape).astype(dtype))
    return {"x": make(), "y": make()}


@dataclass
class Outcome:
    status: str  # skipped | flagged | agrees | silently-wrong | mlx-raises | crash | input-error
    detail: str = ""
    converted: str = ""


def run_case(expression: str, inputs: dict) -> Outcome:
    source = example_source(expression, inputs)
    try:
        expected = to_numpy(run_function(source, inputs, "torch"))
    except Exception:  # torch itself rejects the case (shape mismatch, dim out of range, dtype)
        return Outcome("skipped")
    try:
        result = convert_source(source, "<differential>")
    except InputError as exc:
        return Outcome("input-error", str(exc))
    if any(d.severity.value != "info" or d.kind.value == "needs-review" for d in result.diagnostics):
        return Outcome("flagged", converted=result.code)
    try:
        kind, actual = run_mlx(result.code, inputs)
    except MLXCrash as exc:  # MLX aborted, segfaulted or hung on unflagged code
        return Outcome("crash", str(exc), result.code)
    if kind == "raises":  # any MLX exception on unflagged code is a finding
        return Outcome("mlx-raises", actual, result.code)
    problem = compare(expected, actual)
    return Outcome("agrees" if problem is None else "silently-wrong", problem or "", result.code)


def minimize(tree, inputs: dict, status: str):
    """The smallest subtree that still gives `status` (a minimal reproduction)."""
    best = tree
    for sub in sorted(tree.subtrees(), key=lambda n: len(n.render())) if isinstance(tree, Node) else ():
        if run_case(sub.render(), inputs).status == status:
            return sub
    return best


def describe(tree, inputs: dict, outcome: Outcome) -> str:
    shapes = {k: f"{v.dtype}{list(v.shape)}" for k, v in inputs.items()}
    body = outcome.converted.split("def example(", 1)[-1].split("\n", 1)[-1].strip()
    return f"{tree.render() if isinstance(tree, Node) else tree}  inputs={shapes}\n    -> {body}\n    {outcome.detail}"
