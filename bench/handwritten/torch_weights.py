"""torch state_dict -> the arrays of a hand-written port: names, and kernels made channels-last."""
from __future__ import annotations

import re

import numpy as np


def port_weights(state_dict: dict, rename: tuple = (), transposed: tuple = (), drop: tuple = ()) -> dict:
    """numpy arrays under the port's names: `rename` is (regex, replacement) pairs applied in order,
    4-d kernels go from (O, I, kh, kw) to MLX's (O, kh, kw, I) ((I, O, kh, kw) for the keys in
    `transposed`, ConvTranspose2d), keys matching a `drop` regex and BatchNorm's counter are left out."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked") or any(re.fullmatch(d, key) for d in drop):
            continue
        array = value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)
        if array.ndim == 4:
            array = array.transpose(1, 2, 3, 0) if key in transposed else array.transpose(0, 2, 3, 1)
        for pattern, replacement in rename:
            key = re.sub(pattern, replacement, key)
        out[key] = array
    return out


def flatten_nhwc(weight: np.ndarray, channels: int, height: int, width: int) -> np.ndarray:
    """A Linear weight reading a flattened NCHW map, reordered to read the NHWC map flattened as is,
    so the port needs no transpose before its flatten."""
    out = weight.shape[0]
    return weight.reshape(out, channels, height, width).transpose(0, 2, 3, 1).reshape(out, -1)
