"""Vision layers MLX lacks: small channels-last helpers written into the output file.

**What it does**: `nn.PixelShuffle(2)` becomes `PixelShuffle(2)`, `F.pixel_shuffle(x, 2)` becomes
`pixel_shuffle(x, 2)` (wrapped in transposes outside channels-last code), `nn.AdaptiveAvgPool2d((7, 7))`
becomes `AdaptiveAvgPool2d((7, 7))`, and the few readable lines of MLX each needs are added after the
imports, once per file (marked `# torch2mlx: generated helper`). The MLX templates are in the rule
table (rules/nn_vision_extra.yaml); this module only binds the arguments and emits the helpers the
filled template names.

**Exactness**: the helpers work on channels-last (N, H, W, C) arrays, like MLX's own layers, and keep
torch's channel order: pixel shuffle sends input channel `c*r*r + i*r + j` to pixel
`(h*r + i, w*r + j)` of output channel `c`. Adaptive pooling is exact when the output size divides
the input size (torch's bins are then equal and disjoint); otherwise the helper raises at run time,
since torch's uneven, overlapping bins are not reproduced. Output size 1 stays a plain mean / max.
`F.interpolate(x, size=...)` becomes `upsample_to_size`, MLX's nn.Upsample with the whole factor
size / input size (the same source pixels as torch, checked); other sizes raise at run time.

**Left in place when** a helper's name is already used in the file.
"""
from __future__ import annotations

import re

import libcst as cst

from torch2mlx.binding import Flag, bind
from torch2mlx.handlers import register
from torch2mlx.template import choose_template, expand, int_literal_value, normalize, template_roots
from torch2mlx.transforms.training_codegen import mlx_statements

_FUNCTIONS = {
    "pixel_shuffle": '''
def pixel_shuffle(x, upscale_factor):
    """Pixel shuffle of channels-last (N, H, W, C*r*r): channel c*r*r + i*r + j -> pixel (h*r + i, w*r + j) of channel c."""
    r = upscale_factor
    *batch, h, w, c = x.shape
    x = x.reshape(*batch, h, w, c // (r * r), r, r)
    x = mx.moveaxis(x, -3, -1)  # (..., h, w, r_i, r_j, c)
    x = mx.swapaxes(x, -4, -3)  # (..., h, r_i, w, r_j, c)
    return x.reshape(*batch, h * r, w * r, c // (r * r))
''',
    "pixel_unshuffle": '''
def pixel_unshuffle(x, downscale_factor):
    """Pixel unshuffle of channels-last (N, H*r, W*r, C): pixel (h*r + i, w*r + j) of channel c -> channel c*r*r + i*r + j."""
    r = downscale_factor
    *batch, h, w, c = x.shape
    x = x.reshape(*batch, h // r, r, w // r, r, c)
    x = mx.swapaxes(x, -4, -3)  # (..., h, w, r_i, r_j, c)
    x = mx.moveaxis(x, -1, -3)  # (..., h, w, c, r_i, r_j)
    return x.reshape(*batch, h // r, w // r, c * r * r)
''',
    "adaptive_avg_pool2d": '''
def adaptive_avg_pool2d(x, output_size):
    """Adaptive average pooling of channels-last (N, H, W, C) to an output size that divides the input size."""
    return _adaptive_pool2d(x, output_size, mx.mean)
''',
    "adaptive_max_pool2d": '''
def adaptive_max_pool2d(x, output_size):
    """Adaptive max pooling of channels-last (N, H, W, C) to an output size that divides the input size."""
    return _adaptive_pool2d(x, output_size, mx.max)
''',
    "upsample_to_size": '''
def upsample_to_size(x, size, mode="nearest", align_corners=False):
    """Upsampling of channels-last (N, H, W, C) to `size`, a whole multiple of the input size."""
    *batch, h, w, c = x.shape
    oh, ow = size if isinstance(size, (tuple, list)) else (size, size)
    if oh % h or ow % w:  # other sizes sample other source pixels
        raise ValueError(f"upsampling from {(h, w)} to {(oh, ow)}: the size must be a whole multiple of the input size")
    return nn.Upsample(scale_factor=(oh // h, ow // w), mode=mode, align_corners=align_corners)(x)
''',
    "adaptive_avg_pool1d": '''
def adaptive_avg_pool1d(x, output_size):
    """Adaptive average pooling of channels-last (N, L, C) to an output size that divides the input length."""
    *batch, length, c = x.shape
    size = output_size[0] if isinstance(output_size, (tuple, list)) else output_size
    if length % size:  # uneven, overlapping bins: not reproduced
        raise ValueError(f"adaptive pooling from {length} to {size}: the output size must divide the input size")
    return mx.mean(x.reshape(*batch, size, length // size, c), axis=-2)
''',
    "_adaptive_pool2d": '''
def _adaptive_pool2d(x, output_size, reduce):
    *batch, h, w, c = x.shape
    oh, ow = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    oh, ow = h if oh is None else oh, w if ow is None else ow  # None keeps that axis's size
    if h % oh or w % ow:  # uneven, overlapping bins: not reproduced
        raise ValueError(f"adaptive pooling from {(h, w)} to {(oh, ow)}: the output size must divide the input size")
    x = x.reshape(*batch, oh, h // oh, ow, w // ow, c)
    return reduce(x, axis=(-4, -2))
''',
}

_CLASSES = {
    "PixelShuffle": ("pixel_shuffle", "upscale_factor", "Pixel shuffle"),
    "PixelUnshuffle": ("pixel_unshuffle", "downscale_factor", "Pixel unshuffle"),
    "AdaptiveAvgPool2d": ("adaptive_avg_pool2d", "output_size", "Adaptive average pooling"),
    "AdaptiveMaxPool2d": ("adaptive_max_pool2d", "output_size", "Adaptive max pooling"),
    "AdaptiveAvgPool1d": ("adaptive_avg_pool1d", "output_size", "Adaptive average pooling"),
}

_CLASS_CODE = '''
class {name}(nn.Module):
    """{doc} of channels-last input (no parameters)."""

    def __init__(self, {arg}):
        super().__init__()
        self.{arg} = {arg}

    def __call__(self, x):
        return {function}(x, self.{arg})
'''

_DEPENDS = {"adaptive_avg_pool2d": ("_adaptive_pool2d",), "adaptive_max_pool2d": ("_adaptive_pool2d",)}
HELPER_NAMES = frozenset(_FUNCTIONS) | frozenset(_CLASSES)
_NAME = re.compile(r"\b(" + "|".join(sorted(HELPER_NAMES, key=len, reverse=True)) + r")\(")


def _source(name: str) -> str:
    if name in _CLASSES:
        function, arg, doc = _CLASSES[name]
        return _CLASS_CODE.format(name=name, function=function, arg=arg, doc=doc)
    return _FUNCTIONS[name]


def _needed(name: str) -> list:
    """`name` and every helper it calls, each once, callees first."""
    deps = [_CLASSES[name][0]] if name in _CLASSES else list(_DEPENDS.get(name, ()))
    found: list = []
    for dep in deps:
        found.extend(d for d in _needed(dep) if d not in found)
    return [*found, name]


def emit_helpers(rewriter, code: str) -> None:
    """Add the helpers `code` calls to the file (once each); Flag when a helper's name is taken there."""
    added = rewriter.__dict__.setdefault("_vision_helpers_added", set())
    wanted = [n for name in dict.fromkeys(_NAME.findall(code)) for n in _needed(name)]
    new = [n for n in dict.fromkeys(wanted) if n not in added]
    taken = [n for n in wanted if any(n in scope.other or n in scope.imports for scope in rewriter.scopes)]
    if taken:
        raise Flag(f"the name {taken[0]} is already used in this file (the local helper would need it)", "no-equivalent")
    for name in new:
        for stmt in mlx_statements(rewriter, _source(name).lstrip("\n")):  # two blank lines before each, PEP 8 style
            rewriter.module_prelude.append(stmt.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine(), *stmt.leading_lines]))
        added.add(name)


@register("vision_helper")
def vision_helper(rule, original, call, receiver, rewriter):
    """Fill the rule's template, then add the local helpers it calls."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    template = choose_template(rule, bound)
    if rule.id in _GLOBAL and _is_one(bound.get("output_size")):
        template = _GLOBAL[rule.id]
    result = expand(template, rule, bound)
    emit_helpers(rewriter, template)
    return result, template_roots(template)


# output size 1: a plain reduction over the two spatial axes of a channels-last map
_GLOBAL = {
    "torch.nn.AdaptiveAvgPool2d": "(lambda x: mx.mean(x, axis=(-3, -2), keepdims=True))",
    "torch.nn.AdaptiveMaxPool2d": "(lambda x: mx.max(x, axis=(-3, -2), keepdims=True))",
    "torch.nn.AdaptiveAvgPool1d": "(lambda x: mx.mean(x, axis=-2, keepdims=True))",
}


def _is_one(node) -> bool:
    if node is None:
        return False
    if int_literal_value(node) == 1:
        return True
    elements = getattr(node, "elements", None)  # (1, 1) for 2-D pooling, (1,) for 1-D
    return bool(elements) and len(elements) <= 2 and all(int_literal_value(e.value) == 1 for e in elements)
