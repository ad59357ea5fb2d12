"""binding.py, the one binder: torch rule signatures, signatures a transform reads calls with, and the
value analysis' `ast` calls all bind arguments by the same rules (star arguments, duplicates, unknown
keywords, missing required ones)."""
import ast

import libcst as cst
import pytest

from torch2mlx.binding import Flag, argument_code, bind, bind_ast, code_of, signature_of, try_bind
from torch2mlx.table.model import Signature


def _args(call: str):
    return cst.parse_expression(call).args


def _codes(bound) -> dict:
    return {k: [code_of(x) for x in v] if isinstance(v, list) else code_of(v) for k, v in bound.values.items()}


def test_a_rule_signature_binds_positional_keyword_varargs_and_the_receiver():
    sig = Signature.parse("input, *size, dim=None, keepdim=False")
    assert _codes(bind(_args("f(2, 3, keepdims=True)"), sig, cst.Name("x"))) == {
        "input": "x", "size": ["2", "3"], "keepdim": "True"}  # numpy's keepdims is torch's keepdim


@pytest.mark.parametrize("call, message", [
    ("f(*a)", "cannot bind a *-argument"),
    ("f(**k)", "cannot bind a **-argument"),
    ("f(1, 2, 3)", "too many positional arguments for (a, b=1)"),
    ("f(1, c=2)", "unknown argument 'c' for (a, b=1)"),
    ("f(1, a=2)", "argument 'a' given twice"),
    ("f(b=2)", "missing required argument 'a'"),
])
def test_what_does_not_bind_is_flagged_with_why(call, message):
    with pytest.raises(Flag, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        bind(_args(call), Signature.parse("a, b=1"))
    assert try_bind(_args(call), Signature.parse("a, b=1")) is None


def test_signature_of_names_python_keywords_and_keyword_only_parameters():
    sig = signature_of(("from", "to"), ("persistent",), {"from": "0.0"}, optional=False)
    assert sig.text == "from=0.0, to, *, persistent"
    assert [(p.name, p.default, p.kind) for p in sig.params] == [
        ("from", "0.0", "positional"), ("to", None, "positional"), ("persistent", None, "keyword")]
    optional = signature_of(("data",), ("persistent",), optional=True)
    assert [p.default for p in optional.params] == ["None", "None"]
    with pytest.raises(Flag, match="too many positional"):
        bind(_args("Buffer(t, False)"), optional)  # persistent is keyword-only, as in nn.Buffer
    assert _codes(bind(_args("Buffer(t, persistent=False)"), optional)) == {"data": "t", "persistent": "False"}


def test_argument_code_fills_defaults_and_refuses_what_bind_flags():
    sig = signature_of(("t", "mean", "std"), defaults={"mean": "0.0", "std": "1.0"})
    assert argument_code(_args("normal_(w, std=0.02)"), sig) == {"t": "w", "mean": "0.0", "std": "0.02"}
    assert argument_code(_args("normal_(w, generator=g)"), sig) is None
    assert argument_code(_args("normal_(std=0.02)"), sig) is None  # the tensor is required


def test_keyword_aliases_are_torch_s_only():
    """`axis=` stands for torch's `dim` in a rule signature; a Python function's parameters are its own."""
    sig = signature_of(("x", "dim"), optional=True)
    assert _codes(bind(_args("f(a, axis=1)"), sig)) == {"x": "a", "dim": "1"}
    call = ast.parse("f(a, axis=1)").body[0].value
    assert bind_ast(call, sig) is None  # unknown keyword
    bound = bind_ast(call, sig, other_keywords=True)  # f(x, dim=None, **kwargs): axis goes to kwargs
    assert set(bound.values) == {"x"} and isinstance(bound.values["x"], ast.Name)


@pytest.mark.parametrize("call", ["f(*a)", "f(**k)", "f(1, 2, 3)", "f(1, x=2)"])
def test_an_ast_call_python_would_not_bind_so_is_none(call):
    assert bind_ast(ast.parse(call).body[0].value, signature_of(("x", "y"), optional=True), other_keywords=True) is None
