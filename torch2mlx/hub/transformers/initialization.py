"""transformers.initialization (`from ... import initialization as init`) for MLX arrays, in place as in torch.

`init.normal_(module.weight, std=0.02)` writes into the array object the module holds (`array[...] = ...`),
so the module sees the new values, as transformers' in-place torch functions do. The random streams are
MLX's, not torch's: the distributions are the same, the numbers are not.
"""
from __future__ import annotations

import math

import mlx.core as mx


def _write(tensor, values):
    tensor[...] = values.astype(tensor.dtype)
    return tensor


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None):
    return _write(tensor, mx.random.normal(tensor.shape) * std + mean)


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None):
    return _write(tensor, mx.random.uniform(a, b, tensor.shape))


def constant_(tensor, val):
    return _write(tensor, mx.full(tensor.shape, val))


def zeros_(tensor):
    return _write(tensor, mx.zeros(tensor.shape))


def ones_(tensor):
    return _write(tensor, mx.ones(tensor.shape))


def copy_(tensor, other):
    return _write(tensor, mx.broadcast_to(mx.array(other), tensor.shape))


def _fans(tensor):
    if tensor.ndim < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive = math.prod(tensor.shape[2:]) if tensor.ndim > 2 else 1
    # torch's weights are (out, in, *kernel); the converted modules hold MLX layouts: Linear (out, in) as torch
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def xavier_uniform_(tensor, gain: float = 1.0, generator=None):
    if tensor.ndim > 2:
        raise NotImplementedError("xavier_uniform_ on a convolution weight (MLX keeps channels last)")
    fan_in, fan_out = _fans(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain: float = 1.0, generator=None):
    if tensor.ndim > 2:
        raise NotImplementedError("xavier_normal_ on a convolution weight (MLX keeps channels last)")
    fan_in, fan_out = _fans(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def trunc_normal_(tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, generator=None):
    lower, upper = (a - mean) / std, (b - mean) / std
    return _write(tensor, mx.random.truncated_normal(lower, upper, tensor.shape) * std + mean)
