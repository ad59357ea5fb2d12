"""Load a torch state_dict into a converted MLX model: names and layouts come from the MLX model.

The MLX model's own parameter tree (`tree_flatten(model.parameters())`) says which arrays
exist; each MLX name is mapped to the torch name it came from and each tensor to the MLX
layout of the module that owns it:

- `nn.Sequential` keeps its layers in `.layers`: MLX `seq.layers.0.weight` is torch `seq.0.weight`.
- Lists and dicts of modules (from ModuleList / ModuleDict) and buffers keep torch's names.
- `num_batches_tracked` (BatchNorm's step counter) has no MLX counterpart and is dropped.
- Convolution kernels are channels-last in MLX: torch (O, I, *k) becomes (O, *k, I), except in a class
  saying `torch_weight_layout = True` (the torch-exact bases of derived layer classes, layer_bases.py).
- `nn.Bilinear` keeps its weight as (out, in2, in1): torch's (out, in1, in2) is swapped.
- Values are cast to the dtype of the MLX parameter they replace, as torch's load_state_dict does.
- Tied weights: a torch model whose parameter is shared (`wte.weight = lm_head.weight`) lists it
  under both keys; the converted model keeps one. A key nothing uses whose tensor *is* a loaded
  one (the same memory, shape, strides and dtype: not merely equal values) is a tied duplicate,
  reported in `LoadReport.tied`, not as unexpected.

Anything that does not line up (an MLX parameter with no torch tensor, a torch tensor nothing
uses, a shape that differs after the layout change) is an error listing all of them, or, with
`strict=False`, is reported in the returned `LoadReport` and skipped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

_DROPPED_SUFFIXES = ("num_batches_tracked",)


class WeightLoadError(ValueError):
    """The state_dict does not fit the model; the message lists every key that does not."""


@dataclass(frozen=True)
class LoadReport:
    loaded: tuple = ()
    missing: tuple = ()       # MLX parameters (their torch names) the state_dict lacks
    unexpected: tuple = ()    # state_dict keys no MLX parameter uses
    mismatched: tuple = field(default=())  # (torch name, torch shape after layout, MLX shape)
    tied: tuple = ()          # (unused key, loaded key) pairs naming the very same tensor

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append("missing from the state_dict: " + ", ".join(self.missing))
        if self.unexpected:
            parts.append("unexpected in the state_dict: " + ", ".join(self.unexpected))
        if self.mismatched:
            parts.append("shape mismatch: " + ", ".join(f"{k} (torch {t} vs MLX {m})" for k, t, m in self.mismatched))
        return "; ".join(parts) or f"{len(self.loaded)} arrays loaded"


def _is_mlx_array(value: Any) -> bool:
    """An mx.array (the converted `torch.hub.load_state_dict_from_url` returns them), without importing MLX."""
    return type(value).__module__.startswith("mlx.") and type(value).__name__ == "array"


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if _is_mlx_array(value):
        import mlx.core as mx

        # numpy has no bfloat16: float32 holds every bfloat16 value exactly (cast back to the parameter's dtype)
        return np.array(value.astype(mx.float32) if value.dtype == mx.bfloat16 else value)
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def _identity(value: Any) -> Any:
    """What makes two state_dict entries the same tensor (shared storage and view); None if unknown."""
    if hasattr(value, "data_ptr") and hasattr(value, "stride"):  # torch, without importing it
        if value.numel() == 0:
            return None
        return ("torch", str(value.device), value.data_ptr(), tuple(value.shape), tuple(value.stride()), str(value.dtype))
    if isinstance(value, np.ndarray) and value.size:
        return ("numpy", value.__array_interface__["data"][0], value.shape, value.strides, value.dtype.str)
    if _is_mlx_array(value) and value.size:
        return ("mlx", id(value))  # one array object under two keys (the checkpoint reader keeps tied tensors so)
    return None


def _tied_duplicates(given: Mapping[str, Any], used: set) -> list:
    """(unused key, loaded key) for each unused entry that is the very tensor of a loaded one."""
    loaded = {}
    for key in sorted(used):
        ident = _identity(given[key])
        if ident is not None:
            loaded.setdefault(ident, key)
    pairs = []
    for key in sorted(set(given) - used):
        ident = _identity(given[key])
        if ident is not None and ident in loaded:
            pairs.append((key, loaded[ident]))
    return pairs


def _layout(module: Any) -> Callable[[str, np.ndarray], np.ndarray]:
    """How a torch array of this MLX module's type becomes the MLX array (by parameter name)."""
    import mlx.nn as nn

    kind = type(module).__name__
    if getattr(type(module), "torch_weight_layout", False):  # a converted class keeping torch's kernel layout
        return lambda name, a: a
    if kind.startswith("ConvTranspose") and isinstance(module, nn.Module):
        # torch (I, O/groups, *k) -> MLX (O, *k, I)
        return lambda name, a: np.moveaxis(np.swapaxes(a, 0, 1), 1, -1) if name == "weight" and a.ndim >= 3 else a
    if kind.startswith("Conv") and isinstance(module, nn.Module):
        return lambda name, a: np.moveaxis(a, 1, -1) if name == "weight" and a.ndim >= 3 else a
    if isinstance(module, nn.Bilinear):
        return lambda name, a: np.swapaxes(a, 1, 2) if name == "weight" else a
    return lambda name, a: a


def _torch_name(mlx_name: str, sequential_prefixes: set) -> str:
    """`seq.layers.0.weight` -> `seq.0.weight` where `seq` is an nn.Sequential."""
    parts = mlx_name.split(".")
    out: list = []
    i = 0
    while i < len(parts):
        here = ".".join(parts[:i])
        if parts[i] == "layers" and here in sequential_prefixes:
            i += 1
            continue
        out.append(parts[i])
        i += 1
    return ".".join(out)


def plan(model: Any) -> dict:
    """MLX parameter name -> (torch name, layout function, MLX array)."""
    import mlx.nn as nn
    from mlx.utils import tree_flatten

    modules = dict(model.named_modules())
    sequential = {name for name, m in modules.items() if isinstance(m, nn.Sequential)}
    result = {}
    for name, array in tree_flatten(model.parameters()):
        owner_name, _, leaf = name.rpartition(".")
        owner = modules.get(owner_name, model if not owner_name else None)
        layout = _layout(owner) if owner is not None else (lambda n, a: a)
        result[name] = (_torch_name(name, sequential), lambda a, f=layout, n=leaf: f(n, a), array)
    return result


def load_torch_weights(model: Any, state_dict: Mapping[str, Any], strict: bool = True) -> LoadReport:
    """Copy a torch state_dict (tensors, numpy arrays, or mx.arrays in torch's layout, as the converted
    `torch.hub.load_state_dict_from_url` returns) into the converted MLX `model`, in place.

    Raises WeightLoadError listing missing, unexpected and mis-shaped keys unless
    `strict=False`, in which case what fits is loaded and the rest is in the report.
    """
    import mlx.core as mx
    from mlx.utils import tree_map_with_path

    given = {k: v for k, v in state_dict.items() if not k.endswith(_DROPPED_SUFFIXES)}
    used: set = set()
    loaded, missing, mismatched = [], [], []
    new_values = {}
    for mlx_name, (torch_name, convert, current) in plan(model).items():
        if torch_name not in given:
            missing.append(torch_name)
            continue
        used.add(torch_name)
        array = convert(_to_numpy(given[torch_name]))
        if tuple(array.shape) != tuple(current.shape):
            mismatched.append((torch_name, tuple(array.shape), tuple(current.shape)))
            continue
        new_values[mlx_name] = mx.array(np.ascontiguousarray(array)).astype(current.dtype)
        loaded.append(torch_name)
    tied = _tied_duplicates(given, used)
    unexpected = sorted(set(given) - used - {key for key, _ in tied})
    report = LoadReport(tuple(loaded), tuple(missing), tuple(unexpected), tuple(mismatched), tuple(tied))
    if strict and not report.ok:
        raise WeightLoadError(report.describe())
    # The new arrays go into the model's own parameter tree, leaf by leaf: tree_unflatten would rebuild it from
    # the dotted names and read a digit key as a list index (a ModuleDict subclass holding modules under "0",
    # "1", timm's MixedConv2d, is a dict, and Module.update then fails on it).
    model.update(tree_map_with_path(lambda path, old: new_values.get(path, old), model.parameters()))
    return report
