"""`F.batch_norm` with batch statistics and no running statistics: a pure function, translated exactly.

**What it does**: `F.batch_norm(w, None, None, weight=g, training=True, momentum=0., eps=e)` (timm's
StdConv2d / ScaledStdConv2d standardise their kernels this way) becomes `batch_norm_batch_stats(w, g,
eps=e)`, a local function added after the imports once per file: each channel (axis 1) normalised over
every other axis with the biased variance, as torch normalises in training mode, then scaled and shifted.

**Exactness**: with `running_mean` and `running_var` both `None`, torch's batch norm updates nothing and
returns the normalised input (momentum is unused). The channel axis is axis 1 as in torch: where the
input is a channels-last feature map in MLX, the nn-layout analysis flags the call (a function it does
not know, on a channels-last value). timm's kernels, `self.weight.reshape(1, out_channels, -1)`, hold the
same elements per output channel in both layouts (MLX's (O, kh, kw, I) rows are a permutation of torch's
(O, I, kh, kw) rows), and the statistics of a row do not depend on its order.

**Left flagged**: running statistics (eval mode reads them along torch's channel axis, whose place in MLX
depends on the data's layout, and training mode updates them in place), `training` other than the
literal True.
"""
from __future__ import annotations

import libcst.matchers as m

from torch2mlx.binding import Flag, bind
from torch2mlx.handlers import register
from torch2mlx.handlers.local_helpers import add_helpers
from torch2mlx.template import expand, normalize, template_roots

_HELPER = {"batch_norm_batch_stats": '''
def batch_norm_batch_stats(input, weight=None, bias=None, eps=1e-05):
    """PyTorch's F.batch_norm with batch statistics and no running statistics (training=True, running_mean
    and running_var None): each channel (axis 1) normalised over every other axis, biased variance."""
    axes = (0, *range(2, input.ndim))
    mean = mx.mean(input, axis=axes, keepdims=True)
    var = mx.var(input, axis=axes, keepdims=True)
    out = (input - mean) * mx.rsqrt(var + eps)
    shape = (1, -1) + (1,) * (input.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out
'''}
_TEMPLATE = "batch_norm_batch_stats({input}, weight={weight}, bias={bias}, eps={eps})"
_NONE = m.Name("None")


@register("nnf_batch_norm")
def functional_batch_norm(rule, original, call, receiver, rewriter):
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    if not (m.matches(bound.get("running_mean"), _NONE) and m.matches(bound.get("running_var"), _NONE)):
        raise Flag("running statistics: eval mode reads them along torch's channel axis (axis 1 of NCHW data; "
                   "MLX feature maps are channels-last) and training mode updates them in place; use MLX "
                   "nn.BatchNorm (channels-last) by hand")
    if not (bound.present("training") and m.matches(bound.get("training"), m.Name("True"))):
        raise Flag("training= must be the literal True when there are no running statistics (torch raises in "
                   "eval mode without them)")
    result = expand(_TEMPLATE, rule, bound)
    add_helpers(rewriter, ["batch_norm_batch_stats"], _HELPER)
    return result, template_roots(_TEMPLATE) | frozenset({"mx"})
