"""`torch.split(x, size_or_sizes, dim)`: torch takes chunk *sizes*, `mx.split` takes split *indices*."""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Flag, bind, code_of
from torch2mlx.handlers import register
from torch2mlx.template import expand, int_literal_value, is_simple, normalize


@register("split_sizes")
def split_sizes(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    sizes = bound.get("split_size_or_sections")
    if isinstance(sizes, (cst.List, cst.Tuple)):
        values = [int_literal_value(e.value) for e in sizes.elements]
        if any(v is None for v in values):
            raise Flag("split sizes must be integer literals for an exact translation")
        indices, total = [], 0
        for v in values[:-1]:
            total += v
            indices.append(str(total))
        template = "mx.split({tensor}, [" + ", ".join(indices) + "], axis={dim})"
        if not indices:
            template = "[{tensor}]"
        return expand(template, rule, bound), frozenset({"mx"})
    if int_literal_value(sizes) is not None:
        tensor = bound.get("tensor")
        if not is_simple(tensor):
            raise Flag(f"split by size needs the tensor as a plain name (it is read twice): {code_of(tensor)}")
        template = "mx.split({tensor}, list(range({split_size_or_sections}, {tensor}.shape[{dim}], {split_size_or_sections})), axis={dim})"
        return expand(template, rule, bound), frozenset({"mx"})
    raise Flag("split sizes must be an integer literal or a list of integer literals for an exact translation")
