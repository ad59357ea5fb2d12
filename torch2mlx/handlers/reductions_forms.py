"""Reductions whose torch overloads a plain signature cannot tell apart.

- `torch.var(x, False)` / `torch.std(x, True)`: torch's `(input, unbiased)` overload puts a
  bool where the `(input, dim, ...)` overload puts `dim`; a literal True/False there is
  `unbiased`, not an axis.
- `torch.max(x)` (full reduction), `torch.max(x, dim, keepdim)` (a (values, indices)
  namedtuple) and `torch.max(x, other)` (elementwise, like `torch.maximum`) share one name;
  same for `torch.min`. The second positional argument decides: an integer literal is a
  dim, a value known to be a tensor is `other`; anything else is flagged.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Bound, Flag, bind, code_of
from torch2mlx.handlers import register
from torch2mlx.template import choose_template, expand, is_int_literal, normalize, template_roots


def _is_bool_literal(node) -> bool:
    return isinstance(node, cst.Name) and node.value in ("True", "False")


@register("reduce_unbiased")
def reduce_unbiased(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = bind(call.args, rule.signature, receiver)
    dim = bound.get("dim")
    if dim is not None and _is_bool_literal(dim):
        if bound.present("unbiased") or bound.present("keepdim"):
            raise Flag(f"dim={code_of(dim)} is a bool; translate by hand")
        values = dict(bound.values)
        values["unbiased"] = values.pop("dim")
        bound = Bound(values)
    bound = normalize(rule, bound)
    template = choose_template(rule, bound)
    return expand(template, rule, bound), template_roots(template)


_REDUCE = {
    "max": "(mx.max({input}, axis={dim}, keepdims={keepdim}), mx.argmax({input}, axis={dim}, keepdims={keepdim}).astype(mx.int64))",
    "min": "(mx.min({input}, axis={dim}, keepdims={keepdim}), mx.argmin({input}, axis={dim}, keepdims={keepdim}).astype(mx.int64))",
}
_FULL = {"max": "mx.max({input})", "min": "mx.min({input})"}
_ELEMENTWISE = {"max": "mx.maximum({input}, {other})", "min": "mx.minimum({input}, {other})"}


@register("reduce_max_min")
def reduce_max_min(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    op = rule.id.rsplit(".", 1)[-1]
    if op not in _REDUCE:
        raise Flag(f"reduce_max_min does not know {rule.id}", "internal-error")
    original_receiver = original.func.value if receiver is not None else None  # type: ignore[attr-defined]
    raw = bind(original.args, rule.signature, original_receiver)
    bound = bind(call.args, rule.signature, receiver)
    dim_by_keyword = any(a.keyword is not None and a.keyword.value in ("dim", "axis") for a in original.args)
    values = dict(bound.values)
    if bound.present("dim") and not dim_by_keyword:
        dim = raw.get("dim")
        if is_int_literal(dim):
            pass
        elif rewriter.tensors.is_tensor(dim):
            if bound.present("other"):
                raise Flag("argument other given twice")
            values["other"] = values.pop("dim")
        else:
            raise Flag(
                f"cannot tell whether `{code_of(dim)}` is a dim (torch.{op}(x, dim) returns (values, indices)) "
                f"or a tensor (elementwise torch.{op}imum); use an integer literal, dim=, or translate by hand"
            )
    bound = normalize(rule, Bound(values))
    if bound.present("other"):
        if bound.present("dim") or bound.present("keepdim"):
            raise Flag(f"torch.{op}(input, other) takes no dim/keepdim")
        template = _ELEMENTWISE[op]
    elif bound.present("dim"):
        template = _REDUCE[op]
    else:
        if bound.present("keepdim"):
            raise Flag(f"torch.{op}(input) takes no keepdim without dim")
        template = _FULL[op]
    return expand(template, rule, bound), template_roots(template)
