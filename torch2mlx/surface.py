"""The torch API surface, enumerated from torch itself, and what the translator does with each name.

`enumerate_surface()` lists the public names of the namespaces a PyTorch program uses (read
off the installed torch: `dir()`, `__all__`, class hierarchies; never a hand list) and
`classify(name)` decides each one:

- **exact** / **conditional** / **manual**: the status of the rule that matches the name
  (`rules/*.yaml`), or of the structural transform that translates it (`TRANSFORMS` below:
  `nn.init.*`, `torch.no_grad`, DataLoader, ...), or, for a `torch.Tensor` member, a member of
  `mx.array` with the same meaning (`x.shape`, `x + y`: kept as written);
- an in-place Tensor method `op_` with no rule of its own is translated by the in-place
  transform (`x.add_(y)` -> `x = x + y`) when `op` has a rule, and only when `x` is provably not
  shared: it is counted **conditional** (manual / missing when `op` is);
- **missing**: no rule: a call is left as written and flagged.

`python -m torch2mlx.surface -o docs/coverage.md` writes the reference page (a pure function of
torch's version and the rule table: tests/test_surface.py fails when it is stale);
`python -m torch2mlx.surface --real -o docs/coverage-real.md` counts torch API uses in the installed
transformers, timm and torchvision packages and lists the most used names with their status.
"""
from __future__ import annotations

import argparse
import ast
import functools
import importlib
import importlib.util
import inspect
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from torch2mlx.array_facts import MLX_ARRAY_MEMBERS, TORCH_TENSOR_MEMBERS
from torch2mlx.table import RuleIndex

STATUSES = ("exact", "conditional", "manual", "missing")

# Names translated by a structural transform (torch2mlx/transforms/) rather than by a rule: qualified name ->
# (transform id, status, condition / gap). Each one is checked by tests/test_surface.py converting a snippet.
_INIT = "translated as a statement on a module member (`self.fc.weight`)"
_INIT_FANS = _INIT + ", where the layer is known to have torch's fans (Linear, Embedding, Conv)"
TRANSFORMS = {
    **{f"torch.nn.init.{n}": ("nn-init", "conditional", _INIT)
       for n in ("zeros_", "ones_", "constant_", "normal_", "uniform_", "xavier_uniform_", "xavier_normal_",
                 "trunc_normal_", "normal", "uniform", "constant", "xavier_uniform", "xavier_normal")},
    **{f"torch.nn.init.{n}": ("nn-init", "conditional", _INIT_FANS)
       for n in ("kaiming_uniform_", "kaiming_normal_", "kaiming_uniform", "kaiming_normal", "orthogonal_",
                 "orthogonal", "eye_")},
    **{f"torch.Tensor.{n}": ("nn-init", "conditional", "a statement on a module member (`m.weight.data.normal_()`): "
                             "the member is replaced by a new array") for n in ("normal_", "uniform_")},
    "torch.nn.Buffer": ("nn-module", "conditional", "`self.name = nn.Buffer(t)` in a module class: an array member, "
                        "frozen (persistent=False: `self._name`, left out of parameters()), as register_buffer"),
    "torch.nn.init.dirac_": ("nn-init", "manual", "MLX conv weights are channels-last: no dirac_ initialiser"),
    **{f"torch.{n}": ("no-grad", "conditional", "a `with` block or decorator: the body is kept (MLX computes "
                      "gradients only where asked)") for n in ("no_grad", "inference_mode", "enable_grad")},
    "torch.nn.utils.clip_grad_norm_": ("train-step", "conditional", "between backward() and step() of a "
                                       "recognised training step: optim.clip_grad_norm on the gradients"),
    "torch.nn.utils.clip_grad_value_": ("train-step", "conditional", "between backward() and step() of a "
                                        "recognised training step: every gradient clamped (a clip_grad_values helper)"),
    **{f"torch.utils.data.{n}": ("runtime-values", "conditional", "as a base class (ConcatDataset / ChainDataset also called): a local helper class "
                                 "with torch's methods and checks (`DatasetBase`, `ConcatDatasetBase`, ...)")
       for n in ("Dataset", "IterableDataset", "ConcatDataset", "ChainDataset", "Sampler")},
    "torch.utils.data.TensorDataset": ("data-loader", "conditional", "in-memory tensors: a small ArrayDataset class"),
    "torch.utils.data.DataLoader": ("data-loader", "conditional", "over a TensorDataset built in the same file, "
                                    "batch_size / shuffle / drop_last only"),
    **{f"torch.optim.lr_scheduler.{n}": ("lr-schedule", "conditional", "stepped once per optimizer step: an MLX "
                                         "schedule passed as learning_rate")
       for n in ("StepLR", "ExponentialLR", "MultiStepLR", "LinearLR", "CosineAnnealingLR", "LambdaLR", "OneCycleLR")},
    "torch.save": ("checkpoint", "conditional", "`torch.save(m.state_dict(), 'literal path')` -> m.save_weights"),
    "torch.load": ("checkpoint", "conditional", "`m.load_state_dict(torch.load('literal path'))` -> m.load_weights"),
    **{f"torch.jit.{n}": ("jit-markers", "conditional", "as a decorator of a function: removed")
       for n in ("ignore", "unused", "export", "script", "script_if_tracing")},
    "torch.compiler.disable": ("jit-markers", "conditional", "as a decorator: removed"),
    "torch.jit.Final": ("runtime-values", "exact", "typing.Final (torch.jit.Final is typing.Final)"),
    "torch._assert": ("runtime-values", "conditional", "as a statement with a condition and a message: "
                      "`assert cond, msg` (torch raises AssertionError(msg) when cond is false)"),
    **{n: ("autocast", "conditional", "a `with` block: the body is kept, computing in the inputs' "
                      "dtype (a review warning stays: rounding differs from torch's float16 run)")
       for n in ("torch.autocast", "torch.amp.autocast", "torch.cuda.amp.autocast", "torch.cpu.amp.autocast")},
    **{n: ("grad-scaler", "conditional", "used only as scale(loss).backward() / step / update: removed")
       for n in ("torch.GradScaler", "torch.amp.GradScaler", "torch.cuda.amp.GradScaler")},
}

# Python operator protocols on torch.Tensor (the dunder members that `x + y`, `x[i]`, `len(x)` call)
_OPERATORS = frozenset(
    f"__{n}__" for n in (
        "abs add and bool complex contains div eq float floordiv ge getitem gt index int invert le len long lshift "
        "lt matmul mod mul ne neg nonzero or pos pow radd rand rdiv reversed rfloordiv rlshift rmatmul rmod rmul ror "
        "rpow rrshift rshift rsub rtruediv rxor setitem sub truediv xor iter iadd iand idiv ifloordiv ilshift imod "
        "imul ior ipow irshift isub itruediv ixor").split())
_MUTATING_OPERATORS = frozenset(n for n in _OPERATORS if n.startswith("__i") and n not in (
    "__int__", "__index__", "__invert__", "__iter__")) | {"__setitem__"}
_INPLACE_SPECIAL = frozenset({"zero_", "fill_", "copy_"})


@dataclass(frozen=True)
class Entry:
    namespace: str
    name: str  # qualified: torch.nn.functional.relu, torch.Tensor.view
    status: str  # exact | conditional | manual | missing
    via: str = ""  # "rule <id>", "transform <id>", "native", "in-place of <rule id>"
    note: str = ""  # the condition, or the MLX gap (manual)


# ---------------------------------------------------------------------------------------------------------------
# Enumeration


def _public(module, names: Optional[Iterable[str]] = None) -> list[tuple[str, object]]:
    """(name, object) of a module's public callables (its `__all__` when it has one), re-exports of
    typing / collections / torch.Tensor left out."""
    names = list(names if names is not None else getattr(module, "__all__", None) or dir(module))
    out = []
    for name in sorted(set(names)):
        if name.startswith("_") or not hasattr(module, name):
            continue
        obj = getattr(module, name)
        if not callable(obj) or inspect.ismodule(obj):
            continue
        origin = getattr(obj, "__module__", None) or ""
        if origin in ("typing", "typing_extensions", "collections", "collections.abc", "functools", "weakref",
                      "builtins", "_bisect", "torch.overrides", "torch._jit_internal") or name == "Tensor":
            continue
        out.append((name, obj))
    return out


def _torch_namespace() -> list[str]:
    import torch

    return [f"torch.{n}" for n, _ in _public(torch, [n for n in dir(torch)])]


def _torch_values() -> list[str]:
    """dtypes and numeric constants (`torch.float32`, `torch.pi`): names, not calls."""
    import torch

    return [f"torch.{n}" for n in sorted(dir(torch)) if not n.startswith("_")
            and (isinstance(getattr(torch, n), torch.dtype) or type(getattr(torch, n)) is float)]


def _tensor_members() -> list[str]:
    import torch

    members = set(TORCH_TENSOR_MEMBERS) | {n for n in dir(torch.Tensor) if n in _OPERATORS}
    return [f"torch.Tensor.{n}" for n in sorted(members)]


def _module_names(module_name: str, keep=lambda name, obj: True) -> list[str]:
    module = importlib.import_module(module_name)
    return [f"{module_name}.{n}" for n, obj in _public(module) if keep(n, obj)]


def _functional() -> list[str]:
    # no __all__: the public functions (the ScalingType/SwizzleType enums and torch-function plumbing left out)
    import torch.nn.functional as F

    return [f"torch.nn.functional.{n}" for n, obj in _public(F, dir(F))
            if not inspect.isclass(obj) and not n.startswith("has_torch_function")]


def _nn_classes() -> list[str]:
    import torch

    return [f"torch.nn.{n}" for n, obj in _public(torch.nn, dir(torch.nn))
            if inspect.isclass(obj) and (issubclass(obj, torch.nn.Module) or issubclass(obj, torch.Tensor))]


def _optimizers() -> list[str]:
    import torch

    return [f"torch.optim.{n}" for n, obj in _public(torch.optim)
            if inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer)]


def _schedulers() -> list[str]:
    import torch.optim.lr_scheduler as S

    return [f"torch.optim.lr_scheduler.{n}" for n, obj in _public(S)
            if inspect.isclass(obj) and (issubclass(obj, S.LRScheduler) or n == "ReduceLROnPlateau")]


def _distributions() -> list[str]:
    # the distribution classes and kl_divergence (transforms and constraints are the classes' plumbing)
    import torch.distributions as D

    return [f"torch.distributions.{n}" for n, obj in _public(D)
            if inspect.isclass(obj) and issubclass(obj, D.Distribution) or n == "kl_divergence"]


NAMESPACES = (
    ("torch", _torch_namespace),
    ("torch (dtypes, constants)", _torch_values),
    ("torch.Tensor", _tensor_members),
    ("torch.nn.functional", _functional),
    ("torch.linalg", lambda: _module_names("torch.linalg", lambda n, o: not inspect.isclass(o))),
    ("torch.fft", lambda: _module_names("torch.fft")),
    ("torch.special", lambda: _module_names("torch.special")),
    ("torch.nn (layers)", _nn_classes),
    ("torch.nn.init", lambda: _module_names("torch.nn.init")),
    ("torch.nn.utils", lambda: _module_names("torch.nn.utils") + _module_names("torch.nn.utils.rnn")),
    ("torch.optim", _optimizers),
    ("torch.optim.lr_scheduler", _schedulers),
    ("torch.distributions", _distributions),
    ("torch.utils.data", lambda: _module_names("torch.utils.data")),
)


# ---------------------------------------------------------------------------------------------------------------
# Classification


def _from_rule(rule, via: str = "") -> tuple[str, str, str]:
    note = rule.why if rule.status == "manual" else (rule.condition or rule.assumes or "")
    return rule.status, via or f"rule {rule.id}", " ".join(str(note or "").split())


def _tensor_member(member: str, index: RuleIndex) -> tuple[str, str, str]:
    rule = index.method(member) or index.attribute(member)
    if rule is not None:
        return _from_rule(rule)
    if member in _OPERATORS:
        if member not in MLX_ARRAY_MEMBERS and not _mx_has(member):
            return "missing", "", "mx.array has no " + member
        if member in _MUTATING_OPERATORS:
            return ("conditional", "native", "kept as written: MLX rebinds or copies where torch mutates shared "
                    "storage (item writes through a view are flagged)")
        return "exact", "native", ""
    if member in MLX_ARRAY_MEMBERS:
        return "exact", "native", ""
    if member in _INPLACE_SPECIAL:
        return "conditional", "transform inplace-op", "a statement on a tensor provably not shared"
    if member.endswith("_") and not member.endswith("__"):
        status, via, note = _tensor_member(member[:-1], index)
        if status == "missing":
            return status, "", ""
        status = "conditional" if status == "exact" else status
        note = note if status == "manual" else "a statement on a tensor provably not shared" + (
            f"; {note}" if note else "")
        return status, f"in-place of {via.removeprefix('rule ')}", note
    return "missing", "", ""


def _mx_has(member: str) -> bool:
    import mlx.core as mx

    return hasattr(mx.array, member)


def classify(name: str, index: RuleIndex) -> tuple[str, str, str]:
    """(status, via, note) of one qualified torch name."""
    if name in TRANSFORMS:
        transform, status, note = TRANSFORMS[name]
        return status, f"transform {transform}", note
    if name.startswith("torch.Tensor."):
        return _tensor_member(name[len("torch.Tensor."):], index)
    rule = index.function(name) or index.value(name)
    if rule is not None:
        return _from_rule(rule)
    return "missing", "", ""


def enumerate_surface(index: Optional[RuleIndex] = None) -> list[Entry]:
    """Every name of every namespace in NAMESPACES, classified."""
    if index is None:
        from torch2mlx.api import build_index

        index = build_index()
    out = []
    for namespace, names in NAMESPACES:
        for name in names():
            out.append(Entry(namespace, name, *classify(name, index)))
    return out


def covered_names(entries: Sequence[Entry]) -> list[str]:
    """The names with a decision other than missing (tests/data/covered_names.txt)."""
    return sorted({e.name for e in entries if e.status != "missing"})


# ---------------------------------------------------------------------------------------------------------------
# The reference page


def _cell(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _totals_row(label: str, entries: Sequence[Entry]) -> str:
    counts = Counter(e.status for e in entries)
    covered = counts["exact"] + counts["conditional"]
    share = f"{100 * covered / len(entries):.0f}%" if entries else "—"
    return (f"| {label} | {len(entries)} | {counts['exact']} | {counts['conditional']} | {counts['manual']} | "
            f"{counts['missing']} | {share} |")


HEADER = """# Coverage of the torch API surface

<!-- Generated by `python -m torch2mlx.surface -o docs/coverage.md` (torch2mlx/surface.py). Do not edit by hand. -->

Every public name of the namespaces below, read from the installed torch ({torch_version}), and what the
translator does with it. **exact**: always translated. **conditional**: translated when a condition
is proven from the source, otherwise left in place and flagged. **manual**: never translated; the note
names the MLX gap. **missing**: no rule yet (a use is left in place and flagged).

How a name is decided: a rule in `rules/*.yaml` that matches it; else a structural transform
(`transform <id>`, e.g. `nn.init.*`, `torch.no_grad`, DataLoader); for `torch.Tensor`, a member of
`mx.array` with the same meaning (`native`: `x.shape`, `x + y` are kept as written). An in-place
method `op_` with no rule of its own is translated by the in-place transform (`x.add_(y)` ->
`x = x + y`) when `op` has a rule, and only when `x` is provably not shared: it counts as
conditional (`in-place of <rule>`). The real-world priority list (the names transformers, timm and
torchvision use most) is in [coverage-real.md](coverage-real.md).
"""


def generate(entries: Optional[Sequence[Entry]] = None) -> str:
    import torch

    entries = list(entries) if entries is not None else enumerate_surface()
    namespaces = list(dict.fromkeys(e.namespace for e in entries))
    out = [HEADER.format(torch_version=torch.__version__.split("+")[0]), "## Totals", "",
           "| namespace | names | exact | conditional | manual | missing | translated |", "|---|---|---|---|---|---|---|"]
    for ns in namespaces:
        out.append(_totals_row(f"[{ns}](#{_anchor(ns)})", [e for e in entries if e.namespace == ns]))
    out += [_totals_row("**all**", entries), ""]
    for ns in namespaces:
        rows = [e for e in entries if e.namespace == ns]
        out += [f"## {ns}", "", "| name | status | by | condition / MLX gap |", "|---|---|---|---|"]
        for e in rows:
            out.append(f"| `{e.name}` | {e.status} | {_cell(e.via)} | {_cell(e.note)} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _anchor(title: str) -> str:
    return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c in "-_")


# ---------------------------------------------------------------------------------------------------------------
# Real-world priority: uses in installed packages

REAL_PACKAGES = ("transformers", "timm", "torchvision")
# method names of builtin containers and strings: `.update(`, `.split(` on them are not tensor calls
_BUILTIN_METHODS = frozenset(n for t in (dict, list, str, set, tuple, bytes, int, float) for n in dir(t))


def package_dir(name: str) -> Optional[Path]:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@functools.lru_cache(maxsize=None)
def _is_module(name: str) -> bool:
    """`torch.nn.utils.parametrizations` (a namespace, not an API) when nothing below it has a rule."""
    import torch

    obj = torch
    try:
        for part in name.split(".")[1:]:
            obj = getattr(obj, part, None)
    except Exception:  # noqa: BLE001 - torch.classes.* and other lazy namespaces raise anything
        return False
    return inspect.ismodule(obj)


def count_uses(paths: Iterable[Path], index: RuleIndex) -> tuple[Counter, int]:
    """(qualified name -> uses, files read). Module-level names as `torch2mlx.coverage` resolves them
    (`F.relu` -> torch.nn.functional.relu); a method call `.m(...)` whose name is a torch.Tensor-only
    member (not a method of dict/list/str/...) is counted as `torch.Tensor.m` (a heuristic: the
    receiver's type is not known)."""
    from torch2mlx import coverage

    counts: Counter = Counter()
    files = 0
    tensor_only = TORCH_TENSOR_MEMBERS - _BUILTIN_METHODS
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text)
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError, RecursionError):
            continue
        files += 1
        uses: dict = {}
        try:
            coverage.scan_text(text, str(path), index, uses)
        except (SyntaxError, ValueError, RecursionError):
            continue
        for name, use in uses.items():
            if not _is_module(name):
                counts[name] += use.count
        if "torch" not in text:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in tensor_only:
                counts[f"torch.Tensor.{node.func.attr}"] += 1
    return counts, files


def generate_real(top: int = 300, index: Optional[RuleIndex] = None, packages: Sequence[str] = REAL_PACKAGES) -> str:
    if index is None:
        from torch2mlx.api import build_index

        index = build_index()
    import importlib.metadata as md

    found, counts, files = [], Counter(), 0
    for package in packages:
        root = package_dir(package)
        if root is None:
            continue
        found.append(f"{package} {md.version(package)}")
        c, n = count_uses(sorted(root.rglob("*.py")), index)
        counts += c
        files += n
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    rows = [(name, n, *classify(name, index)) for name, n in ranked]
    status_counts = Counter(r[2] for r in rows)
    uses = Counter()
    for r in rows:
        uses[r[2]] += r[1]
    total = sum(uses.values())
    out = [
        "# Real-world priority: the torch names real code uses most", "",
        "<!-- Generated by `python -m torch2mlx.surface --real -o docs/coverage-real.md` (needs the packages "
        "installed). Do not edit by hand. -->", "",
        f"Uses counted over {files} Python files of {', '.join(found)}: every `torch...` name reachable from a "
        "module-level torch import (`F.relu` counts as `torch.nn.functional.relu`), and every call `.m(...)` "
        "whose method name is a `torch.Tensor`-only member (`x.view(...)`, `x.permute(...)`: a heuristic, "
        "the receiver's type is not known; names shared with dict/list/str methods are not counted). "
        "Status as in [coverage.md](coverage.md).", "",
        f"Top {len(rows)}: " + ", ".join(f"{status_counts[s]} {s}" for s in STATUSES) + "; by uses: "
        + ", ".join(f"{s} {100 * uses[s] / total:.0f}%" for s in STATUSES if total) + ".", "",
        "| # | name | uses | status | by | condition / MLX gap |", "|---|---|---|---|---|---|",
    ]
    for rank, (name, n, status, via, note) in enumerate(rows, 1):
        out.append(f"| {rank} | `{name}` | {n} | {status} | {_cell(via)} | {_cell(note, 120)} |")
    return "\n".join(out).rstrip() + "\n"


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m torch2mlx.surface", description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, help="write here (default: stdout)")
    parser.add_argument("--real", action="store_true", help="the real-world priority list instead (docs/coverage-real.md)")
    parser.add_argument("--top", type=int, default=300, help="rows of the real-world list")
    parser.add_argument("--covered", action="store_true", help="the names that have a rule (tests/data/covered_names.txt)")
    args = parser.parse_args(argv)
    if args.real:
        text = generate_real(args.top)
    elif args.covered:
        text = "\n".join(covered_names(enumerate_surface())) + "\n"
    else:
        text = generate()
    if args.output is None:
        sys.stdout.write(text)
    else:
        from torch2mlx.fileio import write_atomic

        write_atomic(args.output, text)


if __name__ == "__main__":  # pragma: no cover
    main()
