"""`F.dropout(x, p, training=...)`: MLX has no functional dropout, so the mask is written out.

`F.dropout(x, p)` (training defaults to True) becomes
`mx.where(mx.random.bernoulli(1 - p, x.shape), x / (1 - p), 0)` - what MLX's `nn.Dropout` computes
(keep with probability 1 - p, scale the kept values by 1 / (1 - p); `where` gives zeros, not nan,
for p = 1 as torch does). `training=self.training` becomes a conditional expression around it and
`training=False` the identity. The mask comes from MLX's random stream: the same distribution as
torch's, not its numbers (as for `nn.Dropout`). `x` and `p` appear more than once, so they must be
names, attributes or literals (else flagged: no double evaluation).
"""
from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from torch2mlx.binding import bind
from torch2mlx.handlers import register
from torch2mlx.template import expand, normalize, template_roots

_MASK = "mx.where(mx.random.bernoulli(1 - {p}, {input}.shape), {input} / (1 - {p}), 0)"


@register("nnf_dropout")
def functional_dropout(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    if not bound.present("training"):
        template = _MASK
    elif m.matches(bound.get("training"), m.Name("False")):
        template = "{input}"
    else:
        template = "(" + _MASK + " if {training} else {input})"
    return expand(template, rule, bound), template_roots(template)
