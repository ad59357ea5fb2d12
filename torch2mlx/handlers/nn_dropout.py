"""`F.dropout(x, p, training=...)`: MLX has no functional dropout, so the mask is written out.

`F.dropout(x, p)` (training defaults to True) becomes
`mx.where(mx.random.bernoulli(1 - p, x.shape), x / (1 - p), 0)` - what MLX's `nn.Dropout` computes
(keep with probability 1 - p, scale the kept values by 1 / (1 - p); `where` gives zeros, not nan,
for p = 1 as torch does). `training=self.training` becomes a conditional expression around it and
`training=False` the identity. The mask comes from MLX's random stream: the same distribution as
torch's, not its numbers (as for `nn.Dropout`). `x` and `p` appear more than once: other expressions
(`p=float(self.drop_rate)` in timm's ResNet head) are bound once, in torch's argument order, by an
immediately called lambda, `(lambda p_: ...)(float(self.drop_rate))`: evaluated once whatever
`training` is, before it, as torch evaluates its arguments.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Flag, bind
from torch2mlx.handlers import register
from torch2mlx.patterns import is_name
from torch2mlx.template import expand, is_simple, normalize, template_roots

_MASK = "mx.where(mx.random.bernoulli(1 - {p}, {input}.shape), {input} / (1 - {p}), 0)"


@register("nnf_dropout")
def functional_dropout(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    if not bound.present("training"):
        template = _MASK
    elif is_name(bound.get("training"), "False"):
        template = "{input}"
    else:
        template = "(" + _MASK + " if {training} else {input})"
    lifted = [p for p in ("input", "p")
              if bound.present(p) and template.count("{%s}" % p) > 1 and not is_simple(bound.get(p))]
    if lifted:
        template = _lifted(template, lifted, bound)
    return expand(template, rule, bound), template_roots(template)


def _lifted(template: str, lifted: list, bound) -> str:
    """`(lambda p_: <template reading p_>)({p})`: each lifted argument evaluated once."""
    others = [bound.get(p) for p in ("input", "p", "training") if p not in lifted and bound.present(p)]
    taken = set().union(*(_names_read(v) for v in others))  # the lambda's parameters would shadow them
    if any(f"{p}_" in taken for p in lifted):
        raise Flag("an argument's name is taken by the generated lambda's parameters; assign it to another name")
    body = template
    for p in lifted:
        body = body.replace("{%s}" % p, f"{p}_")
    return "(lambda %s: %s)(%s)" % (", ".join(f"{p}_" for p in lifted), body, ", ".join("{%s}" % p for p in lifted))


class _Names(cst.CSTVisitor):
    """The variables an expression reads (not attribute names after a dot, nor keyword names)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: set = set()

    def visit_Name(self, node: cst.Name) -> None:
        self.found.add(node.value)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        node.value.visit(self)
        return False


def _names_read(node: cst.BaseExpression) -> set:
    names = _Names()
    node.visit(names)
    return names.found
