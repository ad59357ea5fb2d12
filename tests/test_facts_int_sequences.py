"""Elements of sequences of ints (scalar_facts `n[]` entries): `torch.arange(window_size[0])` with `window_size`
a parameter annotated `list[int]` / `tuple[int, int]` (torchvision's swin_transformer.py:274 through
`self.window_size`, transformers' beit `generate_relative_position_index(window_size: tuple[int, int])`) is
torch's int64, and stays flagged where an element may be something else."""
from __future__ import annotations

import ast
import textwrap

import numpy as np
import pytest

from tests.model_support import warnings
from torch2mlx import convert_source
from torch2mlx.scalar_facts import int_names

HEADER = "import torch\nfrom torch import nn\n\n\n"

SWIN = '''
class ShiftedWindowAttention(nn.Module):
    def __init__(self, dim: int, window_size: list[int]):
        super().__init__()
        self.window_size = window_size
        self.dim = dim

    def forward(self, x):
        coords_h = torch.arange(self.window_size[0])
        coords_w = torch.arange(self.window_size[1])
        return x + torch.stack(torch.meshgrid(coords_h, coords_w, indexing="ij")).sum()


def index(window_size: tuple[int, int]):
    return torch.arange(window_size[0]) * window_size[1]


out = (ShiftedWindowAttention(4, [2, 3])(torch.ones(2, 3, dtype=torch.int64)), index((3, 4)))
'''


def _out_of_both(source: str):
    result = convert_source(source)
    assert not warnings(result), result.diagnostics
    mlx_namespace: dict = {}
    exec(compile(result.code, "<mlx>", "exec"), mlx_namespace)
    torch_namespace: dict = {}
    exec(compile(source, "<torch>", "exec"), torch_namespace)
    return mlx_namespace["out"], torch_namespace["out"]


def test_elements_of_int_sequences_give_torchs_int64():
    import mlx.core as mx
    import torch

    mlx_out, torch_out = _out_of_both(HEADER + SWIN)
    for m, t in zip(mlx_out, torch_out):
        assert m.dtype == mx.int64 and t.dtype == torch.int64
        assert tuple(m.shape) == tuple(t.shape)
        np.testing.assert_array_equal(np.array(m), t.numpy())


@pytest.mark.parametrize("body", [
    "def f(ws: list[int]):\n    ws[0] = 2.5\n    return torch.arange(ws[0])\n",             # stored into
    "def f(ws: list[int]):\n    ws.append(2.5)\n    return torch.arange(ws[-1])\n",           # changed by a method
    "def f(ws: list[float]):\n    return torch.arange(ws[0])\n",                              # not ints
    "def f(ws: tuple[int, float]):\n    return torch.arange(ws[1])\n",
    "def f(ws: list[int], c):\n    if c:\n        ws = [0.5]\n    return torch.arange(ws[0])\n",  # rebound
    "def f(ws: list[int]):\n    return torch.arange(ws[0:1][0])\n",                           # a slice, then?
    "def f(ws):\n    return torch.arange(ws[0])\n",
])
def test_an_element_not_known_to_be_an_int_stays_flagged(body):
    result = convert_source(HEADER + textwrap.dedent(body))
    assert any(d.rule_id == "torch.arange" for d in warnings(result)), result.code


@pytest.mark.parametrize("store", ["self.window_size[0] = 0.5", "self.window_size.append(0.5)",
                                   "self.window_size = [0.5]", "other.window_size = [0.5]"])
def test_an_attribute_changed_anywhere_stays_flagged(store):
    source = HEADER + textwrap.dedent(f'''
        class A(nn.Module):
            def __init__(self, window_size: list[int], other):
                super().__init__()
                self.window_size = window_size
                {store}

            def forward(self, x):
                return x + torch.arange(self.window_size[0])
        ''')
    result = convert_source(source)
    assert any(d.rule_id == "torch.arange" for d in warnings(result)), result.code


def test_int_sequence_entries():
    tree = ast.parse(textwrap.dedent('''
        def f(a: tuple[int, ...], b: list[int] | None, c: "list[int]", d: tuple[int, int], e: dict[int, int], n: int):
            g = (n, 2)
            h = (n, 2.5)
            k = (1,)
            k = (n,)
        '''))
    ints, _ = int_names(tree.body[0])
    assert sorted(i for i in ints if i.endswith("[]")) == ["a[]", "b[]", "d[]", "g[]", "k[]"]
