"""`F.dropout(x, p, training=...)`: MLX has no functional dropout, so the mask is written out; and
`F.scaled_dot_product_attention` (with attention dropout) as a helper written into the file.

`F.dropout(x, p)` (training defaults to True) becomes
`mx.where(mx.random.bernoulli(1 - p, x.shape), x / (1 - p), 0)` - what MLX's `nn.Dropout` computes
(keep with probability 1 - p, scale the kept values by 1 / (1 - p); `where` gives zeros, not nan,
for p = 1 as torch does). `training=self.training` becomes a conditional expression around it and
`training=False` the identity. The mask comes from MLX's random stream: the same distribution as
torch's, not its numbers (as for `nn.Dropout`). `x` and `p` appear more than once: other expressions
(`p=float(self.drop_rate)` in timm's ResNet head) are bound once, in torch's argument order, by an
immediately called lambda, `(lambda p_: ...)(float(self.drop_rate))`: evaluated once whatever
`training` is, before it, as torch evaluates its arguments.

`F.scaled_dot_product_attention(q, k, v, attn_mask=..., dropout_p=..., is_causal=..., scale=..., enable_gqa=...)`
becomes a call of the helper `scaled_dot_product_attention` (SDPA_HELPER, added once per file, a fresh name where the
file uses that one) with the same arguments: timm's `dropout_p=self.attn_drop.p if self.training else 0.` and
`is_causal=is_causal` are values known at run time only. mx.fast.scaled_dot_product_attention alone differs from
torch where the helper does not: it has no dropout, takes 4-D inputs of one batch size only, and gives a row in
which no key takes part the mean of the values (bool mask) or nan (float mask) where torch gives zeros.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Flag, bind
from torch2mlx.handlers import register
from torch2mlx.patterns import is_name
from torch2mlx.template import choose_template, expand, is_simple, normalize, template_roots
from torch2mlx.transforms.codegen import helper_statements

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


# PyTorch's F.scaled_dot_product_attention, written into the file (once, as `scaled_dot_product_attention` or a fresh
# name where the file uses that one). Its semantics are torch's reference (the docs' "equivalent" code and
# ATen's _scaled_dot_product_attention_math), each checked against torch by tests/test_attention_sdpa.py.
SDPA_HELPER = '''
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """PyTorch's F.scaled_dot_product_attention on MLX: softmax(query @ key^T * scale + mask) @ value.

    As PyTorch: scale defaults to 1 / sqrt(E); a boolean mask marks the keys that take part, a float mask is
    added; is_causal is the top-left aligned lower triangle (also where L != S); a row in which no key takes
    part gives zeros; enable_gqa repeats each key/value head for its group of query heads. Dropout keeps
    each attention weight with probability 1 - dropout_p and scales it by 1 / (1 - dropout_p): PyTorch's
    distribution, drawn from MLX's random stream. mx.fast.scaled_dot_product_attention does the work when
    there is no dropout and the inputs are 4-D with one batch size."""
    if not 0.0 <= dropout_p <= 1.0:
        raise RuntimeError(f"dropout probability has to be between 0 and 1, but got {dropout_p}")
    empty = None  # the rows of the output in which no key takes part: zeros
    if is_causal:
        if attn_mask is not None:
            raise RuntimeError("Explicit attn_mask should not be set when is_causal=True")
        attn_mask = mx.tril(mx.ones((query.shape[-2], key.shape[-2]), dtype=mx.bool_))
    elif attn_mask is not None:
        if attn_mask.dtype == mx.bool_:
            empty = ~mx.any(attn_mask, axis=-1, keepdims=True)
        elif mx.issubdtype(attn_mask.dtype, mx.floating):
            empty = mx.all(attn_mask == -mx.inf, axis=-1, keepdims=True)
        else:
            raise RuntimeError(f"Expected attn_mask dtype to be bool or float, but got {attn_mask.dtype}")
    if scale is None:
        scale = query.shape[-1] ** -0.5
    fast = query.ndim == key.ndim == value.ndim == 4 and query.shape[0] == key.shape[0] == value.shape[0]
    if dropout_p == 0 and fast:
        out = mx.fast.scaled_dot_product_attention(query, key, value, scale=scale, mask=attn_mask)
    else:
        if enable_gqa and key.shape[-3] != query.shape[-3]:
            key = mx.repeat(key, query.shape[-3] // key.shape[-3], axis=-3)
            value = mx.repeat(value, query.shape[-3] // value.shape[-3], axis=-3)
        scores = (query @ mx.swapaxes(key, -1, -2)) * scale
        if attn_mask is not None:
            scores = mx.where(attn_mask, scores, -mx.inf) if attn_mask.dtype == mx.bool_ else scores + attn_mask
        weights = mx.softmax(scores, axis=-1)
        if dropout_p > 0:
            weights = mx.where(mx.random.bernoulli(1 - dropout_p, weights.shape), weights / (1 - dropout_p), 0)
        out = weights @ value
    return out if empty is None else mx.where(empty, 0, out)
'''


@register("nnf_sdpa")
def scaled_dot_product_attention(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """`F.scaled_dot_product_attention(...)` -> a call of the helper above (its name in this file), the arguments
    as given: each is read once, and what only run time tells (dropout_p, is_causal, the mask's dtype, the
    inputs' rank) is decided there. The helper takes torch's parameters by torch's names, so a call with `*`/`**`
    arguments (transformers' sdpa_attention_forward: `**sdpa_kwargs`, {} or {"enable_gqa": True}) passes them on
    as written."""
    name = "scaled_dot_product_attention"
    if any(arg.star for arg in call.args):
        result, roots = call, frozenset()
    else:
        bound = normalize(rule, bind(call.args, rule.signature, receiver))
        template = choose_template(rule, bound)
        result, roots = expand(template, rule, bound), template_roots(template)
    name = rewriter.helper(name, lambda: helper_statements(rewriter, SDPA_HELPER))
    return result.with_changes(func=cst.Name(name)), roots
