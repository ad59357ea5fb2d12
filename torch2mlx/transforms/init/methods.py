"""`m.weight.data.normal_(mean=0.0, std=0.02)` and the other Tensor-method initialisers (nn-init).

A statement `<member>[.data].<method>(...)` on a module member becomes `<member> = <new array>`
(the member is replaced, as `nn.init.*` statements are):
- `zero_()` -> `mx.zeros_like(t)`; `fill_(v)` -> `mx.full(t.shape, v, dtype=t.dtype)`
- `normal_(mean=0, std=1)` -> `mx.random.normal(t.shape, dtype=t.dtype, loc=mean, scale=std)`
- `uniform_(from=0, to=1)` -> `mx.random.uniform(from, to, t.shape, dtype=t.dtype)`
- `copy_(src)` -> `mx.broadcast_to(src, t.shape).astype(t.dtype)` (torch broadcasts and casts too)
A local name or a subscript (`w.data[idx].zero_()`, e.g. an Embedding's padding_idx row) is the
in-place transform's business (it flags what it cannot prove unshared). Random fills that are
not translated (`generator=`, a local name, other distributions, the value used) are flagged.
"""
from __future__ import annotations

from typing import Optional

import libcst as cst

from torch2mlx.binding import code_of

# method -> (parameter names, defaults, MLX expression over {t} and those names)
METHODS = {
    "zero_": ((), {}, "mx.zeros_like({t})"),
    "fill_": (("value",), {}, "mx.full({t}.shape, {value}, dtype={t}.dtype)"),
    "normal_": (("mean", "std"), {"mean": "0.0", "std": "1.0"},
                "mx.random.normal({t}.shape, dtype={t}.dtype, loc={mean}, scale={std})"),
    "uniform_": (("from", "to"), {"from": "0.0", "to": "1.0"}, "mx.random.uniform({from}, {to}, {t}.shape, dtype={t}.dtype)"),
    "copy_": (("src",), {}, "mx.broadcast_to({src}, {t}.shape).astype({t}.dtype)"),
}
# in-place random fills with no translation here: flagged wherever they appear
RANDOM_FILLS = frozenset({"normal_", "uniform_", "exponential_", "bernoulli_", "random_", "log_normal_",
                          "cauchy_", "geometric_"})


def member_target(node: cst.BaseExpression) -> Optional[cst.Attribute]:
    """The member to assign: `m.weight` (also for `m.weight.data`); None if not an attribute."""
    if isinstance(node, cst.Attribute) and node.attr.value == "data":
        node = node.value
    return node if isinstance(node, cst.Attribute) and node.attr.value != "data" else None


def bind_arguments(call: cst.Call, names: tuple, defaults: dict, first: tuple = ()) -> Optional[dict]:
    """Code of each argument by name (`first` are leading positional slots), defaults filled in; None
    for anything else (a star argument, an unknown keyword such as generator=, a missing one)."""
    order = first + names
    found: dict = {}
    for i, arg in enumerate(call.args):
        if arg.star:
            return None
        key = arg.keyword.value if arg.keyword is not None else (order[i] if i < len(order) else None)
        if key not in order or key in found:
            return None
        found[key] = code_of(arg.value)
    for name in order:
        if name not in found:
            if name not in defaults:
                return None
            found[name] = defaults[name]
    return found


def method_value(call: cst.Call) -> Optional[tuple]:
    """(target, MLX expression text) for a translatable method-initialiser call, else None."""
    if not isinstance(call.func, cst.Attribute) or call.func.attr.value not in METHODS:
        return None
    target = member_target(call.func.value)
    if target is None:
        return None
    names, defaults, template = METHODS[call.func.attr.value]
    args = bind_arguments(call, names, defaults)
    if args is None:
        return None
    return target, template.format(t=code_of(target), **args)
