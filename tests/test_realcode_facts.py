"""Idioms of real model code (transformers' modeling files) that the value, int and shape facts settle:
each converts without a flag and gives torch's values under MLX; the variants where a fact does not
hold stay flagged."""
from __future__ import annotations

import numpy as np
import pytest

from tests.model_support import exec_source, torch_names, warnings
from torch2mlx import convert_source

HEADER = "import torch\nimport torch.nn as nn\n\n\n"

# BERT / CLIP / RoBERTa embeddings: a 1-D arange expanded to (1, -1) as a non-persistent buffer
POSITION_IDS_BUFFER = '''
class Embeddings(nn.Module):
    def __init__(self, max_positions: int):
        super().__init__()
        self.register_buffer("position_ids", torch.arange(max_positions).expand((1, -1)), persistent=False)
        self.register_buffer(
            "token_type_ids", torch.zeros(self.position_ids.size(), dtype=torch.long), persistent=False
        )

    def forward(self, input_ids):
        seq_length = input_ids.shape[1]
        position_ids = self.position_ids[:, :seq_length]
        token_type_ids = self.token_type_ids[:, :seq_length].expand(input_ids.shape[0], seq_length)
        return input_ids * 10 + position_ids + token_type_ids + torch.arange(3).expand(1, 1, -1).sum()


out = Embeddings(8)(torch.arange(12).reshape(2, 6))
'''

# DETR's mask head, ERNIE's router and M-RoPE positions: -1 sizes on receivers that are calls or subscripts
EXPAND_RECEIVERS = '''
def heads(features: torch.Tensor, num_queries: int, ids: torch.Tensor, hidden_dim: int):
    tiled = features.unsqueeze(1).expand(-1, num_queries, -1, -1).flatten(0, 1)
    router = ids.reshape(-1)[:, None].expand(-1, hidden_dim)
    states = ids[..., None].expand(-1, hidden_dim)
    positions = ids.view(1, 1, -1).expand(3, features.shape[0], -1)
    batch = torch.arange(4).expand(features.shape[0], -1)
    return tiled.sum() + router.float().sum() + states.float().mean() + positions.float().sum() + batch.sum()


out = heads(torch.arange(24.0).reshape(2, 3, 4), 5, torch.arange(6), 3)
'''

# Swin/ConvNeXt stochastic depth rates and a fused qkv projection: split sizes whose kind the source hides;
# a chunk of a computed value (MoE experts)
SPLIT_SIZES = '''
class Attention(nn.Module):
    def __init__(self, qkv_dim, depths):
        super().__init__()
        self.qkv_dim = qkv_dim
        self.rates = [x.tolist() for x in torch.linspace(0, 0.5, sum(depths)).split(depths)]

    def forward(self, qkv):
        q, k, v = qkv.split([self.qkv_dim] * 3, dim=-1)
        halves = (q * 2).split(self.qkv_dim // 2, -1)
        gate, up = (q @ k.T).chunk(2, dim=-1)  # MoE experts' fused gate/up projection
        return q + k * v + halves[0].sum() + sum(sum(r) for r in self.rates) + (gate * up).sum()


out = Attention(4, [2, 3, 1])(torch.arange(24.0).reshape(2, 12))
'''

CASES = {"position_ids_buffer": POSITION_IDS_BUFFER, "expand_receivers": EXPAND_RECEIVERS, "split_sizes": SPLIT_SIZES}


def _values(value):
    return np.array(value) if not hasattr(value, "detach") else value.detach().numpy()


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_idiom_converts_and_matches_torch(name):
    source = HEADER + CASES[name]
    result = convert_source(source)
    assert not warnings(result), "\n".join(d.format() for d in result.diagnostics)
    assert not torch_names(result.code), result.code
    assert convert_source(result.code).code == result.code  # idempotent
    mlx_out, torch_out = exec_source(result.code, "mlx_side")["out"], exec_source(source, "torch_side")["out"]
    expected = _values(torch_out)
    actual = np.array(mlx_out)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


NEGATIVE = {
    # `x is None` on a tensor is a Python bool, not a bool tensor
    "identity_test_is_a_python_bool": ("torch.sum", '''
def f(x: torch.Tensor):
    missing = x is None
    return missing.sum()
'''),
    # split_by_sizes / chunk_by_count / broadcast_expand taken by the file: the helper takes a fresh name
    # (test_workflow_helper_names.py, test_workflow_helper_clash.py)
}


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_where_a_fact_does_not_hold_the_use_stays_flagged(name):
    rule, body = NEGATIVE[name]
    result = convert_source(HEADER + body)
    assert any(d.rule_id == rule for d in warnings(result)), result.code
