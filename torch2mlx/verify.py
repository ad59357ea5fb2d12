"""Run a rule example (or any snippet) under torch and, converted, under MLX; compare the results.

Needs the optional dependencies torch and mlx (`pip install torch2mlx[verify]`).
"""
from __future__ import annotations

import textwrap
from typing import Any, Optional

import numpy as np

RTOL, ATOL = 1e-4, 1e-5


def _input_namespace(rng: np.random.RandomState) -> dict:
    def shape(args):
        return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else tuple(args)

    return {
        "randn": lambda *s: rng.standard_normal(shape(s)).astype(np.float32),
        "rand": lambda *s: rng.random_sample(shape(s)).astype(np.float32),
        "pos": lambda *s: (rng.random_sample(shape(s)) + 0.1).astype(np.float32),
        "randint": lambda low, high, s: rng.randint(low, high, size=tuple(s)).astype(np.int64),
        "randint32": lambda low, high, s: rng.randint(low, high, size=tuple(s)).astype(np.int32),
        "mask": lambda *s: rng.random_sample(shape(s)) > 0.5,
        "arange": lambda *s: np.arange(int(np.prod(shape(s))), dtype=np.float32).reshape(shape(s)),
        "tensor": lambda v: np.asarray(v, dtype=np.float32),
        "itensor": lambda v: np.asarray(v, dtype=np.int64),
        "btensor": lambda v: np.asarray(v, dtype=bool),
    }


def make_inputs(spec: dict, seed: int = 0) -> dict:
    """Input name -> numpy array (from a generator expression like 'randn(3, 4)') or plain value."""
    rng = np.random.RandomState(seed)
    ns = _input_namespace(rng)
    out = {}
    for name, value in spec.items():
        if isinstance(value, str):
            out[name] = eval(value, {"__builtins__": {}}, ns)  # noqa: S307 - test data written by us
        else:
            out[name] = value
    return out


def example_source(torch_code: str, inputs: dict, annotate: bool = True) -> str:
    params = []
    for name, value in inputs.items():
        is_array = isinstance(value, np.ndarray)
        params.append(f"{name}: torch.Tensor" if is_array and annotate else name)
    body = torch_code.strip()
    if "\n" in body or body.startswith("out ="):
        lines = textwrap.indent(body, "    ") + "\n    return out\n"
    else:
        lines = f"    return {body}\n"
    return (
        "import torch\n"
        "import torch.nn as nn\n"
        "import torch.nn.functional as F\n\n\n"
        f"def example({', '.join(params)}):\n{lines}"
    )


def function_body(code: str) -> str:
    """The body of `def example` in converted code, dedented, without the trailing `return out`."""
    lines = code.split("def example(", 1)[1].split("\n")[1:]
    body = textwrap.dedent("\n".join(lines)).strip()
    if body.startswith("return ") and "\n" not in body:
        return body[len("return "):]
    return body.rsplit("\nreturn out", 1)[0].strip()


def to_numpy(value: Any) -> Any:
    """Framework values to numpy / plain Python, for comparison."""
    import torch
    try:
        import mlx.core as mx
    except ImportError:  # pragma: no cover
        mx = None
    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    if mx is not None and isinstance(value, mx.array):
        if value.dtype == mx.bfloat16:
            value = value.astype(mx.float32)
        return np.array(value)
    if isinstance(value, torch.dtype):
        return ("dtype", str(value).replace("torch.", ""))
    if mx is not None and isinstance(value, mx.Dtype):
        return ("dtype", str(value).replace("mlx.core.", "").rstrip("_"))
    if isinstance(value, torch.Size):
        return tuple(int(v) for v in value)
    if isinstance(value, (list, tuple)):
        return type(value)(to_numpy(v) for v in value) if not hasattr(value, "_fields") else tuple(to_numpy(v) for v in value)
    return value


def compare(expected: Any, actual: Any, mode: str = "values", where: str = "result") -> Optional[str]:
    """None when equal (shape, dtype and values), else a description of the first difference."""
    if mode == "none":
        return None
    if isinstance(expected, (list, tuple)):
        if not isinstance(actual, (list, tuple)) or len(actual) != len(expected):
            return f"{where}: expected a sequence of {len(expected)}, got {type(actual).__name__} {actual!r:.200}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            msg = compare(e, a, mode, f"{where}[{i}]")
            if msg:
                return msg
        return None
    if isinstance(expected, np.ndarray) or isinstance(actual, np.ndarray):
        e, a = np.asarray(expected), np.asarray(actual)
        if e.shape != a.shape:
            return f"{where}: shape {a.shape} != torch's {e.shape}"
        if e.dtype != a.dtype:
            return f"{where}: dtype {a.dtype} != torch's {e.dtype}"
        if mode == "shape":
            return None
        if e.dtype.kind in "fc":
            if not np.allclose(a, e, rtol=RTOL, atol=ATOL, equal_nan=True):
                return f"{where}: values differ, max abs error {np.nanmax(np.abs(a - e)) if e.size else 0}"
        elif not np.array_equal(a, e):
            return f"{where}: values differ: {a.ravel()[:8]} vs torch's {e.ravel()[:8]}"
        return None
    if isinstance(expected, float) and isinstance(actual, (float, int)):
        return None if np.isclose(actual, expected, rtol=RTOL, atol=ATOL) else f"{where}: {actual} != torch's {expected}"
    if type(expected) is not type(actual) and not (isinstance(expected, int) and isinstance(actual, int)):
        return f"{where}: type {type(actual).__name__} != torch's {type(expected).__name__} ({actual!r:.80} vs {expected!r:.80})"
    return None if expected == actual else f"{where}: {actual!r:.200} != torch's {expected!r:.200}"


def run_function(source: str, inputs: dict, framework: str) -> Any:
    if framework == "torch":
        import torch
        args = {k: torch.from_numpy(v.copy()) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
    else:
        import mlx.core as mx
        args = {k: mx.array(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
    namespace: dict = {"__name__": "example"}
    exec(compile(source, f"<{framework} example>", "exec"), namespace)  # noqa: S102 - our own examples
    return namespace["example"](**args)
