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

from torch2mlx.binding import argument_code, code_of, signature_of

# method -> (torch's signature after the tensor, MLX expression over {t} and its parameters)
METHODS = {
    "zero_": (signature_of(), "mx.zeros_like({t})"),
    "fill_": (signature_of(("value",)), "mx.full({t}.shape, {value}, dtype={t}.dtype)"),
    "normal_": (signature_of(("mean", "std"), defaults={"mean": "0.0", "std": "1.0"}),
                "mx.random.normal({t}.shape, dtype={t}.dtype, loc={mean}, scale={std})"),
    "uniform_": (signature_of(("from", "to"), defaults={"from": "0.0", "to": "1.0"}),
                 "mx.random.uniform({from}, {to}, {t}.shape, dtype={t}.dtype)"),
    "copy_": (signature_of(("src",)), "mx.broadcast_to({src}, {t}.shape).astype({t}.dtype)"),
}
# in-place random fills with no translation here: flagged wherever they appear
RANDOM_FILLS = frozenset({"normal_", "uniform_", "exponential_", "bernoulli_", "random_", "log_normal_",
                          "cauchy_", "geometric_"})


def member_target(node: cst.BaseExpression) -> Optional[cst.Attribute]:
    """The member to assign: `m.weight` (also for `m.weight.data`); None if not an attribute."""
    if isinstance(node, cst.Attribute) and node.attr.value == "data":
        node = node.value
    return node if isinstance(node, cst.Attribute) and node.attr.value != "data" else None


def data_receiver(original: cst.Call, updated: cst.Call) -> cst.Call:
    """`updated` with the receiver `m.weight.data` it had in the source: where the receiver is known to be a tensor
    (`m.weight` of a Linear), the table translated `m.weight.data` to `mx.stop_gradient(m.weight)` already; the
    statement replaces the member, so the member itself is the target."""
    before = original.func.value if isinstance(original.func, cst.Attribute) else None
    after = updated.func.value if isinstance(updated.func, cst.Attribute) else None
    if (isinstance(before, cst.Attribute) and before.attr.value == "data" and isinstance(after, cst.Call)
            and len(after.args) == 1 and not after.args[0].keyword and not after.args[0].star):
        return updated.with_changes(func=updated.func.with_changes(value=cst.Attribute(after.args[0].value, cst.Name("data"))))
    return updated


def method_value(call: cst.Call) -> Optional[tuple]:
    """(target, MLX expression text) for a translatable method-initialiser call, else None."""
    if not isinstance(call.func, cst.Attribute) or call.func.attr.value not in METHODS:
        return None
    target = member_target(call.func.value)
    if target is None:
        return None
    signature, template = METHODS[call.func.attr.value]
    args = argument_code(call.args, signature)  # None for a star argument, generator=, a missing one
    if args is None:
        return None
    return target, template.format(t=code_of(target), **args)
