"""Binary cross-entropy losses with torch's `weight=` / `pos_weight=` (rules/nn_functional_losses.yaml,
rules/nn_loss_modules.yaml).

torch multiplies the elementwise loss by `weight` broadcast against it (and, with logits, weighs the
positive term by `pos_weight`), then takes the mean over all elements or the sum. MLX's
`weights=` must have the loss's shape (it raises otherwise), and MLX has no pos_weight. So with
either argument the rule's variant gives the elementwise loss, e.g.
`nn.losses.binary_cross_entropy(p, y, with_logits=False, reduction='none') * w`, and this handler
applies the literal reduction: 'mean' -> mx.mean(...), 'sum' -> mx.sum(...), 'none' -> as is. For a
loss module the variant is a lambda (`lambda input, target, weight=w: ...`, the weight captured when
the module is built, as torch does) and its body is reduced. Without either argument the rule's
template (nn.losses with reduction=) is used as is.
"""
from __future__ import annotations

from torch2mlx.binding import Flag, bind, code_of
from torch2mlx.handlers import register
from torch2mlx.template import choose_template, expand, normalize, template_roots

_REDUCE = {"'mean'": "mx.mean({})", "'sum'": "mx.sum({})", "'none'": "{}"}


@register("weighted_loss")
def weighted_loss(rule, original, call, receiver, rewriter):
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    template = choose_template(rule, bound)
    if template != rule.mlx:  # a weighted variant: the elementwise loss, reduced here
        reduction = code_of(bound.get("reduction")).replace('"', "'") if bound.present("reduction") else "'mean'"
        if reduction not in _REDUCE:
            raise Flag(f"reduction={reduction} must be a literal 'mean', 'sum' or 'none'")
        head, body = "", template
        if template.startswith("lambda "):
            head, body = template.split(": ", 1)
            head += ": "
        template = head + _REDUCE[reduction].format(body)
    return expand(template, rule, bound), template_roots(template)
