"""Layers MLX has no class for (pads, Dropout1d, Unflatten, CosineSimilarity, PairwiseDistance,
LocalResponseNorm, EmbeddingBag): a few readable lines of MLX written into the output file.

**What it does**: `nn.ReflectionPad1d(2)` becomes `ReflectionPad1d(2)` (the rule's template in
rules/nn_layers_extra.yaml) and the classes and functions the filled template names are added after
the imports, once per file (marked `# torch2mlx: generated helper`). The layers that MLX has but
whose arguments a template cannot check (`Conv3d(padding='same')`, `BatchNorm3d(momentum=None)`)
are flagged here too (handler `checked_layer`).

**Exactness**: pads, Dropout1d and LocalResponseNorm work on channels-last arrays like MLX's own
layers ((N, L, C), (N, H, W, C), (N, D, H, W, C)); torch's padding tuple (left, right, top, bottom,
front, back) is read from the last spatial axis backwards, as torch does. Each helper was checked
against torch by running (tests/test_conv_models_1d3d.py).

**Left in place when** a helper's name is already used in the file.
"""
from __future__ import annotations

import re

import libcst as cst

from torch2mlx.binding import Flag, bind
from torch2mlx.handlers import register
from torch2mlx.template import choose_template, expand, normalize, template_roots
from torch2mlx.transforms.training_codegen import mlx_statements

_PAD_FUNCTION = '''
def pad_channels_last(x, padding, dims, mode="constant", value=0.0):
    """PyTorch's padding of the last `dims` spatial axes, for a channels-last array (..., *spatial, C).

    `padding` is an int or PyTorch's (left, right, top, bottom, front, back): the last spatial axis first."""
    pads = (padding,) * (2 * dims) if isinstance(padding, int) else tuple(padding)
    if len(pads) != 2 * dims:
        raise ValueError(f"padding {padding} needs {2 * dims} values")
    widths = [(pads[2 * i], pads[2 * i + 1]) for i in reversed(range(dims))]
    widths = [(0, 0)] * (x.ndim - dims - 1) + widths + [(0, 0)]
    if mode == "constant":
        return mx.pad(x, widths, constant_values=value)
    return mx.pad(x, widths, mode=mode)
'''

_PAD_CLASS = '''
class {name}(nn.Module):
    """PyTorch's {name} for channels-last input{note}."""

    def __init__(self, padding{value_param}):
        super().__init__()
        self.padding = padding{value_init}

    def __call__(self, x):
        return pad_channels_last(x, self.padding, {dims}{mode}{value_arg})
'''


def _pad_class(name: str) -> str:
    kind, dims = name[:-len("Pad1d")], int(name[-2])
    mode = {"Reflection": ', mode="reflect"', "Replication": ', mode="edge"'}.get(kind, "")
    constant = kind == "Constant"
    note = {"Reflection": " (mirrored, the edge not repeated)", "Replication": " (the edge repeated)",
            "Zero": " (zeros)", "Constant": " (a constant)"}[kind]
    return _PAD_CLASS.format(name=name, note=note, dims=dims, mode=mode,
                             value_param=", value" if constant else "",
                             value_init="\n        self.value = value" if constant else "",
                             value_arg=", value=self.value" if constant else "")


_PADS = [f"{kind}Pad{d}d" for kind in ("Zero", "Constant", "Reflection", "Replication") for d in (1, 2, 3)]

_HELPERS = {name: _pad_class(name) for name in _PADS}
_HELPERS["pad_channels_last"] = _PAD_FUNCTION
_HELPERS["BatchNorm3d"] = '''
class BatchNorm3d(nn.BatchNorm):
    """MLX's BatchNorm for channels-last (N, D, H, W, C) input, run on (N, D*H*W, C) (it takes at most 4-D):
    the same axes are normalised, all but the channels."""

    def __call__(self, x):
        return super().__call__(x.reshape(x.shape[0], -1, x.shape[-1])).reshape(x.shape)
'''
_HELPERS["Dropout1d"] = '''
class Dropout1d(nn.Module):
    """PyTorch's Dropout1d for channels-last (N, L, C) or (L, C): zeroes whole channels while training."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = p

    def __call__(self, x):
        if not self.training or self.p == 0:
            return x
        mask = mx.random.bernoulli(1 - self.p, (*x.shape[:-2], 1, x.shape[-1]))
        return mx.where(mask, x / (1 - self.p), 0)
'''
_HELPERS["Unflatten"] = '''
class Unflatten(nn.Module):
    """PyTorch's Unflatten: axis `dim` becomes the axes `unflattened_size`."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def __call__(self, x):
        return mx.unflatten(x, self.dim, self.unflattened_size)
'''
_HELPERS["CosineSimilarity"] = '''
class CosineSimilarity(nn.Module):
    """PyTorch's CosineSimilarity: each input divided by max(its norm, eps), then summed along `dim`."""

    def __init__(self, dim=1, eps=1e-08):
        super().__init__()
        self.dim, self.eps = dim, eps

    def __call__(self, x1, x2):
        n1 = mx.maximum(mx.linalg.norm(x1, axis=self.dim, keepdims=True), self.eps)
        n2 = mx.maximum(mx.linalg.norm(x2, axis=self.dim, keepdims=True), self.eps)
        return mx.sum((x1 / n1) * (x2 / n2), axis=self.dim)
'''
_HELPERS["PairwiseDistance"] = '''
class PairwiseDistance(nn.Module):
    """PyTorch's PairwiseDistance: the p-norm of x1 - x2 + eps along the last axis."""

    def __init__(self, p=2.0, eps=1e-06, keepdim=False):
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def __call__(self, x1, x2):
        return mx.linalg.norm(x1 - x2 + self.eps, ord=self.norm, axis=-1, keepdims=self.keepdim)
'''
_HELPERS["LocalResponseNorm"] = '''
class LocalResponseNorm(nn.Module):
    """PyTorch's LocalResponseNorm over the channels (last axis) of a channels-last array:
    x / (k + alpha * mean of x**2 over `size` neighbouring channels, zero-padded) ** beta."""

    def __init__(self, size, alpha=0.0001, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def __call__(self, x):
        channels = x.shape[-1]
        widths = [(0, 0)] * (x.ndim - 1) + [(self.size // 2, (self.size - 1) // 2)]
        squares = mx.pad(x * x, widths)
        total = sum(squares[..., i:i + channels] for i in range(self.size))
        return x / (self.k + self.alpha * total / self.size) ** self.beta
'''
_HELPERS["EmbeddingBag"] = '''
class EmbeddingBag(nn.Module):
    """PyTorch's EmbeddingBag: sum, mean or max of the embeddings of each bag; an empty bag gives zeros.

    Bags are the rows of a 2-D input, or the runs of a 1-D input starting at `offsets`."""

    def __init__(self, num_embeddings, embedding_dim, mode="mean"):
        super().__init__()
        if mode not in ("sum", "mean", "max"):
            raise ValueError(f"mode {mode!r} is not sum, mean or max")
        self.mode = mode
        self.weight = mx.random.normal((num_embeddings, embedding_dim))

    def __call__(self, input, offsets=None, per_sample_weights=None):
        if input.ndim == 2:
            if offsets is not None:
                raise ValueError("offsets must be None for a 2-D input")
            offsets = mx.arange(0, input.size, input.shape[1])
            input = input.reshape(-1)
        if per_sample_weights is not None and self.mode != "sum":
            raise ValueError("per_sample_weights needs mode='sum'")
        rows = self.weight[input]
        if per_sample_weights is not None:
            rows = rows * per_sample_weights.reshape(-1)[:, None]
        positions = mx.arange(input.shape[0])
        ends = mx.concatenate([offsets[1:], mx.array([input.shape[0]])])
        member = (positions[None, :] >= offsets[:, None]) & (positions[None, :] < ends[:, None])
        if self.mode == "max":
            found = mx.where(member[:, :, None], rows[None], -mx.inf).max(axis=1)
            return mx.where(member.any(axis=1)[:, None], found, 0)
        total = member.astype(rows.dtype) @ rows
        if self.mode == "sum":
            return total
        return total / mx.maximum(member.sum(axis=1), 1)[:, None].astype(rows.dtype)
'''

_DEPENDS = {name: ("pad_channels_last",) for name in _PADS}
HELPER_NAMES = frozenset(_HELPERS)
_NAME = re.compile(r"\b(" + "|".join(sorted(HELPER_NAMES, key=len, reverse=True)) + r")\(")


def _needed(name: str) -> list:
    """`name` after the helpers it calls."""
    return [*_DEPENDS.get(name, ()), name]


def emit_helpers(rewriter, code: str) -> None:
    """Add the helpers `code` calls to the file (once each); Flag when a helper's name is taken there."""
    added = rewriter.__dict__.setdefault("_extra_layers_added", set())
    wanted = list(dict.fromkeys(n for name in _NAME.findall(code) for n in _needed(name)))
    taken = [n for n in wanted if any(n in scope.other or n in scope.imports for scope in rewriter.scopes)]
    if taken:
        raise Flag(f"the name {taken[0]} is already used in this file (the local helper would need it)", "no-equivalent")
    for name in wanted:
        if name in added:
            continue
        for stmt in mlx_statements(rewriter, _HELPERS[name].lstrip("\n")):  # two blank lines before each, PEP 8 style
            rewriter.module_prelude.append(stmt.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine(), *stmt.leading_lines]))
        added.add(name)


@register("extra_layer")
def extra_layer(rule, original, call, receiver, rewriter):
    """Fill the rule's template, then add the local helpers it names."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    _check(bound)
    template = choose_template(rule, bound)
    result = expand(template, rule, bound)
    emit_helpers(rewriter, template)
    return result, template_roots(template)


def _is_string(node) -> bool:
    return isinstance(node, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString))


@register("checked_layer")
def checked_layer(rule, original, call, receiver, rewriter):
    """An MLX layer's template, after the argument values its params cannot reject (a string padding,
    momentum=None) are flagged."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    _check(bound)
    template = choose_template(rule, bound)
    return expand(template, rule, bound), template_roots(template)


def _check(bound) -> None:
    if bound.present("padding") and _is_string(bound.get("padding")):
        raise Flag("MLX convolutions take numeric padding only: write the padding 'same'/'valid' stands for", "no-equivalent")
    momentum = bound.get("momentum") if bound.present("momentum") else None
    if isinstance(momentum, cst.Name) and momentum.value == "None":
        raise Flag("momentum=None (cumulative average of batch statistics) has no MLX equivalent: "
                   "MLX's BatchNorm keeps an exponential average", "no-equivalent")
