"""`F.pad(x, pad)`: torch lists (before, after) pairs from the LAST axis backwards; `mx.pad`
wants one pair per axis from the first. Literal pads only; negative pads (cropping) flagged."""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Flag, bind, code_of
from torch2mlx.handlers import register
from torch2mlx.template import expand, int_literal_value, is_simple, normalize


@register("nn_pad")
def nn_pad(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    pad = bound.get("pad")
    if not isinstance(pad, (cst.Tuple, cst.List)):
        raise Flag("pad must be a literal tuple of integers for an exact translation")
    values = [int_literal_value(e.value) for e in pad.elements]
    if not values or len(values) % 2 or any(v is None for v in values):
        raise Flag("pad must be a literal tuple of an even number of integers")
    if any(v < 0 for v in values):
        raise Flag("negative padding (cropping) has no mx.pad equivalent; slice instead")
    pairs = [f"({values[i]}, {values[i + 1]})" for i in range(0, len(values), 2)]
    widths = "[" + ", ".join(reversed(pairs)) + "]"
    x = bound.get("input")
    if not is_simple(x):
        raise Flag(f"the padded tensor is read twice (for its ndim); assign it to a name first: {code_of(x)}")
    template = "mx.pad({input}, [(0, 0)] * ({input}.ndim - %d) + %s" % (len(pairs), widths)
    template += ", mode='edge')" if bound.present("mode") else ", constant_values={value})"
    return expand(template, rule, bound), frozenset({"mx"})
