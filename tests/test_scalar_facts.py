"""Names known to hold Python ints (torch2mlx/scalar_facts.py): `torch.arange(n)` & co get torch's int64
exactly where every binding of `n` is an int, and stay flagged where one binding may not be."""
from __future__ import annotations

import ast
import textwrap

import numpy as np
import pytest

from tests.model_support import warnings
from torch2mlx import convert_source
from torch2mlx.scalar_facts import int_names, tuple_names

FUNCTION = '''
def f(h: int, w, x, n: int = 3):
    b, c, hh, ww = x.shape
    k = len(x) + 1
    m = k // 2
    z = m * 1.5
    for i in range(5):
        pass
    for j in x:
        pass
    q = 0
    q += 1
    r = 0
    r += 0.5
    s = x.size(1)
    t = w
    u = n if h else 2
    v = n
    v = v * 2
    y = x.item()
    p = 2
    p = p / 2
    g = [a for a in range(3)]
    a = 1
    lam = lambda e: e
    e = 4
'''


def test_int_names_of_a_function():
    ints, _ = int_names(ast.parse(FUNCTION).body[0])
    # `a` and `e` are also a comprehension target and a lambda parameter in this scope: unknown
    assert sorted(ints) == ["b", "c", "h", "hh", "i", "k", "m", "n", "q", "s", "u", "v", "ww"]


def test_a_builtin_bound_to_something_else_is_not_trusted():
    tree = ast.parse("from numpy import round\ndef f(x):\n    n = round(x)\n    k = len(x)\n")
    _, shadowed = int_names(tree)
    ints, _ = int_names(tree.body[1], shadowed)
    assert ints == {"k"}


HEADER = "import torch\n\n\n"
CASES = {
    "shape_unpacked": ("def f(x: torch.Tensor):\n    b, n = x.shape\n    return torch.arange(n) + b\n", "x"),
    "annotated_int": ("def f(x: torch.Tensor, n: int):\n    return torch.arange(n)\n", "x, 4"),
    "loop_over_range": ("def f(x: torch.Tensor):\n    out = []\n    for i in range(1, 3):\n"
                        "        out.append(torch.full((2,), i))\n    return torch.stack(out)\n", "x"),
    "size_arithmetic": ("def f(x: torch.Tensor):\n    h = x.size(1) // 2\n    return torch.tensor([h, h + 1])\n", "x"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_int_names_give_torchs_int64(name):
    import mlx.core as mx
    import torch

    body, call = CASES[name]
    mlx_out, torch_out = _out_of_both(HEADER + body + f"\n\nx = torch.ones(2, 3)\nout = f({call})\n")
    assert mlx_out.dtype == mx.int64 and torch_out.dtype == torch.int64
    np.testing.assert_array_equal(np.array(mlx_out), torch_out.numpy())


def _out_of_both(source: str) -> tuple:
    """`out` of the converted program under MLX and of `source` under torch (the conversion must not warn)."""
    result = convert_source(source)
    assert not warnings(result), result.diagnostics
    mlx_namespace: dict = {}
    exec(compile(result.code, "<mlx>", "exec"), mlx_namespace)
    torch_namespace: dict = {}
    exec(compile(source, "<torch>", "exec"), torch_namespace)
    return mlx_namespace["out"], torch_namespace["out"]


@pytest.mark.parametrize("body", [
    # one binding may be a float: torch gives float32 there, so no dtype may be guessed
    "def f(x, c):\n    n = 3\n    if c:\n        n = 2.5\n    return torch.arange(n)\n",
    "def f(x, n):\n    return torch.arange(n)\n",                       # a parameter of any type
    "def f(xs):\n    return [torch.arange(n) for n in xs]\n",           # a comprehension's own `n`
    "def f(x):\n    n = x.item()\n    return torch.arange(n)\n",
])
def test_a_name_not_always_an_int_stays_flagged(body):
    result = convert_source(HEADER + textwrap.dedent(body))
    assert any(d.rule_id == "torch.arange" for d in warnings(result)), result.code


def test_a_flag_inside_a_list_the_translation_unpacks_is_kept():
    """`torch.meshgrid([a, b])` becomes `mx.meshgrid(a, b)`: the list is gone, its elements are not, so a flag
    on an element stays (it used to be dropped with the list, leaving torch code under no flag of its own)."""
    source = HEADER + "def f(h, w):\n    return torch.meshgrid([torch.arange(h), torch.arange(w)], indexing='ij')\n"
    result = convert_source(source)
    assert [d.rule_id for d in warnings(result)] == ["torch.arange", "torch.arange"]
    assert "torch-reference" not in result.code


@pytest.mark.parametrize("expr", ["torch.tensor([1, -3, 5, torch.nan])", "torch.full((2,), math.pi)",
                                  "torch.tensor([[0, torch.inf], [2, 3]])"])
def test_float_constants_make_a_literal_float(expr):
    import mlx.core as mx
    import torch

    mlx_out, torch_out = _out_of_both("import math\n\nimport torch\n\nout = " + expr + "\n")
    assert mlx_out.dtype == mx.float32 and torch_out.dtype == torch.float32
    np.testing.assert_array_equal(np.array(mlx_out), torch_out.numpy())


TUPLES = '''
def f(x, n: int, k):
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    a = x.shape[1:]
    b = a + (n,)
    c = (1,) * n if k else x.size()
    d = (1,)
    d = d + (2,)
    e = (1,)
    e = k
    g = (1,) * k
    h = (1, 2)
    h += (3,)
    for t in [(1,)]:
        pass
'''


def test_tuple_names_of_a_function():
    # e: once any value; g: a tuple times a value of unknown type; h: augmented; t: a loop target
    assert sorted(tuple_names(ast.parse(TUPLES).body[0])) == ["a", "b", "c", "d", "shape"]


def test_a_tuple_builtin_bound_to_something_else_is_not_trusted():
    tree = ast.parse("def tuple(v):\n    return 3\n\ndef f(x):\n    s = tuple(x)\n")
    _, shadowed = int_names(tree)
    assert tuple_names(tree.body[1], shadowed) == frozenset()
    assert tuple_names(tree.body[1]) == {"s"}


def test_a_tuple_name_is_a_shape_for_random_functions():
    """transformers' and timm's drop_path: `shape` is a tuple at every binding, so torch.rand(shape) is a shape
    (it was flagged: one int or a shape?). Random draws differ between the frameworks: shapes and the values
    drop_path can give (0 or x / keep_prob per sample) are compared."""
    source = HEADER + textwrap.dedent('''
        def drop_path(input: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
            if drop_prob == 0.0 or not training:
                return input
            keep_prob = 1 - drop_prob
            shape = (input.shape[0],) + (1,) * (input.ndim - 1)
            random_tensor = keep_prob + torch.rand(shape, dtype=input.dtype, device=input.device)
            random_tensor.floor_()
            return input.div(keep_prob) * random_tensor


        x = torch.arange(1.0, 25.0).reshape(4, 3, 2)
        out = drop_path(x, 0.5, True)
        ''')
    mlx_out, torch_out = _out_of_both(source)
    assert mlx_out.shape == tuple(torch_out.shape) == (4, 3, 2)
    x = np.arange(1.0, 25.0, dtype=np.float32).reshape(4, 3, 2)
    for sample, given in zip(x, np.array(mlx_out)):
        assert np.array_equal(given, 0 * sample) or np.allclose(given, sample / 0.5)


@pytest.mark.parametrize("body", [
    "def f(x, c):\n    s = (2,)\n    if c:\n        s = c\n    return torch.rand(s)\n",   # one binding of any type
    "def f(x, c):\n    s = x.shape[0] if c else x.shape\n    return torch.rand(s)\n",     # an int or a shape
])
def test_a_name_not_always_a_tuple_stays_flagged(body):
    result = convert_source(HEADER + textwrap.dedent(body))
    assert any(d.rule_id == "torch.rand" for d in warnings(result)), result.code
