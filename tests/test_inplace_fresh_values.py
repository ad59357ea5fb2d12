"""inplace-op: the value of an in-place method used as an operand (`x.sigmoid_() * 2`, `return x.clamp_(min=m)`) on a
local holding a tensor no other reference has is its new value, bound back to the name: `(x := mx.sigmoid(x)) * 2`.
Flagged where the value is kept under another name or the name is read again in the statement."""
import textwrap

import numpy as np
import pytest

from torch2mlx import convert_source
from torch2mlx.verify import compare, run_function, to_numpy

HEADER = "import torch\n\n\ndef example(a: torch.Tensor, flag: bool = True):\n"

CONVERTED = [
    ("x = a * 2\ny = x.sigmoid_() * 2\nreturn x, y", "(x := mx.sigmoid(x)) * 2"),
    ("x = a * 2\nreturn x.clamp_(min=0.5)", "return (x := mx.clip(x, 0.5, None))"),
    ("x = a - 1\nz = -x.mul_(3)\nx.add_(1)\nreturn x, z", "z = -(x := mx.multiply(x, 3))"),
]

FLAGGED = [
    "x = a * 2\ny = x.sigmoid_()\nx.add_(1)\nreturn y",     # y is x's tensor: the later update reaches it in torch
    "x = a * 3\nw = x.mul_(2) + x\nreturn w",               # x read again in the statement
    "x = a * 3\nw = x + x.mul_(2)\nreturn w",               # ... before the update: torch's sum sees it
    "x = a + 1\nv = x.mul_(2) if flag else x * 2\nreturn v",
    "return a.sigmoid_() * 2",                               # a parameter: its value is the caller's tensor
    "x = a * 1\nys = [x.add_(1) * 2 for _ in range(2)]\nreturn ys[1]",  # a comprehension: a walrus binds elsewhere
]


def test_kept_value_of_an_update_chain_is_flagged_not_a_crash():
    """torchvision 0.28 transforms/v2/functional/_color.py:332 `hr = bc.sub_(gc).mul_(~mask_maxc_neq_r)`: the value of
    the chain is bc's tensor, kept as hr (the scope analysis once crashed reading the inner call as a name)."""
    result = convert_source(_source("bc = a * 1\ngc = a * 2\nhr = bc.sub_(gc).mul_(3)\nreturn hr, bc"))
    assert any(d.rule_id == "inplace-op" for d in result.diagnostics), result.code
    assert "bc.sub_(gc).mul_(3)" in result.code


def _source(body):
    return HEADER + textwrap.indent(body, "    ") + "\n"


@pytest.mark.parametrize("body,line", CONVERTED, ids=[c[1] for c in CONVERTED])
def test_value_of_an_update_of_a_fresh_local(body, line):
    source = _source(body)
    result = convert_source(source)
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    assert not warnings, "\n".join(d.format() for d in warnings) + "\n" + result.code
    assert line in result.code, result.code
    inputs = {"a": np.random.RandomState(0).standard_normal((2, 3)).astype(np.float32)}
    expected = to_numpy(run_function(source, inputs, "torch"))
    actual = to_numpy(run_function(result.code, inputs, "mlx"))
    assert compare(expected, actual) is None, compare(expected, actual)


@pytest.mark.parametrize("body", FLAGGED)
def test_value_kept_or_read_again_is_flagged(body):
    result = convert_source(_source(body))
    assert any(d.rule_id == "inplace-op" for d in result.diagnostics), result.code
