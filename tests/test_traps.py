"""Traps where a literal rename would be silently wrong: each converts right or is flagged.

Every case runs the torch original and the MLX translation on the same inputs and compares
values, shapes and dtypes; `naive` is the literal rename that must NOT be produced.
"""
import pytest

from torch2mlx import convert_source
from torch2mlx.verify import compare, example_source, function_body, make_inputs, run_function, to_numpy

TRAPS = [
    # (id, torch expression, inputs, naive rename that would be wrong)
    ("split-sizes-int", "torch.split(x, 2)", {"x": "randn(5, 3)"}, "mx.split(x, 2)"),
    ("split-sizes-list", "torch.split(x, [1, 3, 1], dim=0)", {"x": "randn(5, 3)"}, "mx.split(x, [1, 3, 1]"),
    # a size of unknown kind (int or list) goes through a helper that decides at run time
    ("split-unknown-size-int", "torch.split(x, n)", {"x": "randn(5)", "n": 2}, "mx.split(x, n"),
    ("split-unknown-size-list", "torch.split(x, n)", {"x": "randn(5)", "n": [1, 4]}, "mx.split(x, n"),
    ("var-unbiased-default", "torch.var(x)", {"x": "randn(4, 3)"}, "mx.var(x)"),
    ("std-unbiased-default", "x.std(dim=1)", {"x": "randn(4, 3)"}, "mx.std(x, axis=1)"),
    ("max-dim-values-indices", "torch.max(x, 1)", {"x": "randn(3, 4)"}, "mx.max(x, 1)"),
    ("max-dim-values-attr", "torch.max(x, dim=0).values", {"x": "randn(3, 4)"}, None),
    ("min-dim-indices-attr", "x.min(dim=1).indices", {"x": "randn(3, 4)"}, None),
    ("max-method-full", "x.max()", {"x": "randn(3, 4)"}, None),
    ("transpose-pair", "x.transpose(0, 2)", {"x": "randn(2, 3, 4)"}, "mx.transpose(x, 0, 2)"),
    ("repeat-is-tile", "x.repeat(2, 3)", {"x": "randn(2, 2)"}, "mx.repeat("),
    ("flatten-start-dim", "torch.flatten(x, 1)", {"x": "randn(2, 3, 4)"}, "mx.flatten(x, 1)"),
    ("expand-minus-one", "x.expand(-1, 4)", {"x": "randn(3, 1)"}, "mx.broadcast_to(x, (-1, 4))"),
    ("gather", "torch.gather(x, 1, i)", {"x": "randn(3, 4)", "i": "randint(0, 4, (3, 2))"}, None),
    ("index-select", "torch.index_select(x, 1, i)", {"x": "randn(3, 4)", "i": "itensor([3, 0, 3])"}, None),
    ("index-add-repeated", "x.index_add(0, i, v)", {"x": "randn(4, 2)", "i": "itensor([1, 1, 3, 1])", "v": "randn(4, 2)"}, None),
    ("scatter-add-repeated", "torch.scatter_add(x, 0, i, v)", {"x": "randn(3, 2)", "i": "itensor([[0, 1], [0, 1], [2, 0]])", "v": "randn(3, 2)"}, None),
    ("masked-fill", "x.masked_fill(m, -1.0)", {"x": "randn(3, 4)", "m": "mask(3, 4)"}, None),
    ("empty-is-zeros", "torch.empty(2, 3).shape", {}, None),
    ("div-floor", "torch.div(a, b, rounding_mode='floor')", {"a": "randn(5)", "b": "pos(5)"}, None),
    ("div-trunc-int", "torch.div(a, b, rounding_mode='trunc')", {"a": "itensor([-7, 7, -3, 5])", "b": "itensor([2, -2, 2, 3])"}, None),
    ("int-true-division", "a / b", {"a": "itensor([7, -3])", "b": "itensor([2, 2])"}, None),
    ("floor-divide-int", "a // b", {"a": "itensor([7, -3])", "b": "itensor([2, 2])"}, None),
    ("tensor-int-literal-int64", "torch.tensor([1, 2, 3])", {}, "mx.array([1, 2, 3])"),
    ("arange-int64", "torch.arange(5)", {}, "mx.arange(5)"),
    ("cross-entropy-mean", "F.cross_entropy(x, t)", {"x": "randn(4, 5)", "t": "randint(0, 5, (4,))"}, None),
    ("meshgrid-ij", "torch.meshgrid(a, b, indexing='ij')", {"a": "randn(2)", "b": "randn(3)"}, None),
    ("topk-sorted-with-indices", "torch.topk(x, 2)", {"x": "randn(6)"}, "mx.topk(x, 2)"),
    ("chunk-uneven", "torch.chunk(x, 4)", {"x": "randn(6)"}, "mx.split(x, 4)"),
    # float64 converts (an info note: MLX float64 runs on the CPU stream only), never to float32
    ("float64-kept", "torch.zeros(2, dtype=torch.float64)", {}, "mx.float32"),
    ("double-method", "x.double()", {"x": "randn(3)"}, "mx.float32"),
]

FLAGGED = [
    ("bool-mask-indexing", "x[x > 0]", {"x": "randn(5)"}),
    ("complex128", "torch.zeros(2, dtype=torch.complex128)", {}),
    ("nonzero", "torch.nonzero(x)", {"x": "randn(3)"}),
]


@pytest.mark.parametrize("torch_code,inputs,naive", [pytest.param(*t[1:], id=t[0]) for t in TRAPS])
def test_trap_translated_right(torch_code, inputs, naive):
    values = make_inputs(inputs)
    source = example_source(torch_code, values)
    result = convert_source(source)
    assert not [d for d in result.diagnostics if d.severity.value != "info"], [d.format() for d in result.diagnostics]
    body = function_body(result.code)
    if naive:
        assert naive not in body, body
    expected = to_numpy(run_function(source, values, "torch"))
    actual = to_numpy(run_function(result.code, values, "mlx"))
    assert compare(expected, actual) is None, (compare(expected, actual), body)


@pytest.mark.parametrize("torch_code,inputs", [pytest.param(*t[1:], id=t[0]) for t in FLAGGED])
def test_trap_flagged(torch_code, inputs):
    values = make_inputs(inputs)
    result = convert_source(example_source(torch_code, values))
    assert [d for d in result.diagnostics if d.severity.value == "warning"]
    assert "# torch2mlx:" in result.code
