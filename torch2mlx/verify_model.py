"""Verify a converted model against torch: convert, build both, copy the weights, compare outputs.

The logic behind `torch2mlx verify model.py --model ClassName --args '...' --input 1,3,32,32`;
pure (returns a `ModelCheck`, never prints or exits). Needs torch and mlx.
"""
from __future__ import annotations

import ast
import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import linecache
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from torch2mlx.api import convert_source
from torch2mlx.diagnostics import InputError
from torch2mlx.fileio import read_source

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
    outputs: tuple = ()            # one OutputCheck per array the model returns (tuples and dicts flattened)
    hints: tuple = ()              # why a FAIL may come from randomness, and what to try

    def summary(self) -> str:
        if self.problem:
            return f"FAIL: {self.problem}"
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict}: max abs error {self.max_abs_error:.3g}, max relative error {self.max_rel_error:.3g}"

    def report(self) -> str:
        """The summary line; a per-output table for a tuple / dict output; `hint:` lines."""
        lines = [self.summary()]
        if len(self.outputs) > 1 or any(o.name for o in self.outputs):
            rows = [("output", "shape", "dtype", "max abs error", "result")]
            rows += [(o.name or "output", str(o.shape), o.dtype, f"{o.max_abs_error:.3g}", "PASS" if o.passed else "FAIL")
                     for o in self.outputs]
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        lines += [f"hint: {h}" for h in self.hints]
        return "\n".join(lines)


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


# ---- importing the model file as a module, its folder's siblings importable on each side ----

_SKIP_DIRS = frozenset({"__pycache__", "node_modules", "site-packages", "build", "dist"})
_MAX_PROJECT_FILES = 5000


def _import_root(path: Path) -> tuple[Path, str]:
    """(the folder to import from, the module's name): the file's folder and its stem, or, for a file
    inside a package (`__init__.py` beside it), the folder above the top package and a dotted name."""
    folder = path.parent
    if not (folder / "__init__.py").is_file():
        return folder, path.stem
    top = folder
    while (top.parent / "__init__.py").is_file() and top.parent != top:
        top = top.parent
    parts = [*folder.relative_to(top.parent).parts, path.stem]
    return top.parent, ".".join(parts)


def _project_files(root: Path) -> list:
    """The .py files under `root` (hidden and build folders skipped), for the cross-file facts."""
    files: list = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        files.extend(Path(folder) / n for n in sorted(names) if n.endswith(".py"))
        if len(files) > _MAX_PROJECT_FILES:
            break
    return files


def _under(path: Optional[str], roots: Sequence[Path]) -> bool:
    if not path:
        return False
    resolved = Path(path).resolve()
    return any(r == resolved or r in resolved.parents for r in roots)


class _ConvertingLoader(importlib.abc.Loader):
    """Runs a project file converted to MLX (never its cached bytecode, which is torch's)."""

    def __init__(self, path: str, context: "_ModelContext"):
        self.path, self.context = path, context

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        text = read_source(Path(self.path))
        self.context.run_converted(text, self.path, module)


class _ConvertingFinder(importlib.abc.MetaPathFinder):
    """Finds the project's modules (the import roots) for the MLX side, loaded converted."""

    def __init__(self, context: "_ModelContext"):
        self.context = context

    def find_spec(self, name, path, target=None):
        search = list(path) if path is not None else [str(r) for r in self.context.roots]
        if path is not None and not any(_under(p, self.context.roots) for p in search):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, search)
        if spec is None:
            return None
        if spec.origin and spec.origin.endswith(".py") and _under(spec.origin, self.context.roots):
            spec.loader = _ConvertingLoader(spec.origin, self.context)
            return spec
        if spec.origin is None and spec.submodule_search_locations:  # a namespace package of the project
            return spec
        return None


class _ModelContext:
    """While open: the model file's import roots importable (torch: on sys.path; MLX: converted on import).

    On close, sys.path and sys.meta_path are restored and every module imported from the roots is
    dropped from sys.modules, so the other side imports its own version of each sibling.
    """

    def __init__(self, path: Optional[Path], mlx: bool):
        self.path, self.mlx = path, mlx
        self.conversions: dict = {}
        self.project = None
        if path is not None:
            root, self.name = _import_root(path)
            self.roots = [path.parent] if root == path.parent else [path.parent, root]
        else:
            self.name, self.roots = "model", []
        self.roots = [r.resolve() for r in self.roots]

    def __enter__(self) -> "_ModelContext":
        self._saved_path = list(sys.path)
        self._before = set(sys.modules)
        self._finder = None
        if self.roots and self.mlx:
            from torch2mlx.project import build_project_index

            base = self.roots[-1]
            self.project = build_project_index([base], _project_files(base))
            self._finder = _ConvertingFinder(self)
            sys.meta_path.insert(0, self._finder)
        elif self.roots:
            sys.path[:0] = [str(r) for r in self.roots]
        return self

    def __exit__(self, *exc) -> None:
        sys.path[:] = self._saved_path
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        for key in set(sys.modules) - self._before:
            module = sys.modules[key]
            if key == self.name or _under(getattr(module, "__file__", None), self.roots) or (
                    isinstance(getattr(module, "__loader__", None), _ConvertingLoader)):
                del sys.modules[key]

    def run_converted(self, text: str, path: str, module) -> None:
        project = self.project
        name = project.module_of(Path(path)) if project is not None else None
        result = convert_source(text, path, project=project, module_name=name or module.__name__)
        self.conversions[path] = result
        filename = f"{path} (converted to MLX)"
        linecache.cache[filename] = (len(result.code), None, result.code.splitlines(True), filename)
        exec(compile(result.code, filename, "exec"), module.__dict__)  # noqa: S102 - the user's own files

    def import_model(self, source: str, display: str) -> dict:
        """Run `source` (the model file's text) as module `self.name` (never `__main__`)."""
        if "." in self.name:  # inside a package: its parents first, so relative imports resolve
            importlib.import_module(self.name.rpartition(".")[0])
        origin = str(self.path) if self.path is not None else display
        spec = importlib.util.spec_from_loader(self.name, loader=None, origin=origin)
        module = importlib.util.module_from_spec(spec)
        if self.path is not None:
            module.__file__ = str(self.path)
        sys.modules[self.name] = module  # dataclasses, pickling and typing look the module up by name
        with contextlib.redirect_stdout(sys.stderr):  # what top-level code prints stays off the verdict
            if self.mlx:
                self.run_converted(source, origin, module)
            else:
                exec(compile(source, origin, "exec"), module.__dict__)  # noqa: S102 - the user's own model file
        return module.__dict__


def build_converted_model(source: str, class_name: str, args: str = "", path: str = "<model>"):
    """Convert `source` and build `class_name(*args)` from the MLX code: (MLX model, ConversionResult).

    Raises BadModelInput when the arguments do not parse or the class is missing; any error of the
    converted code itself propagates.
    """
    positional, keywords = _parse_args_or_raise(args)
    file = Path(path) if path and not path.startswith("<") and Path(path).is_file() else None
    with _ModelContext(file, mlx=True) as context:  # the file's siblings importable, converted
        namespace = context.import_model(source, path)
        result = context.conversions[str(file) if file is not None else path]
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


def _check_call_syntax(args: str, kwargs: str) -> str:
    """`args` and `kwargs` joined as the text between a call's parentheses; BadModelInput unless it parses so."""
    text = ", ".join(t for t in (args, kwargs) if t.strip())
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "f"):
            raise SyntaxError("not a list of call arguments")
    except SyntaxError as exc:
        raise BadModelInput(f"--args {args!r} --kwargs {kwargs!r}: not Python call arguments ({exc.msg})") from None
    return text


def eval_args(text: str, namespace: dict, side: str) -> tuple[list, dict]:
    """Evaluate the call arguments `text` (see `_check_call_syntax`) in a copy of a module's namespace."""
    def collect(*positional, **keywords):
        return list(positional), keywords

    scope = dict(namespace)
    scope["__torch2mlx_args__"] = collect
    try:
        return eval(f"__torch2mlx_args__({text})", scope)  # noqa: S307 - the user's own expressions, as their model file
    except Exception as exc:  # noqa: BLE001
        raise BadModelInput(f"--args/--kwargs {text!r} in the {side} module: {type(exc).__name__}: {exc}") from None


@dataclass(frozen=True)
class OutputCheck:
    name: str          # "" for a single array output, else like [0] or ['logits']
    shape: tuple
    dtype: str         # torch's; "torch/mlx" when they differ
    max_abs_error: float
    max_rel_error: float
    passed: bool
    problem: Optional[str] = None


def _leaves(value: Any, name: str = "") -> list:
    if isinstance(value, (tuple, list)):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{name}[{i}]")]
    if isinstance(value, dict):
        return [leaf for k in sorted(value, key=str) for leaf in _leaves(value[k], f"{name}[{k!r}]")]
    return [(name, value)]


def _torch_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        return (value.float() if str(value.dtype) == "torch.bfloat16" else value).numpy()
    return np.asarray(value)


def _dtype_name(value: Any) -> str:
    return str(getattr(value, "dtype", type(value).__name__)).replace("torch.", "").replace("mlx.core.", "")


def _compare(expected: list, actual: list, cl_outputs: frozenset, rtol: float, atol: float) -> list:
    import mlx.core as mx

    checks = []
    for (name, e), (_, a) in zip(expected, actual):
        dtype = _dtype_name(e) if _dtype_name(e) == _dtype_name(a) else f"{_dtype_name(e)}/{_dtype_name(a)}"
        a_np = np.asarray(a.astype(mx.float32) if _dtype_name(a) == "bfloat16" else a)
        e_np = _as_mlx_layout(_torch_numpy(e), a_np.shape, cl_outputs)
        if e_np.shape != a_np.shape:
            checks.append(OutputCheck(name, a_np.shape, dtype, float("inf"), float("inf"), False,
                                      f"output {name or ''} shape {a_np.shape} != torch's {e_np.shape}".replace("  ", " ")))
            continue
        diff = np.abs(a_np.astype(np.float64) - e_np.astype(np.float64))
        max_abs = float(diff.max(initial=0.0))
        max_rel = float((diff / np.maximum(np.abs(e_np.astype(np.float64)), 1e-12)).max(initial=0.0))
        checks.append(OutputCheck(name, a_np.shape, dtype, max_abs, max_rel, bool(np.allclose(a_np, e_np, rtol=rtol, atol=atol))))
    return checks


def _differs(first: list, second: list, rtol: float, atol: float) -> float:
    """The largest difference between two torch runs' outputs (0.0 when they agree within tolerance)."""
    worst = 0.0
    for (_, e1), (_, e2) in zip(first, second):
        a, b = _torch_numpy(e1), _torch_numpy(e2)
        if a.shape != b.shape:
            return float("inf")
        if not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
            worst = max(worst, float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max(initial=0.0)))
    return worst


def _randomness_hints(train: bool, dropouts: list, torch_spread: float) -> tuple:
    hints = []
    if train:
        what = f", with dropout ({', '.join(dropouts[:3])}{', ...' if len(dropouts) > 3 else ''})" if dropouts else ""
        hints.append(f"the models ran in train mode{what}: torch and MLX draw different random numbers "
                     "; compare in eval mode (--eval, the default)")
    if torch_spread > 0:
        hints.append(f"the outputs differ between two torch runs on the same input (by up to {torch_spread:.3g}): "
                     "the forward pass samples (torch.rand / randn / dropout called with training=True, ...), which MLX "
                     "cannot reproduce; compare in eval mode (--eval) or pass the random values in as a fixed input")
    elif dropouts and not train:
        hints.append("the model has dropout, off in eval mode; if the forward pass samples otherwise, "
                     "pass the random values in as a fixed input")
    return tuple(hints)


def verify_model(source: str, class_name: str, args: str = "", inputs: Sequence[str] = ("1,8",),
                 seed: int = 0, atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL, path: str = "<model>",
                 kwargs: str = "", train: bool = False) -> ModelCheck:
    """Convert, build both models with `args`/`kwargs`, copy torch's weights, run both on the same random inputs.

    The file is imported as a module (its `__name__` is its own name, never "__main__", so an
    `if __name__ == "__main__":` block does not run; other top-level statements do), with its
    folder importable: torch imports the sibling modules as they are, MLX imports them converted.
    `args`/`kwargs` are Python expressions evaluated in each side's module (torch's `Block` for the
    torch model, the converted `Block` for the MLX one). Both models run in eval mode unless `train`.
    Inputs are given in torch's layout (NCHW); a model class converted to channels-last gets them
    NHWC / NLC, and its channels-last outputs are compared with torch's moved the same way.
    Raises BadModelInput for an unusable model file, class name, --args/--kwargs or --input.
    """
    import inspect

    import mlx.core as mx
    import torch

    from torch2mlx.weights import WeightLoadError, load_torch_weights

    call_text = _check_call_syntax(args, kwargs)
    arrays = _make_inputs(inputs, seed)
    file = Path(path) if path and not path.startswith("<") and Path(path).is_file() else None
    described = f"{class_name}({call_text})"

    with _ModelContext(file, mlx=False) as torch_side:
        try:
            torch_ns = torch_side.import_model(source, path)
        except BaseException as exc:  # noqa: BLE001 - the user's file does not even import under torch (SystemExit too)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise BadModelInput(f"{path}: does not run: {type(exc).__name__}: {exc}") from None
        if not isinstance(torch_ns.get(class_name), type):
            raise BadModelInput(f"{path}: no class {class_name!r}")
        positional, keywords = eval_args(call_text, torch_ns, "torch")
        torch.manual_seed(seed)
        try:
            torch_model = torch_ns[class_name](*positional, **keywords)
            torch_model.train(train)
        except Exception as exc:  # noqa: BLE001
            raise BadModelInput(f"{described} fails in torch: {type(exc).__name__}: {exc}") from None
        state = {k: v.detach().clone() for k, v in torch_model.state_dict().items()}
        dropouts = sorted({type(m).__name__ for m in torch_model.modules() if "Dropout" in type(m).__name__ and getattr(m, "p", 1) > 0})
        forward_names = list(inspect.signature(torch_model.forward).parameters)
        try:
            with torch.no_grad():
                torch.manual_seed(seed)
                expected = _leaves(torch_model(*[torch.from_numpy(a) for a in arrays]))
                second = _leaves(torch_model(*[torch.from_numpy(a) for a in arrays]))  # the RNG has moved on
        except Exception as exc:  # noqa: BLE001 - a bad --input, most often
            return ModelCheck(False, float("inf"), float("inf"), 0, (), f"torch forward fails: {type(exc).__name__}: {exc}", True)
    torch_spread = _differs(expected, second, rtol, atol)

    with _ModelContext(file, mlx=True) as mlx_side:
        warnings: tuple = ()

        def fail(problem: str, outputs: tuple = ()) -> ModelCheck:
            hints = _randomness_hints(train, dropouts, torch_spread) if outputs else ()
            return ModelCheck(False, float("inf"), float("inf"), len(warnings), warnings, problem, False, outputs, hints)

        try:
            mlx_ns = mlx_side.import_model(source, path)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported, not raised: the verdict is FAIL
            warnings = _warnings(mlx_side.conversions)
            return fail(f"converted module fails to import: {type(exc).__name__}: {exc}")
        warnings = _warnings(mlx_side.conversions)
        main = mlx_side.conversions[str(file) if file is not None else path]
        if not isinstance(mlx_ns.get(class_name), type):
            return fail(f"the converted module has no class {class_name!r}")
        try:
            positional, keywords = eval_args(call_text, mlx_ns, "converted MLX")
        except BadModelInput as exc:
            return fail(str(exc))
        try:
            mlx_model = mlx_ns[class_name](*positional, **keywords)
            mlx_model.train(train)
        except Exception as exc:  # noqa: BLE001
            return fail(f"converted model fails to build: {type(exc).__name__}: {exc}")
        try:
            load_torch_weights(mlx_model, state)
        except WeightLoadError as exc:
            return fail(f"weights do not load: {exc}")
        cl_inputs, cl_outputs = channels_last_layout(main.code, class_name)
        mlx_arrays = [_channels_last(a) if i < len(forward_names) and forward_names[i] in cl_inputs else a
                      for i, a in enumerate(arrays)]
        try:
            mx.random.seed(seed)
            actual = _leaves(mlx_model(*[mx.array(a) for a in mlx_arrays]))
        except Exception as exc:  # noqa: BLE001
            return fail(f"MLX forward fails: {type(exc).__name__}: {exc}")
    if len(actual) != len(expected):
        return fail(f"MLX returns {len(actual)} arrays, torch {len(expected)}")
    outputs = tuple(_compare(expected, actual, cl_outputs, rtol, atol))
    problems = [o.problem for o in outputs if o.problem]
    if problems:
        return fail(problems[0], outputs)
    passed = all(o.passed for o in outputs)
    hints = () if passed else _randomness_hints(train, dropouts, torch_spread)
    return ModelCheck(passed, max((o.max_abs_error for o in outputs), default=0.0),
                      max((o.max_rel_error for o in outputs), default=0.0), len(warnings), warnings,
                      outputs=outputs, hints=hints)


def _warnings(conversions: dict) -> tuple:
    return tuple(d for result in conversions.values() for d in result.diagnostics if d.severity.value != "info")


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
