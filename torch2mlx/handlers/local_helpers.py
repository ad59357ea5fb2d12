"""Small functions written into the output file for calls no single MLX function matches.

**What it does**: a rule with `handler: local_function` fills its template as usual, e.g.
`torch.gather(x, 1, i)` -> `gather(x, 1, i)`, and every helper the filled template calls (and the
helpers those call) is added after the imports, once per file, in a readable form:

- `gather`, `scatter`, `scatter_add` (rules/indexing.yaml): torch's index may be smaller than the
  input on every axis but `dim` (and than `src` on every axis); torch then reads / writes only the
  leading block, where `mx.take_along_axis` / `mx.put_along_axis` would broadcast a size-1 index.
- `class_weighted_cross_entropy`, `class_weighted_nll_loss` (rules/nn_functional_losses.yaml,
  rules/nn_loss_modules.yaml): torch's per-class `weight=` and `ignore_index=`, whose 'mean' divides
  by the summed weights of the counted targets; MLX's losses weight per sample and ignore nothing.

**Exactness**: each helper follows torch's definition (the formulas of ATen's gather/scatter and
LossNLL.cpp); the rule examples run them against torch, with indices smaller than the input and
class weights that are not all ones.

**Names**: a helper takes its own name where the file leaves it free, else a fresh one (`gather_1` beside the
file's own `gather`), and the translation calls it by that name (`expand_with_helpers` for a template,
`with_helpers` for code filled later, `helper_names` for callers that build the call themselves). `emit` /
`add_helpers`, the older form some callers still use, leave the call in place (`Flag`) when the name is taken.
"""
from __future__ import annotations

import re

import libcst as cst

from torch2mlx.binding import Flag, bind
from torch2mlx.handlers import register
from torch2mlx.template import choose_template, expand, normalize, template_roots
from torch2mlx.transforms import codegen
from torch2mlx.transforms.codegen import mlx_statements

HELPERS = {
    "gather": '''
def gather(input, dim, index):
    """PyTorch's gather: input's values at `index` along axis `dim`. On every other axis the index may be
    smaller than input and reads its leading block (mx.take_along_axis alone would broadcast)."""
    dim = dim % input.ndim
    block = tuple(slice(None) if a == dim else slice(0, n) for a, n in enumerate(index.shape))
    return mx.take_along_axis(input[block], index, axis=dim)
''',
    "scatter_positions": '''
def scatter_positions(dim, index):
    """The index arrays of PyTorch's scatter: element p of `index` goes to position p of the output
    with axis `dim` replaced by index[p]."""
    return tuple(index if a == dim % index.ndim else mx.arange(n).reshape([-1 if b == a else 1 for b in range(index.ndim)])
                 for a, n in enumerate(index.shape))
''',
    "scatter": '''
def scatter(input, dim, index, src):
    """PyTorch's scatter: a copy of input with src's values written at `index` along axis `dim`. src is a
    number or an array whose leading block (index's shape) is read; the index may be smaller than input."""
    out = mx.array(input)
    if isinstance(src, mx.array):
        src = src[tuple(slice(0, n) for n in index.shape)]
    out[scatter_positions(dim, index)] = src
    return out
''',
    "scatter_add": '''
def scatter_add(input, dim, index, src):
    """PyTorch's scatter_add: src's leading block (index's shape) added to input at `index` along axis `dim`;
    repeated positions accumulate. The index may be smaller than input."""
    src = src[tuple(slice(0, n) for n in index.shape)]
    return input.at[scatter_positions(dim, index)].add(src)
''',
    "class_weighted_nll_loss": '''
def class_weighted_nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """PyTorch's nll_loss: log-probabilities on axis 1 (axis 0 for one sample), `weight` per class. A target
    equal to ignore_index counts for nothing; 'mean' divides by the summed weights of the other targets."""
    axis = 1 if input.ndim > 1 else 0
    weight = mx.ones(input.shape[axis], dtype=input.dtype) if weight is None else weight
    keep = target != ignore_index
    target = mx.where(keep, target, 0)
    weights = mx.where(keep, weight[target], 0)
    picked = mx.take_along_axis(input, mx.expand_dims(target, axis), axis).squeeze(axis)
    loss = mx.where(keep, -weights * picked, 0)
    if reduction == "mean":
        return loss.sum() / weights.sum()
    return loss.sum() if reduction == "sum" else loss
''',
    "class_weighted_cross_entropy": '''
def class_weighted_cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """PyTorch's cross_entropy: logits on axis 1 (axis 0 for one sample), `weight` per class.

    Class-index targets: a target equal to ignore_index counts for nothing; 'mean' divides by the summed
    weights of the other targets. Probability targets (input's shape): 'mean' averages over the samples."""
    axis = 1 if input.ndim > 1 else 0
    classes = input.shape[axis]
    weight = mx.ones(classes, dtype=input.dtype) if weight is None else weight
    logp = input - mx.logsumexp(input, axis=axis, keepdims=True)
    weighted = logp * weight.reshape([classes if a == axis else 1 for a in range(input.ndim)])
    if target.ndim == input.ndim:
        target = target * (1 - label_smoothing) + label_smoothing / classes
        loss = -(weighted * target).sum(axis)
        return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss
    keep = target != ignore_index
    target = mx.where(keep, target, 0)
    loss = -mx.take_along_axis(weighted, mx.expand_dims(target, axis), axis).squeeze(axis)
    if label_smoothing:
        loss = (1 - label_smoothing) * loss - label_smoothing / classes * weighted.sum(axis)
    loss = mx.where(keep, loss, 0)
    if reduction == "mean":
        return loss.sum() / mx.where(keep, weight[target], 0).sum()
    return loss.sum() if reduction == "sum" else loss
''',
}
DEPENDS = {"scatter": ("scatter_positions",), "scatter_add": ("scatter_positions",)}


def called(code: str, names) -> list:
    """The names of `names` that `code` calls as plain functions (not `mx.gather(`), in order of appearance."""
    if not names:
        return []
    pattern = re.compile(r"(?<![\w.])(" + "|".join(sorted(names, key=len, reverse=True)) + r")\(")
    return list(dict.fromkeys(pattern.findall(code)))


def _wanted(code: str, helpers: dict, depends: dict | None) -> list:
    """The helpers `code` calls and those they call, callees first."""
    depends = depends or {}
    wanted: list = []
    for name in called(code, helpers):
        for needed in (*depends.get(name, ()), name):
            if needed not in wanted:
                wanted.append(needed)
    return wanted


def emit(rewriter, code: str, helpers: dict, depends: dict | None = None) -> None:
    """Add the helpers of `helpers` that `code` calls to the file (callees first, each once per file);
    Flag when a helper's name is already used there (`expand_with_helpers` takes a fresh name instead)."""
    add_helpers(rewriter, _wanted(code, helpers, depends), helpers)


def expand_with_helpers(rewriter, template: str, rule, bound, helpers: dict, depends: dict | None = None):
    """`template` filled with `bound`, and the helpers of `helpers` it calls added to the file (callees first, once
    per file). A helper whose name the file uses already gets a fresh one (`gather_1`): the helper calls of the
    template, and only those (an argument may call the file's own `gather`), are renamed before it is filled."""
    result = expand(template, rule, bound)  # a Flag before anything is added to the file
    return refill(result, template, rule, bound, helper_names(rewriter, template, helpers, depends))


def refill(result, template: str, rule, bound, names: dict):
    """`result` (`template` filled with `bound`), filled again from the template calling its helpers by their names
    in the file where `names` (what `helper_names` / `codegen.add_helpers` returned) gave one a fresh name. For a
    handler that fills its template, then adds the helpers it calls with its own list of them:
    `result = refill(result, template, rule, bound, codegen.add_helpers(rewriter, wanted, sources))`."""
    renamed = renamed_calls(template, names)
    return result if renamed == template else expand(renamed, rule, bound)


def helper_names(rewriter, code: str, helpers: dict, depends: dict | None = None) -> dict:
    """Add the helpers of `helpers` that `code` calls (and those they call; callees first, once per file) and return
    the name each has in the file: its own where the file leaves it free, else a fresh one (`gather_1`)."""
    return codegen.add_helpers(rewriter, _wanted(code, helpers, depends), helpers)


def with_helpers(rewriter, code: str, helpers: dict, depends: dict | None = None) -> str:
    """`emit` taking fresh names: the helpers `code` calls added to the file, and `code` with its helper calls
    renamed to the names they got (`gather(` -> `gather_1(` beside the file's own `gather`). Fill a template after
    this, never before: an argument filled in may call a function of the file named like a helper."""
    return renamed_calls(code, helper_names(rewriter, code, helpers, depends))


def renamed_calls(code: str, names: dict) -> str:
    """`code` with each plain call `name(` of `names` turned into `names[name](` (`mx.gather(` kept)."""
    renames = {name: fresh for name, fresh in names.items() if fresh != name}
    if not renames:
        return code
    pattern = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, sorted(renames, key=len, reverse=True))) + r")\(")
    return pattern.sub(lambda m: f"{renames[m.group(1)]}(", code)


def add_helpers(rewriter, wanted: list, sources: dict) -> None:
    """Add the helpers named in `wanted` (their code in `sources`) to the file, once each; Flag when a name is taken."""
    taken = [n for n in wanted if rewriter.name_taken(n)]
    if taken:
        raise Flag(f"the name {taken[0]} is already used in this file (the local helper would need it)", "no-equivalent")
    for name in wanted:
        rewriter.add_helper(name, lambda name=name: [  # two blank lines before each, PEP 8 style
            stmt.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine(), *stmt.leading_lines])
            for stmt in mlx_statements(rewriter, sources[name].lstrip("\n"))])


@register("local_function")
def local_function(rule, original, call, receiver, rewriter):
    """Fill the rule's template and add the local helpers it calls (under fresh names where the file uses theirs)."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    template = choose_template(rule, bound)
    return expand_with_helpers(rewriter, template, rule, bound, HELPERS, DEPENDS), template_roots(template)
