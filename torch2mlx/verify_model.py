"""Verify a converted model against torch: convert, build both, copy the weights, compare outputs.

The logic behind `torch2mlx verify model.py --model ClassName --args '...' --input 1,3,32,32`;
pure (returns a `ModelCheck`, never prints or exits). Needs torch and mlx.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from torch2mlx.api import convert_source

DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-4


@dataclass(frozen=True)
class ModelCheck:
    passed: bool
    max_abs_error: float
    max_rel_error: float
    flagged: int           # warnings the conversion left (see `diagnostics`)
    diagnostics: tuple = ()
    problem: Optional[str] = None  # why it could not be compared, when it could not

    def summary(self) -> str:
        if self.problem:
            return f"FAIL: {self.problem}"
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict}: max abs error {self.max_abs_error:.3g}, max relative error {self.max_rel_error:.3g}"


def parse_input_spec(spec: str) -> tuple[tuple[int, ...], str, tuple[int, int]]:
    """`1,3,32,32` (float32 normal) or `int:0:50:2,12` (int64 tokens in [0, 50)) -> shape, kind, range."""
    if spec.startswith("int:"):
        _, low, high, shape = spec.split(":", 3)
        return tuple(int(s) for s in shape.split(",")), "int", (int(low), int(high))
    return tuple(int(s) for s in spec.split(",")), "float", (0, 0)


def parse_args(text: str) -> tuple[list, dict]:
    """`'10, hidden=32'` -> ([10], {'hidden': 32}): Python literals only, never evaluated code."""
    if not text.strip():
        return [], {}
    call = ast.parse(f"f({text})", mode="eval").body
    assert isinstance(call, ast.Call)
    return [ast.literal_eval(a) for a in call.args], {k.arg: ast.literal_eval(k.value) for k in call.keywords}


def _flatten(value: Any) -> list:
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in _flatten(v)]
    if isinstance(value, dict):
        return [leaf for k in sorted(value) for leaf in _flatten(value[k])]
    return [value]


def verify_model(source: str, class_name: str, args: str = "", inputs: Sequence[str] = ("1,8"),
                 seed: int = 0, atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL, path: str = "<model>") -> ModelCheck:
    import mlx.core as mx
    import torch

    from torch2mlx.weights import WeightLoadError, load_torch_weights

    result = convert_source(source, path)
    warnings = tuple(d for d in result.diagnostics if d.severity.value != "info")
    positional, keywords = parse_args(args)
    torch_ns: dict = {"__name__": "torch_model"}
    mlx_ns: dict = {"__name__": "mlx_model"}
    exec(compile(source, path, "exec"), torch_ns)  # noqa: S102 - the user's own model file
    try:
        exec(compile(result.code, f"{path} (converted)", "exec"), mlx_ns)  # noqa: S102
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the verdict is FAIL
        return ModelCheck(False, float("inf"), float("inf"), len(warnings), warnings, f"converted code fails to load: {exc}")
    torch.manual_seed(seed)
    torch_model = torch_ns[class_name](*positional, **keywords).eval()
    mlx_model = mlx_ns[class_name](*positional, **keywords)
    mlx_model.eval()
    try:
        load_torch_weights(mlx_model, torch_model.state_dict())
    except WeightLoadError as exc:
        return ModelCheck(False, float("inf"), float("inf"), len(warnings), warnings, f"weights do not load: {exc}")
    rng = np.random.RandomState(seed)
    arrays = []
    for spec in inputs:
        shape, kind, (low, high) = parse_input_spec(spec)
        arrays.append(rng.randint(low, high, size=shape).astype(np.int64) if kind == "int"
                      else rng.standard_normal(shape).astype(np.float32))
    try:
        with torch.no_grad():
            expected = _flatten(torch_model(*[torch.from_numpy(a) for a in arrays]))
    except Exception as exc:  # noqa: BLE001 - a bad --input, most often
        return ModelCheck(False, float("inf"), float("inf"), len(warnings), warnings, f"torch forward fails: {exc}")
    try:
        actual = _flatten(mlx_model(*[mx.array(a) for a in arrays]))
    except Exception as exc:  # noqa: BLE001
        return ModelCheck(False, float("inf"), float("inf"), len(warnings), warnings, f"MLX forward fails: {exc}")
    if len(actual) != len(expected):
        return ModelCheck(False, float("inf"), float("inf"), len(warnings), warnings,
                          f"MLX returns {len(actual)} arrays, torch {len(expected)}")
    max_abs = max_rel = 0.0
    passed = True
    for e, a in zip(expected, actual):
        e, a = np.asarray(e.detach().numpy() if hasattr(e, "detach") else e), np.asarray(a)
        if e.shape != a.shape:
            return ModelCheck(False, float("inf"), float("inf"), len(warnings), warnings,
                              f"output shape {a.shape} != torch's {e.shape}")
        diff = np.abs(a.astype(np.float64) - e.astype(np.float64))
        max_abs = max(max_abs, float(diff.max(initial=0.0)))
        max_rel = max(max_rel, float((diff / np.maximum(np.abs(e), 1e-12)).max(initial=0.0)))
        passed = passed and bool(np.allclose(a, e, rtol=rtol, atol=atol))
    return ModelCheck(passed, max_abs, max_rel, len(warnings), warnings)
