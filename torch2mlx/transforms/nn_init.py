"""`nn.init.zeros_(self.fc.weight)` and friends: in-place initialisers become assignments of new arrays.

MLX arrays are immutable, but assigning an array to a module member replaces the parameter
(`self.fc.weight = ...`, `module.bias = ...` on a module from `self.modules()`), so a statement
`nn.init.<fn>_(<target>, ...)` becomes `<target> = <new array of the same shape and dtype>`:

- `zeros_(t)` -> `mx.zeros_like(t)`; `ones_(t)` -> `mx.ones_like(t)`
- `constant_(t, val)` -> `mx.full(t.shape, val, dtype=t.dtype)`
- `normal_(t, mean=0.0, std=1.0)` -> `mx.random.normal(t.shape, dtype=t.dtype, loc=mean, scale=std)`
- `uniform_(t, a=0.0, b=1.0)` -> `mx.random.uniform(a, b, t.shape, dtype=t.dtype)` (half-open, as torch)
- `xavier_uniform_(t, gain=1.0)` / `xavier_normal_` -> `nn.init.glorot_uniform(t.dtype)(t, gain)` /
  `glorot_normal`: both scale by fan_in + fan_out, a sum MLX's channels-last layouts keep
  (kaiming uses fan_in alone, which MLX computes differently for ConvTranspose: not translated)

A trailing `.data` on the target is dropped (`m.weight.data` is `m.weight`). Random values are
MLX's own stream (the same distribution, not torch's numbers).

**Left flagged** (the table's "no MLX rule"): the call's value used in an expression, a target that
is not an attribute (`nn.init.zeros_(w)` rebinding a local name would not reach the module), a
`generator=` argument, and every other initialiser (kaiming_*, orthogonal_, ...).
"""
from __future__ import annotations

from typing import Optional

import libcst as cst

from torch2mlx.binding import code_of
from torch2mlx.transforms import Transform
from torch2mlx.transforms.training_codegen import mlx_expr

_PREFIXES = ("torch.nn.init.",)
# initialiser -> (parameter names after the tensor, defaults, MLX expression over {t} and those names)
_INITS = {
    "zeros_": ((), {}, "mx.zeros_like({t})"),
    "ones_": ((), {}, "mx.ones_like({t})"),
    "constant_": (("val",), {}, "mx.full({t}.shape, {val}, dtype={t}.dtype)"),
    "normal_": (("mean", "std"), {"mean": "0.0", "std": "1.0"},
                "mx.random.normal({t}.shape, dtype={t}.dtype, loc={mean}, scale={std})"),
    "uniform_": (("a", "b"), {"a": "0.0", "b": "1.0"}, "mx.random.uniform({a}, {b}, {t}.shape, dtype={t}.dtype)"),
    # the spread depends on fan_in + fan_out only, the same in torch's and MLX's layouts of every
    # mapped layer (ConvTranspose swaps fan_in and fan_out, which leaves the sum alone)
    "xavier_uniform_": (("gain",), {"gain": "1.0"}, "nn.init.glorot_uniform({t}.dtype)({t}, {gain})"),
    "xavier_normal_": (("gain",), {"gain": "1.0"}, "nn.init.glorot_normal({t}.dtype)({t}, {gain})"),
}


def _arguments(call: cst.Call, names: tuple, defaults: dict) -> Optional[dict]:
    """Code of each argument (tensor first), defaults filled in; None for anything else."""
    order = ("tensor",) + names
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


def _target(node: cst.BaseExpression) -> Optional[cst.Attribute]:
    """The member to assign: `m.weight` (also for `m.weight.data`); None if not an attribute."""
    if isinstance(node, cst.Attribute) and node.attr.value == "data":
        node = node.value
    return node if isinstance(node, cst.Attribute) and node.attr.value != "data" else None


class NnInitTransform(Transform):
    id = "nn-init"
    description = "nn.init.<fn>_(member, ...) statements -> member = new MLX array"

    def applies_to(self, text: str) -> bool:
        return "init" in text

    def leave_Expr(self, rw, original: cst.Expr, updated: cst.Expr):
        call = original.value
        if not isinstance(call, cst.Call) or not isinstance(updated.value, cst.Call):
            return updated
        qual = rw.qualified_name(call.func) or ""
        name = qual[len(_PREFIXES[0]):] if qual.startswith(_PREFIXES) else None
        if name not in _INITS or not updated.value.args:
            return updated
        params, defaults, template = _INITS[name]
        args = _arguments(updated.value, params, defaults)
        target = _target(updated.value.args[0].value) if updated.value.args[0].keyword is None else None
        if args is None or target is None:
            return updated
        args.pop("tensor")
        value = mlx_expr(rw, template.format(t=code_of(target), **args))
        rw.statement_findings[-1] = [f for f in rw.statement_findings[-1] if f.node is not call]
        rw.converted += 1
        return cst.Assign([cst.AssignTarget(target)], value, semicolon=updated.semicolon)
