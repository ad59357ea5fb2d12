"""A fixed sample of torch's own docstring examples, converted and run under MLX, must not be WRONG
or CRASH (bench/docstring_suite.py runs them all; docs/docstrings.md). The sample is examples that
passed or were flagged when it was chosen, drawn from torch, torch.Tensor, torch.nn.functional,
torch.linalg, torch.fft and torch.special. A FLAGGED example that starts to convert must then be
right: passing, or flagged, is fine; wrong or crashing is not.

Docstrings change between torch versions: a name the installed torch no longer documents with an
example is skipped, but most of the sample must be there.
"""
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("mlx.core")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import docstring_support as ds

SAMPLE = (
    # PASS when chosen
    "torch.add", "torch.addcmul", "torch.amax", "torch.argmax", "torch.argsort", "torch.atleast_2d", "torch.bitwise_xor",
    "torch.bmm", "torch.cat", "torch.clamp", "torch.cosine_similarity", "torch.cumsum", "torch.diag", "torch.diff",
    "torch.div", "torch.eye", "torch.flip", "torch.floor_divide", "torch.gather", "torch.index_select", "torch.isclose",
    "torch.linspace", "torch.logcumsumexp", "torch.max", "torch.median", "torch.mm", "torch.nan_to_num", "torch.outer",
    "torch.pixel_shuffle", "torch.prod", "torch.rand", "torch.randint", "torch.randn", "torch.randperm", "torch.remainder",
    "torch.roll", "torch.round", "torch.split", "torch.std_mean", "torch.sum", "torch.take_along_dim", "torch.topk",
    "torch.tril", "torch.unflatten", "torch.var", "torch.where",
    "torch.Tensor.expand", "torch.Tensor.item", "torch.Tensor.new_ones", "torch.Tensor.repeat", "torch.Tensor.size",
    "torch.Tensor.tolist", "torch.linalg.vector_norm", "torch.special.erf", "torch.special.erfinv", "torch.special.expit",
    # FLAGGED when chosen
    "torch.acosh", "torch.aminmax", "torch.cholesky", "torch.Tensor.scatter_", "torch.nn.functional.pad",
    "torch.nn.functional.one_hot", "torch.fft.fft", "torch.fft.fftshift", "torch.linalg.svd", "torch.linalg.det",
    "torch.special.logit", "torch.special.zeta",
)


@pytest.fixture(scope="module")
def corpus():
    return ds.extract_examples()


def _by_name(corpus):
    index = {}
    for ex in corpus:
        for name in [ex.name, *ex.aliases]:
            index.setdefault(name, ex)
    return index


SYNTHETIC = {
    "synthetic.add": "import torch\na = torch.tensor([1.0, 2.0, 3.0])\ntorch.add(a, 1)\n",
    "synthetic.wrong": "import torch\na = torch.tensor([1.0, 2.0, 3.0])\ntorch.add(a, 1)\n",
    "synthetic.abort": "import torch\na = torch.tensor([1.0, 2.0, 3.0])\ntorch.add(a, 1)\n",
    "synthetic.random": "import torch\nx = torch.randn(2, 3)\nx\ntorch.rand(4).sum()\ntorch.randint(0, 10, (5,))\n",
    "synthetic.desync": "import torch\nx = torch.randn(3)\nx\n",
    "synthetic.int64": "import torch\ntorch.tensor([3, 1, 2], dtype=torch.int64).argmax()\n",
    "synthetic.inplace": "import torch\nx = torch.zeros(3)\nx.add_(2)\ny = x * 2\n",
    "synthetic.tolerance": "import torch\na = torch.tensor([1.0, 2.0])\ntorch.allclose(a, a + 1e-6, rtol=0, atol=0)\n",
    "synthetic.tolerance_wrong": "import torch\na = torch.tensor([1.0, 2.0])\ntorch.allclose(a, a + 1e-6, rtol=0, atol=0)\n",
    # float32 rounds 1e8 + 1.5 to 1e8: torch's float32 result [0, 0] is off its float64 one [1.5, 3] by 3
    "synthetic.rounding": "import torch\na = torch.tensor([1e8, 1e8])\nb = (a + torch.tensor([1.5, 3.0])) - a\n",
    "synthetic.rounding_wrong": "import torch\na = torch.tensor([1e8, 1e8])\nb = (a + torch.tensor([1.5, 3.0])) - a\n",
}
CODE_FOR = {  # MLX programs used instead of converting: a wrong one, an aborting one, misaligned draws, int32
    "synthetic.wrong": "import mlx.core as mx\na = mx.array([1.0, 2.0, 3.0])\n_out0 = mx.add(a, 2)\n",
    "synthetic.abort": "import os\nimport mlx.core as mx\n_out0 = mx.array([1.0])\nos.abort()\n",
    "synthetic.desync": "import mlx.core as mx\nx = mx.random.normal((4,))\n_out0 = x\n",
    "synthetic.int64": "import mlx.core as mx\n_out0 = mx.argmax(mx.array([3, 1, 2]))\n",
    # the tolerance check flips at rounding (values agree), and flips with a wrong value
    "synthetic.tolerance": "import mlx.core as mx\na = mx.array([1.0, 2.0])\n_out0 = mx.allclose(a, a).item()\n",
    "synthetic.tolerance_wrong": "import mlx.core as mx\na = mx.array([1.0, 3.0])\n_out0 = mx.allclose(a, a).item()\n",
    # within twice torch float32's own error against its float64 result, and far outside it
    "synthetic.rounding": "import mlx.core as mx\na = mx.array([1e8, 1e8])\nb = mx.array([1.5, 5.0])\n",
    "synthetic.rounding_wrong": "import mlx.core as mx\na = mx.array([1e8, 1e8])\nb = mx.array([1.5, 30.0])\n",
}


@pytest.fixture(scope="module")
def outcomes(corpus):
    """One suite run (worker start-up is the slow part) for the sample and the synthetic examples."""
    index = _by_name(corpus)
    found = [index[name] for name in SAMPLE if name in index]
    found = list({id(ex): ex for ex in found}.values())
    synthetic = [ds.Example(name, src) for name, src in SYNTHETIC.items()]
    results = ds.run_suite(found + synthetic, jobs=2, code_for=CODE_FOR)
    return {o.name: o for o in results}


def test_most_of_the_sample_is_still_documented(corpus):
    index = _by_name(corpus)
    missing = [name for name in SAMPLE if name not in index]
    assert len(missing) <= len(SAMPLE) // 4, f"the sample is mostly gone from this torch's docstrings: {missing}"


def test_sample_is_never_wrong_or_crashing(outcomes):
    sample = [o for name, o in outcomes.items() if not name.startswith("synthetic.")]
    bad = [o for o in sample if o.cls in ds.FAILING]
    report = "\n\n".join(f"{o.name}: {o.cls}: {o.reason}\n--- converted:\n{o.code}" for o in bad)
    assert not bad, report
    ran = [o for o in sample if o.cls not in ds.SKIPPED]
    assert len(ran) >= len(sample) * 3 // 4, {o.name: (o.cls, o.reason) for o in sample if o.cls in ds.SKIPPED}


def test_a_right_conversion_passes(outcomes):
    o = outcomes["synthetic.add"]
    assert o.cls == ds.PASS, (o.reason, o.code)
    assert o.compared == ["_out0", "a"]


def test_random_draws_are_replayed(outcomes):
    o = outcomes["synthetic.random"]
    assert o.cls == ds.PASS, (o.reason, o.code)


def test_a_wrong_conversion_is_wrong(outcomes):
    o = outcomes["synthetic.wrong"]
    assert o.cls == ds.WRONG and "_out0" in o.reason


def test_an_aborting_mlx_program_is_a_crash_and_the_run_goes_on(outcomes):
    o = outcomes["synthetic.abort"]
    assert o.cls == ds.CRASH and "SIGABRT" in o.reason


def test_misaligned_random_draws_are_not_comparable(outcomes):
    o = outcomes["synthetic.desync"]
    assert o.cls == ds.NOT_COMPARABLE, (o.cls, o.reason)


def test_int32_for_int64_is_a_dtype_difference(outcomes):
    o = outcomes["synthetic.int64"]
    assert o.cls == ds.DTYPE and "int32" in o.reason


def test_in_place_update_is_compared_through_the_variable(outcomes):
    o = outcomes["synthetic.inplace"]
    assert "x.add_(2)\n_out0 = x" in o.source
    assert o.cls in (ds.PASS, ds.FLAGGED), (o.cls, o.reason, o.code)


def test_doctest_extraction_and_instrumentation():
    doc = """Example::

        >>> a = torch.tensor([1, 2])
        >>> a
        tensor([1, 2])
        >>> for i in range(2):
        ...     print(i)
        0
        1
        >>> print(a.sum(), "done")
        tensor(3) done
        >>> b = a.clone(); b.mul_(2)
    """
    src = ds.doctest_source(doc)
    assert src == "a = torch.tensor([1, 2])\na\nfor i in range(2):\n    print(i)\nprint(a.sum(), \"done\")\nb = a.clone(); b.mul_(2)\n"
    program = ds.add_imports(src)
    assert program.startswith("import torch\n")
    inst = ds.instrument(program)
    assert "_out0 = a\n" in inst.torch_program and "_out1 = a.sum()\n" in inst.torch_program
    assert "b.mul_(2)\n_out2 = b" in inst.torch_program
    assert inst.variables == ["a", "b"]
    assert "print(a.sum()" in ds.instrument(program, bare=frozenset({"_out1"})).torch_program
    assert ds.wrap_outputs("_out0 = a, b\n") == f"_out0 = {ds.SNAP}((a, b))\n"


def test_comparison_rules():
    import numpy as np
    f32 = lambda *v: ("arr", np.array(v, np.float32), "float32")
    assert ds.compare_values(f32(1.0, 2.0), f32(1.0, 2.00001))[0] == ds.EQUAL
    assert ds.compare_values(f32(1.0, 2.0), f32(1.0, 2.1))[0] == ds.DIFFER
    i64 = ("arr", np.array([1, 2], np.int64), "int64")
    i32 = ("arr", np.array([1, 2], np.int32), "int32")
    assert ds.compare_values(i64, i32)[0] == ds.DTYPE_ONLY
    assert ds.compare_values(i64, ("arr", np.array([1, 3], np.int32), "int32"))[0] == ds.DIFFER
    assert ds.compare_values(i64, ("arr", np.array([1.0, 2.0], np.float32), "float32"))[0] == ds.DIFFER
    assert ds.compare_values(("seq", [i64, ("nc", "NoneType")]), ("seq", [i64, ("nc", "NoneType")]))[0] == ds.EQUAL
    assert ds.compare_values(("seq", [i64]), ("seq", [i64, i64]))[0] == ds.DIFFER
    assert ds.compare_values(("num", 3, "i"), ("arr", np.array(3, np.int32), "int32"))[0] == ds.DTYPE_ONLY
    assert ds.compare_values(f32(1.0, -2.0), f32(-1.0, 2.0), up_to_sign=True)[0] == ds.EQUAL
    # against torch's float64 result: within the tolerance, or no further off than twice torch float32
    ref = ("arr", np.array([1.5, 3.0]), "float64")
    assert ds.compare_values(f32(0.0, 0.0), f32(1.5, 3.0))[0] == ds.DIFFER
    assert ds.compare_values(f32(0.0, 0.0), f32(1.5, 3.0), ref=ref)[0] == ds.EQUAL
    assert ds.compare_values(f32(0.0, 0.0), f32(0.0, 6.0), ref=ref)[0] == ds.EQUAL
    assert ds.compare_values(f32(0.0, 0.0), f32(0.0, 9.5), ref=ref)[0] == ds.DIFFER
    assert ds.compare_values(f32(1.5, 3.0), f32(1.5, 3.1), ref=ref)[0] == ds.DIFFER  # torch exact: today's rule
    assert ds.compare_values(("seq", [f32(0.0, 0.0)]), ("seq", [f32(1.5, 3.0)]), ref=("seq", [ref]))[0] == ds.EQUAL
    assert ds.group_key("AttributeError", "'array' object has no attribute 'masked_scatter'") == \
        "AttributeError: 'array' object has no attribute 'masked_scatter'"
    assert ds.group_key("ValueError", "[reshape] Cannot reshape array of size 6 into shape (4, 2).") == \
        "ValueError: [reshape] Cannot reshape array of size N into shape (…)."


def test_a_tolerance_check_flipping_at_rounding_is_not_comparable(outcomes):
    o = outcomes["synthetic.tolerance"]
    assert o.cls == ds.NOT_COMPARABLE and "tolerance check" in o.reason, (o.cls, o.reason)
    o = outcomes["synthetic.tolerance_wrong"]
    assert o.cls == ds.WRONG, (o.cls, o.reason)


def test_float32_rounding_is_judged_against_torch_in_float64(outcomes):
    o = outcomes["synthetic.rounding"]
    assert o.cls == ds.PASS, (o.cls, o.reason)
    o = outcomes["synthetic.rounding_wrong"]
    assert o.cls == ds.WRONG and "b" in o.reason, (o.cls, o.reason)
