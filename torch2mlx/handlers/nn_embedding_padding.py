"""`nn.Embedding(n, d, padding_idx=p)` and `F.embedding(i, w, padding_idx=p)` (rules/nn_layers.yaml,
rules/nn_functional.yaml): MLX's Embedding has no padding_idx.

torch's padding_idx (BERT, RoBERTa, LLaMA, Mistral, Qwen2 build their token embeddings with it) does two
things: nn.Embedding zeroes weight row p once when it is built, and the lookup gives row p no gradient (it is
never trained); the forward is a plain lookup. A negative p means p + n; torch refuses p outside [-n, n).
Both translate to local helpers written into the file once: `padded_embedding(input, weight, padding_idx)`
looks up the rows and stops the gradient of the looked-up rows equal to p (rows p only: any other use of the
weight, e.g. a tied output layer, still gets its gradient, as in torch); `PaddedEmbedding`, an
`nn.Embedding` whose __init__ zeroes row p and whose __call__ is that lookup. Its parameter stays `weight`, so
torch state dicts load, and it is still an nn.Embedding for isinstance checks. A name the file uses already
makes the helper get a fresh one.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import bind
from torch2mlx.handlers import register
from torch2mlx.template import choose_template, expand, normalize, template_roots
from torch2mlx.transforms.codegen import add_helpers

HELPERS = {
    "padded_embedding": '''
def padded_embedding(input, weight, padding_idx=None):
    """PyTorch's embedding lookup with padding_idx: weight's rows at `input`; the rows looked up at
    padding_idx (negative: counted from the end) get no gradient."""
    out = weight[input]
    if padding_idx is None:
        return out
    n = weight.shape[0]
    if not -n <= padding_idx < n:
        raise ValueError(f"padding_idx {padding_idx} must be within num_embeddings ({n})")
    padding = mx.expand_dims(input == padding_idx % n, -1)
    return mx.where(padding, mx.stop_gradient(out), out)
''',
    "PaddedEmbedding": '''
class PaddedEmbedding(nn.Embedding):
    """PyTorch's Embedding with padding_idx: row padding_idx (negative: counted from the end) is zeroed
    when the layer is built and gets no gradient from the lookup."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None):
        super().__init__(num_embeddings, embedding_dim)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"padding_idx {padding_idx} must be within num_embeddings ({num_embeddings})")
            padding_idx %= num_embeddings
            self.weight[padding_idx] = 0
        self.padding_idx = padding_idx

    def __call__(self, x):
        return padded_embedding(x, self.weight, self.padding_idx)
''',
}
DEPENDS = {"PaddedEmbedding": ("padded_embedding",), "padded_embedding": ()}


@register("embedding_padding")
def embedding_padding(rule, original, call, receiver, rewriter):
    """Fill the rule's template (the variant for a present padding_idx calls a helper), adding the helper it calls."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    template = choose_template(rule, bound)
    result = expand(template, rule, bound)
    callee = result.func if isinstance(result, cst.Call) else None
    if isinstance(callee, cst.Name) and callee.value in HELPERS:
        names = add_helpers(rewriter, [*DEPENDS[callee.value], callee.value], HELPERS)
        result = result.with_changes(func=cst.Name(names[callee.value]))
        return result, frozenset({"mx", "nn"})
    return result, template_roots(template)
