"""Named-tuple field reads on a translated call (`torch.max(x, 1).values`, `torch.sort(x).indices`,
`torch.linalg.slogdet(A).logabsdet`): MLX returns a plain tuple in the order of the rule's `namedtuple` fields (the
order unpacking relies on too), so the field is that item: the tuple's element where the translation is a tuple
display, else an index (`mx.linalg.slogdet(A, stream=mx.cpu)[1]`). Checked against torch."""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import numpy as np

from torch2mlx import convert_source

SOURCE = textwrap.dedent("""
    import torch

    x = torch.tensor([[1.0, 5.0, 2.0], [4.0, 0.5, 3.0]])
    a = torch.max(x, 1).values
    b = torch.max(x, 1).indices
    c = torch.sort(x).values
    d = x.sort(dim=0).indices
    e = torch.topk(x, 2).values
    f = x.min(dim=1).values
    g = torch.median(x, 1).indices
""")


def _run(code: str, framework: str, names) -> list:
    ns: dict = {}
    exec(compile(code, f"{framework}.py", "exec"), ns)  # noqa: S102 - the test's own program
    return [np.asarray(ns[n]) if framework == "torch" else np.array(ns[n]) for n in names]


def _same(source: str, code: str, names) -> None:
    for name, e, a in zip(names, _run(source, "torch", names), _run(code, "mlx", names)):
        assert e.shape == a.shape and e.dtype.kind == a.dtype.kind, name
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5, err_msg=name)


def test_fields_of_a_translation_written_as_a_tuple_are_its_elements():
    result = convert_source(SOURCE, "fields.py")
    ast.parse(result.code)
    assert not [d for d in result.diagnostics if d.severity.value != "info"], result.code
    assert ".values" not in result.code and ".indices" not in result.code
    assert "a = mx.max(x, axis=1)\n" in result.code
    assert convert_source(result.code, "fields.py").code == result.code
    _same(SOURCE, result.code, "abcdefg")


def test_fields_of_a_call_returning_a_tuple_are_indexed(tmp_path: Path):
    # a rule whose translation is one MLX call returning the tuple (no handler of its own)
    rules = tmp_path / "slogdet.yaml"
    rules.write_text(textwrap.dedent("""
        description: test
        rules:
          - id: torch.linalg.slogdet
            function: [torch.linalg.slogdet, torch.slogdet]
            signature: "A, *, out=None"
            mlx: "mx.linalg.slogdet({A}, stream=mx.cpu)"
            status: exact
            namedtuple: [sign, logabsdet]
            examples:
              - {torch: "torch.linalg.slogdet(a)[1]", mlx: "mx.linalg.slogdet(a, stream=mx.cpu)[1]", inputs: {a: "randn(2, 3, 3)"}}
    """))
    source = textwrap.dedent("""
        import torch

        a = torch.tensor([[2.0, 1.0], [1.0, 3.0]])
        s = torch.linalg.slogdet(a).logabsdet
        t = torch.slogdet(a - 4).sign
    """)
    result = convert_source(source, "fields.py", rule_files=[rules])
    assert not result.diagnostics, result.code
    assert "s = mx.linalg.slogdet(a, stream=mx.cpu)[1]\n" in result.code
    assert "t = mx.linalg.slogdet(a - 4, stream=mx.cpu)[0]\n" in result.code
    assert convert_source(result.code, "fields.py", rule_files=[rules]).code == result.code
    _same(source, result.code, "st")


HANDLED = textwrap.dedent("""
    import torch

    m = torch.tensor([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]])
    v = torch.tensor([[3.0, 1.0, 3.0, 2.0], [1.0, 1.0, 0.0, 0.0]])
    a = torch.linalg.eigh(m).eigenvalues
    b = torch.linalg.slogdet(m).logabsdet
    c = torch.cummax(v, 1).indices
    d = torch.svd(m).S
    e = torch.mode(v, 1).values
    f = torch.frexp(v).exponent
    g = torch.linalg.lu_factor(m).pivots
""")


def test_fields_of_translations_by_handlers_and_local_helpers_are_read():
    # the handlers used to flag such a read before the rewriter could index it
    result = convert_source(HANDLED, "handled.py")
    ast.parse(result.code)
    assert not [d for d in result.diagnostics if d.severity.value != "info"], result.code
    assert convert_source(result.code, "handled.py").code == result.code
    _same(HANDLED, result.code, "abcdefg")
