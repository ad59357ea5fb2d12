"""`self.x.<attr>` is an int where every store of `self.x` builds a torch.nn layer keeping that attribute as an int
(torch_facts.LAYER_INT_ATTRIBUTES; value_facts `_layer_ints`), or a class of the file deriving from one that stores
no such attribute. transformers' Whisper encoder: `torch.arange(self.embed_positions.num_embeddings, ...)` of an
nn.Embedding subclass is int64 in torch, and was flagged (the type of the count unknown)."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from tests.model_support import warnings
from torch2mlx import convert_source
from torch2mlx.torch_facts import LAYER_INT_ATTRIBUTES

_BUILD = {
    "Embedding": "(5, 3)", "Linear": "(4, 2)", "Bilinear": "(2, 3, 4)", "GroupNorm": "(2, 4)",
    "MultiheadAttention": "(8, 2)",
    **{f"Conv{n}d": "(4, 6, 3, groups=2)" for n in (1, 2, 3)},
    **{f"ConvTranspose{n}d": "(4, 6, 3, groups=2)" for n in (1, 2, 3)},
    **{f"BatchNorm{n}d": "(4)" for n in (1, 2, 3)},
}


@pytest.mark.parametrize("layer", sorted(LAYER_INT_ATTRIBUTES))
def test_layer_int_attributes_are_ints_in_torch(layer):
    import torch

    built = eval(f"nn.{layer}{_BUILD[layer]}", {"nn": torch.nn})
    for attr in LAYER_INT_ATTRIBUTES[layer]:
        assert type(getattr(built, attr)) is int, (layer, attr)


SOURCE = '''
import torch
from torch import nn


class Positions(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_positions = nn.Embedding(6, 4)
        self.proj = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor):
        all_positions = torch.arange(self.embed_positions.num_embeddings, device=x.device)
        outs = torch.arange(self.proj.out_features) * 2
        return x + self.embed_positions(all_positions), all_positions, outs
'''


def test_arange_over_a_layer_count_is_int64_as_in_torch():
    import mlx.core as mx
    import torch

    result = convert_source(SOURCE)
    assert not warnings(result), result.diagnostics
    torch_ns: dict = {}
    exec(compile(SOURCE, "t.py", "exec"), torch_ns)
    mlx_ns: dict = {}
    exec(compile(result.code, "t_mlx.py", "exec"), mlx_ns)
    torch.manual_seed(0)
    ref, model = torch_ns["Positions"](), mlx_ns["Positions"]()
    model.load_weights([(k, mx.array(v.detach().numpy())) for k, v in ref.state_dict().items()])
    x = np.random.default_rng(0).standard_normal((2, 6, 4)).astype(np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x))
    actual = model(mx.array(x))
    for a, e in zip(actual, expected):
        assert a.shape == tuple(e.shape) and str(a.dtype).rsplit(".", 1)[-1] == str(e.dtype).rsplit(".", 1)[-1]
        np.testing.assert_allclose(np.array(a), e.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("init", [
    # the subclass stores its own num_embeddings: no longer the layer's int
    "class E(nn.Embedding):\n    def __init__(self, n, d):\n        super().__init__(n, d)\n        self.num_embeddings = n / 2\n",
    # a property of that name
    "class E(nn.Embedding):\n    @property\n    def num_embeddings(self):\n        return 2.5\n",
])
def test_a_subclass_keeping_its_own_attribute_is_no_layer_int(init):
    source = "import torch\nfrom torch import nn\n\n\n" + textwrap.dedent(init) + textwrap.dedent('''

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.e = E(4, 2)

            def forward(self, x: torch.Tensor):
                return torch.arange(self.e.num_embeddings)
        ''')
    result = convert_source(source)
    assert any(d.rule_id == "torch.arange" for d in warnings(result)), result.code


def test_a_layer_attribute_rebound_by_the_file_is_no_layer_int():
    source = textwrap.dedent('''
        import torch
        from torch import nn


        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.e = nn.Embedding(4, 2)
                self.e.num_embeddings = 4.5

            def forward(self, x: torch.Tensor):
                return torch.arange(self.e.num_embeddings)
        ''')
    result = convert_source(source)
    assert any(d.rule_id == "torch.arange" for d in warnings(result)), result.code


def test_an_attribute_stored_two_ways_is_no_layer_int():
    source = textwrap.dedent('''
        import torch
        from torch import nn


        class M(nn.Module):
            def __init__(self, big):
                super().__init__()
                self.e = nn.Embedding(4, 2)
                if big:
                    self.e = Other()

            def forward(self, x: torch.Tensor):
                return torch.arange(self.e.num_embeddings)
        ''')
    result = convert_source(source)
    assert any(d.rule_id == "torch.arange" for d in warnings(result)), result.code
