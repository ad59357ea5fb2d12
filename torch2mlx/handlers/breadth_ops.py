"""Breadth (issue 13) calls a template alone cannot express (rules/breadth_more.yaml).

- `x.unfold(dimension, size, step)`: sliding windows, gathered with `mx.take` on an index of shape
  (windows, size); the window axis moves to the end (`dimension` must be an integer literal, its sign
  decides where the size axis lands).
- `torch.testing.assert_close`, `nn.utils.rnn.pad_sequence`: local helpers written into the output file
  (`assert_close_mlx`, `pad_sequence_mlx`: the torch names are often imported as they are).
- `F.conv1d`: a string padding ('same' / 'valid') is flagged; a one-element tuple stride / padding /
  dilation becomes its element (mx.conv1d takes ints).
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Bound, Flag, bind, code_of
from torch2mlx.handlers import register
from torch2mlx.handlers.local_helpers import expand_with_helpers
from torch2mlx.template import choose_template, expand, int_literal_value, normalize, template_roots


def _finish(rule, bound: Bound):
    template = choose_template(rule, bound)
    return expand(template, rule, bound), template_roots(template) | frozenset({"mx"})


@register("tensor_unfold")
def tensor_unfold(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    dim = int_literal_value(bound.get("dimension"))
    if dim is None:
        raise Flag(f"unfold: dimension must be an integer literal (it decides where the window axis goes): "
                   f"{code_of(bound.get('dimension'))}")
    size_axis = cst.Integer(str(dim + 1)) if dim >= 0 else cst.parse_expression(str(dim))
    return _finish(rule, Bound({**bound.values, "size_axis": size_axis}))


# Local helpers written into the output file (as torch2mlx/handlers/local_helpers.py does for gather/scatter)
HELPERS = {
    "assert_close_mlx": '''
def assert_close_mlx(actual, expected, *, rtol=None, atol=None, equal_nan=False, check_dtype=True):
    """PyTorch's testing.assert_close for arrays and numbers: the same shape (and dtype, unless
    check_dtype=False) and |actual - expected| <= atol + rtol * |expected| everywhere, with PyTorch's
    default tolerances for the dtypes (0 for integers and bools)."""
    if isinstance(actual, mx.array) != isinstance(expected, mx.array):
        raise TypeError(f"No comparison pair was able to handle inputs of type {type(actual)} and {type(expected)}.")
    actual, expected = mx.array(actual), mx.array(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"The values are not close: shapes {actual.shape} and {expected.shape} differ")
    if check_dtype and actual.dtype != expected.dtype:
        raise AssertionError(f"The values are not close: dtypes {actual.dtype} and {expected.dtype} differ")
    if (rtol is None) != (atol is None):
        raise ValueError("Both 'rtol' and 'atol' must be either specified or omitted")
    if rtol is None:
        defaults = {mx.float16: (1e-3, 1e-5), mx.bfloat16: (1.6e-2, 1e-5), mx.float32: (1.3e-6, 1e-5),
                    mx.float64: (1e-7, 1e-7), mx.complex64: (1.3e-6, 1e-5)}
        pairs = [defaults.get(actual.dtype, (0.0, 0.0)), defaults.get(expected.dtype, (0.0, 0.0))]
        rtol, atol = max(p[0] for p in pairs), max(p[1] for p in pairs)
    if not mx.allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=equal_nan).item():
        raise AssertionError(f"The values are not close (rtol={rtol}, atol={atol})")
''',
    "pad_sequence_mlx": '''
def pad_sequence_mlx(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """PyTorch's nn.utils.rnn.pad_sequence: arrays of shape (L_i, *) padded with padding_value to the
    longest L_i (after the values, or before them for padding_side='left') and stacked on axis 0
    (batch_first) or 1, in the first sequence's dtype."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        s = s.astype(sequences[0].dtype)  # padded and stacked in the first one's dtype, as PyTorch
        extra = (0, longest - s.shape[0]) if padding_side == "right" else (longest - s.shape[0], 0)
        padded.append(mx.pad(s, [extra] + [(0, 0)] * (s.ndim - 1), constant_values=padding_value))
    return mx.stack(padded, axis=0 if batch_first else 1)
''',
}


@register("breadth_local_function")
def breadth_local_function(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """Fill the rule's template, then add the local helpers of HELPERS it calls. They are named `<torch name>_mlx`:
    real code imports the torch name itself (`from torch.nn.utils.rnn import pad_sequence`)."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    template = choose_template(rule, bound)
    result = expand_with_helpers(rewriter, template, rule, bound, HELPERS)
    return result, template_roots(template) | frozenset({"mx"})
