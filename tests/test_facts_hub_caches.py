"""Key/value caches of the transformers hub (value_facts `_cache_names`): `key, value = layer_past.update(key, value,
self.layer_idx)` on a parameter annotated `Cache | None` gives tensors (the stand-in returns them, or them after the
cached ones), so the attention helper they are passed to knows its parameters (transformers' gptj `_attn`,
imagegpt, falcon), and so are `cache.layers[i].keys` / `.values` (gpt2's cross-attention); a subclass's forward
reads the layers its base built (GPTJFlashAttention2's `self.q_proj`)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.model_support import warnings
from torch2mlx import convert_source

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")
pytest.importorskip("transformers")

SOURCE = '''
import torch
from torch import nn
from transformers.cache_utils import Cache, DynamicCache


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(4, 4)
        self.k_proj = nn.Linear(4, 4)
        self.layer_idx = 0

    def _attn(self, query, key):
        key = key.to(torch.float32)
        return torch.matmul(query, key.transpose(-1, -2))

    def forward(self, hidden_states: torch.Tensor, layer_past: Cache | None = None):
        query = self.q_proj(hidden_states)
        key = self.k_proj(hidden_states)
        if layer_past is not None:
            key, query = layer_past.update(key, query, self.layer_idx)
        return self._attn(query, key)


class Reader(Attention):
    def forward(self, hidden_states: torch.Tensor, layer_past: Cache | None = None):
        cache = layer_past if hidden_states is not None else None
        key = cache.layers[self.layer_idx].keys
        value = cache.layers[self.layer_idx].values
        return self._attn(value, key)


class FlashAttention(Attention):
    def forward(self, hidden_states: torch.Tensor, layer_past: Cache | None = None):
        query = self.q_proj(hidden_states)
        return self._attn(query, self.k_proj(hidden_states).transpose(0, 1).transpose(0, 1))
'''


def _load(model, ref):
    for name in ("q_proj", "k_proj"):
        layer, torch_layer = getattr(model, name), getattr(ref, name)
        layer.weight = mx.array(torch_layer.weight.detach().numpy())
        layer.bias = mx.array(torch_layer.bias.detach().numpy())


def test_cache_update_and_inherited_layers_under_torch_and_mlx():
    result = convert_source(SOURCE, "modeling_t.py", hub=("transformers",))
    assert not warnings(result), result.diagnostics
    assert "key.astype(mx.float32)" in result.code and "mx.swapaxes(key, -1, -2)" in result.code
    torch_ns: dict = {}
    exec(compile(SOURCE, "modeling_t.py", "exec"), torch_ns)
    mlx_ns: dict = {}
    exec(compile(result.code, "modeling_t_mlx.py", "exec"), mlx_ns)
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    torch.manual_seed(0)
    for cls in ("Attention", "FlashAttention"):
        ref = torch_ns[cls]().eval()
        model = mlx_ns[cls]()
        _load(model, ref)
        torch_cache, mlx_cache = torch_ns["DynamicCache"](), mlx_ns["DynamicCache"]()
        for _ in range(2):  # the second call reads what the first one cached
            with torch.no_grad():
                expected = ref(torch.from_numpy(x), torch_cache).numpy()
            actual = np.array(model(mx.array(x), mlx_cache))
            assert actual.shape == expected.shape and actual.dtype == expected.dtype
            np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)
        if cls == "Attention":  # gpt2's cross-attention reads the cached keys and values back: `cache.layers[i].keys`
            reader_ref, reader = torch_ns["Reader"]().eval(), mlx_ns["Reader"]()
            with torch.no_grad():
                expected = reader_ref(torch.from_numpy(x), torch_cache).numpy()
            actual = np.array(reader(mx.array(x), mlx_cache))
            assert actual.shape == expected.shape == (2, 6, 6)
            np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("binding", [
    "layer_past = make_cache()",                       # a value the analysis does not know
    "for layer_past in caches:\n            pass",
])
def test_a_name_not_always_a_cache_gives_no_tensors(binding):
    source = SOURCE.replace("        query = self.q_proj(hidden_states)\n        key = self.k_proj(hidden_states)\n",
                            "        query = self.q_proj(hidden_states)\n        key = self.k_proj(hidden_states)\n"
                            f"        {binding}\n", 1)
    result = convert_source(source, "modeling_t.py", hub=("transformers",))
    assert any("not known to be a tensor" in d.message for d in warnings(result)), result.code


def test_without_the_hub_the_cache_is_transformers_own():
    result = convert_source(SOURCE, "modeling_t.py")
    assert any("not known to be a tensor" in d.message for d in warnings(result)), result.code
