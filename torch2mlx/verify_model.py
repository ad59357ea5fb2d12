"""Verify a converted model against torch: convert, build both, copy the weights, compare outputs.

The logic behind `torch2mlx verify model.py --model ClassName --args '...' --input 1,3,32,32`;
pure (returns a `ModelCheck`, never prints or exits). Needs torch and mlx.
"""
from __future__ import annotations

import ast
import re
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
    bad_input: bool = False        # the problem lies in the model file, --args or --input, not the conversion

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


class BadModelInput(ValueError):
    """The model file, class name, constructor arguments or input spec is unusable (not a conversion fault)."""


_LAYOUT_NOTE = r"# MLX layout: inputs (?P<inputs>.*?) are channels-last \(NHWC / NLC\); outputs: (?P<outputs>.*)\n(?:[ \t]*@.*\n)*class {name}\b"


def channels_last_layout(converted_code: str, class_name: str) -> tuple[frozenset, frozenset]:
    """From the `# MLX layout:` note above the class: (its channels-last inputs, its output layouts)."""
    match = re.search(_LAYOUT_NOTE.format(name=re.escape(class_name)), converted_code)
    if match is None:
        return frozenset(), frozenset()
    inputs = frozenset(n.strip() for n in match["inputs"].split(",") if n.strip() not in ("", "-"))
    outputs = frozenset("unchanged" if o.strip() == "unchanged" else "channels-last" for o in match["outputs"].split(", "))
    return inputs, outputs


def _channels_last(array: np.ndarray) -> np.ndarray:
    return np.moveaxis(array, 1, -1) if array.ndim >= 3 else array


def _as_mlx_layout(expected: np.ndarray, actual_shape: tuple, outputs: frozenset) -> np.ndarray:
    """torch's output in the layout the MLX model returns it (channels-last feature maps)."""
    if "channels-last" in outputs and expected.ndim >= 3:
        moved = _channels_last(expected)
        if moved.shape == actual_shape or "unchanged" not in outputs or expected.shape != actual_shape:
            return moved
    return expected


def _exec_module(source: str, path: str, name: str) -> dict:
    namespace: dict = {"__name__": name}
    exec(compile(source, path, "exec"), namespace)  # noqa: S102 - the user's own model file
    return namespace


def build_converted_model(source: str, class_name: str, args: str = "", path: str = "<model>"):
    """Convert `source` and build `class_name(*args)` from the MLX code: (MLX model, ConversionResult).

    Raises BadModelInput when the arguments do not parse or the class is missing; any error of the
    converted code itself propagates.
    """
    positional, keywords = _parse_args_or_raise(args)
    result = convert_source(source, path)
    namespace = _exec_module(result.code, f"{path} (converted)", "mlx_model")
    if not isinstance(namespace.get(class_name), type):
        raise BadModelInput(f"{path}: no class {class_name!r}")
    return namespace[class_name](*positional, **keywords), result


def _parse_args_or_raise(args: str) -> tuple[list, dict]:
    try:
        return parse_args(args)
    except (SyntaxError, ValueError, AssertionError) as exc:
        raise BadModelInput(f"--args {args!r}: Python literals only ({exc})") from None


def _make_inputs(specs: Sequence[str], seed: int) -> list:
    rng = np.random.RandomState(seed)
    arrays = []
    for spec in specs:
        try:
            shape, kind, (low, high) = parse_input_spec(spec)
            arrays.append(rng.randint(low, high, size=shape).astype(np.int64) if kind == "int"
                          else rng.standard_normal(shape).astype(np.float32))
        except ValueError as exc:
            raise BadModelInput(f"--input {spec!r}: expected e.g. 1,3,32,32 or int:0:50:2,12 ({exc})") from None
    return arrays


def _flatten(value: Any) -> list:
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in _flatten(v)]
    if isinstance(value, dict):
        return [leaf for k in sorted(value) for leaf in _flatten(value[k])]
    return [value]


def verify_model(source: str, class_name: str, args: str = "", inputs: Sequence[str] = ("1,8",),
                 seed: int = 0, atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL, path: str = "<model>") -> ModelCheck:
    """Convert, build both models with `args`, copy torch's weights, run both on the same random inputs.

    Inputs are given in torch's layout (NCHW); a model class converted to channels-last gets them
    NHWC / NLC, and its channels-last outputs are compared with torch's moved the same way.
    Raises BadModelInput for an unusable model file, class name, --args or --input.
    """
    import inspect

    import mlx.core as mx
    import torch

    from torch2mlx.weights import WeightLoadError, load_torch_weights

    positional, keywords = _parse_args_or_raise(args)
    arrays = _make_inputs(inputs, seed)
    try:
        torch_ns = _exec_module(source, path, "torch_model")
    except Exception as exc:  # noqa: BLE001 - the user's file does not even run under torch
        raise BadModelInput(f"{path}: does not run: {type(exc).__name__}: {exc}") from None
    if not isinstance(torch_ns.get(class_name), type):
        raise BadModelInput(f"{path}: no class {class_name!r}")
    torch.manual_seed(seed)
    try:
        torch_model = torch_ns[class_name](*positional, **keywords).eval()
    except Exception as exc:  # noqa: BLE001
        raise BadModelInput(f"{class_name}({args}) fails in torch: {type(exc).__name__}: {exc}") from None

    result = convert_source(source, path)
    warnings = tuple(d for d in result.diagnostics if d.severity.value != "info")

    def fail(problem: str, bad_input: bool = False) -> ModelCheck:
        return ModelCheck(False, float("inf"), float("inf"), len(warnings), warnings, problem, bad_input)

    try:
        mlx_model = _exec_module(result.code, f"{path} (converted)", "mlx_model")[class_name](*positional, **keywords)
        mlx_model.eval()
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the verdict is FAIL
        return fail(f"converted model fails to build: {type(exc).__name__}: {exc}")
    try:
        load_torch_weights(mlx_model, torch_model.state_dict())
    except WeightLoadError as exc:
        return fail(f"weights do not load: {exc}")
    cl_inputs, cl_outputs = channels_last_layout(result.code, class_name)
    names = [p for p in inspect.signature(torch_model.forward).parameters]
    mlx_arrays = [_channels_last(a) if i < len(names) and names[i] in cl_inputs else a for i, a in enumerate(arrays)]
    try:
        with torch.no_grad():
            expected = _flatten(torch_model(*[torch.from_numpy(a) for a in arrays]))
    except Exception as exc:  # noqa: BLE001 - a bad --input, most often
        return fail(f"torch forward fails: {type(exc).__name__}: {exc}", bad_input=True)
    try:
        actual = _flatten(mlx_model(*[mx.array(a) for a in mlx_arrays]))
    except Exception as exc:  # noqa: BLE001
        return fail(f"MLX forward fails: {type(exc).__name__}: {exc}")
    if len(actual) != len(expected):
        return fail(f"MLX returns {len(actual)} arrays, torch {len(expected)}")
    max_abs = max_rel = 0.0
    passed = True
    for e, a in zip(expected, actual):
        a = np.asarray(a)
        e = _as_mlx_layout(np.asarray(e.detach().numpy() if hasattr(e, "detach") else e), a.shape, cl_outputs)
        if e.shape != a.shape:
            return fail(f"output shape {a.shape} != torch's {e.shape}")
        diff = np.abs(a.astype(np.float64) - e.astype(np.float64))
        max_abs = max(max_abs, float(diff.max(initial=0.0)))
        max_rel = max(max_rel, float((diff / np.maximum(np.abs(e), 1e-12)).max(initial=0.0)))
        passed = passed and bool(np.allclose(a, e, rtol=rtol, atol=atol))
    return ModelCheck(passed, max_abs, max_rel, len(warnings), warnings)


_NESTED_STATE_KEYS = ("state_dict", "model_state_dict", "model")


def load_checkpoint(path: str) -> dict:
    """A torch checkpoint's state_dict: the file itself, or its `state_dict` / `model_state_dict` / `model` entry.

    Loaded with `weights_only=True` (no pickled code runs). Raises BadModelInput otherwise.
    """
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unreadable, not a checkpoint, or pickled objects
        raise BadModelInput(f"{path}: not a torch checkpoint of tensors: {type(exc).__name__}: {exc}") from None
    if isinstance(loaded, dict) and loaded and all(hasattr(v, "shape") for v in loaded.values()):
        return loaded
    for key in _NESTED_STATE_KEYS:
        inner = loaded.get(key) if isinstance(loaded, dict) else None
        if isinstance(inner, dict) and all(hasattr(v, "shape") for v in inner.values()):
            return inner
    raise BadModelInput(f"{path}: holds no state_dict (a dict of tensors, or one under {', '.join(_NESTED_STATE_KEYS)})")


def export_weights(source: str, class_name: str, args: str, state_dict: dict, output: str, path: str = "<model>"):
    """Build the converted MLX model, load the torch `state_dict` into it, save it as `output` (.safetensors / .npz).

    Returns the LoadReport; raises WeightLoadError (nothing written) when the state_dict does not fit.
    """
    from torch2mlx.weights import load_torch_weights

    model, _ = build_converted_model(source, class_name, args, path)
    report = load_torch_weights(model, state_dict)
    # MLX picks the format from the suffix: write a temporary file with the same suffix
    # beside the target, then rename it over (an interrupted run leaves no half file)
    import os
    import tempfile
    from pathlib import Path

    target = Path(output)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent if str(target.parent) else ".")
    os.close(fd)
    try:
        model.save_weights(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a new file normally is 0666 less the umask
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return report
