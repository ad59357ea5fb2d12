"""Breadth (issue 13, the torch / torch.linalg namespaces) calls a plain template cannot check.

- `tuple_result`: decompositions whose MLX function returns a plain tuple in the order of torch's named
  tuple (`mx.linalg.eigh` -> (eigenvalues, eigenvectors), `mx.linalg.qr` -> (Q, R), ...). Unpacking and
  indexing translate as they are; a field read on the call itself (`torch.linalg.eigh(A).eigenvalues`)
  is flagged with the index to write, since an MLX tuple has no such attribute.
"""
from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from torch2mlx.binding import Flag, bind
from torch2mlx.handlers import register
from torch2mlx.template import choose_template, expand, normalize, template_roots


@register("tuple_result")
def tuple_result(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    statement = rewriter.statement
    if statement is not None:
        for node in m.findall(statement, m.Attribute(value=m.Call())):
            if node.value is original and node.attr.value in rule.namedtuple:
                field = node.attr.value
                raise Flag(f"`.{field}` of {rule.id}: the MLX result is a plain tuple; write "
                           f"[{rule.namedtuple.index(field)}] (fields: {', '.join(rule.namedtuple)})")
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    template = choose_template(rule, bound)
    return expand(template, rule, bound), template_roots(template)
