"""`F.batch_norm` on channels-first data, translated to a local function with torch's signature.

**What it does**: `F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)` becomes
`batch_norm_channels_first(...)` with the same arguments, a local function added after the imports once per
file. It normalises each channel (axis 1, as torch: (N, C, ...) data) with the running statistics in eval
mode (`training` false: timm's BatchNormAct2d in eval), or with the batch statistics (biased variance) when
training without running statistics (timm's StdConv2d / ScaledStdConv2d standardise their kernels with
`F.batch_norm(w.reshape(1, out_channels, -1), None, None, training=True, momentum=0.)`); then scales and
shifts by weight and bias.

**Exactness**: torch's formulas (aten/src/ATen/native/Normalization.cpp): (x - mean) / sqrt(var + eps) *
weight + bias, momentum unused when nothing is updated. Training mode WITH running statistics updates them
in place in torch, which MLX arrays cannot: the function raises NotImplementedError then (never silently
different). The channel axis is torch's: applied to a value the nn-layout analysis knows to be a
channels-last feature map, the call is flagged by that analysis (a function it does not follow), as every
functional form written for NCHW data is. timm's kernels, `self.weight.reshape(1, out_channels, -1)`, hold
the same elements per output channel in both layouts (MLX's (O, kh, kw, I) rows are a permutation of
torch's (O, I, kh, kw) rows), and a row's statistics do not depend on its order.

**Left flagged**: when the helper's name is already used in the file.
"""
from __future__ import annotations

from torch2mlx.binding import bind
from torch2mlx.handlers import register
from torch2mlx.handlers.local_helpers import expand_with_helpers, refill
from torch2mlx.transforms.codegen import add_helpers
from torch2mlx.template import expand, normalize, template_roots

_HELPER = {"batch_norm_channels_first": '''
def batch_norm_channels_first(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-05):
    """PyTorch's F.batch_norm of channels-first (N, C, ...) input: each channel (axis 1) normalised with the
    running statistics (eval mode) or the batch statistics (training, biased variance), then scaled and shifted.
    Training with running statistics would update them in place (PyTorch): MLX arrays cannot, so it raises."""
    shape = (1, -1) + (1,) * (input.ndim - 2)
    if training:
        if running_mean is not None or running_var is not None:
            raise NotImplementedError("F.batch_norm in training mode updates running_mean/running_var in place; "
                                      "MLX arrays are immutable (use nn.BatchNorm, channels-last)")
        axes = (0, *range(2, input.ndim))
        mean = mx.mean(input, axis=axes, keepdims=True)
        var = mx.var(input, axis=axes, keepdims=True)
    else:
        mean, var = running_mean.reshape(shape), running_var.reshape(shape)
    out = (input - mean) * mx.rsqrt(var + eps)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out
'''}
_TEMPLATE = ("batch_norm_channels_first({input}, {running_mean}, {running_var}, weight={weight}, bias={bias}, "
             "training={training}, momentum={momentum}, eps={eps})")


@register("nnf_batch_norm")
def functional_batch_norm(rule, original, call, receiver, rewriter):
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    result = expand(_TEMPLATE, rule, bound)
    result = refill(result, _TEMPLATE, rule, bound, add_helpers(rewriter, ["batch_norm_channels_first"], _HELPER))
    return result, template_roots(_TEMPLATE) | frozenset({"mx"})


# F.group_norm (timm's GroupNorm / GroupNorm1 forward, poolformer): torch's native_group_norm
# (aten/src/ATen/native/group_norm.cpp): each sample's channels (axis 1) in num_groups consecutive groups, each group
# normalised over its channels and positions with the biased variance, then a per-channel scale and shift. Channel
# axis 1 as for F.batch_norm: on a channels-last feature map the nn-layout analysis flags the call.
_GROUP_NORM_HELPER = {"group_norm_channels_first": '''
def group_norm_channels_first(input, num_groups, weight=None, bias=None, eps=1e-05):
    """PyTorch's F.group_norm of channels-first (N, C, ...) input: the C channels (axis 1) of each sample split into
    num_groups consecutive groups, each normalised over its channels and positions (biased variance), then each
    channel scaled by weight and shifted by bias."""
    if input.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {input.ndim}")
    channels = input.shape[1]
    if channels % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {tuple(input.shape)} and num_groups={num_groups}")
    grouped = input.reshape(input.shape[0], num_groups, -1)
    mean = mx.mean(grouped, axis=-1, keepdims=True)
    var = mx.var(grouped, axis=-1, keepdims=True)
    out = ((grouped - mean) * mx.rsqrt(var + eps)).reshape(input.shape)
    shape = (1, channels) + (1,) * (input.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out
'''}
_GROUP_NORM_TEMPLATE = "group_norm_channels_first({input}, {num_groups}, weight={weight}, bias={bias}, eps={eps})"


@register("nnf_group_norm")
def functional_group_norm(rule, original, call, receiver, rewriter):
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    template = _GROUP_NORM_TEMPLATE
    result = expand_with_helpers(rewriter, template, rule, bound, _GROUP_NORM_HELPER)
    return result, template_roots(template) | frozenset({"mx"})
