"""fixtures/models/bert.py by hand: post-norm encoder layers on a packed q/k/v projection and
mx.fast.scaled_dot_product_attention with a boolean padding mask."""
import math

import mlx.core as mx
import mlx.nn as nn

from .torch_weights import port_weights


class EncoderLayer(nn.Module):
    def __init__(self, dims: int, heads: int, hidden: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.in_proj = nn.Linear(dims, 3 * dims)
        self.out_proj = nn.Linear(dims, dims)
        self.linear1 = nn.Linear(dims, hidden)
        self.linear2 = nn.Linear(hidden, dims)
        self.norm1 = nn.LayerNorm(dims)
        self.norm2 = nn.LayerNorm(dims)
        self.dropout = nn.Dropout(dropout)

    def __call__(self, x: mx.array, mask: mx.array) -> mx.array:
        B, L, D = x.shape
        q, k, v = (t.reshape(B, L, self.heads, -1).transpose(0, 2, 1, 3) for t in mx.split(self.in_proj(x), 3, axis=-1))
        a = mx.fast.scaled_dot_product_attention(q, k, v, scale=(D // self.heads) ** -0.5, mask=mask)
        x = self.norm1(x + self.dropout(self.out_proj(a.transpose(0, 2, 1, 3).reshape(B, L, D))))
        return self.norm2(x + self.dropout(self.linear2(self.dropout(nn.gelu(self.linear1(x))))))


class BertClassifier(nn.Module):
    def __init__(self, vocab_size: int, d_model: int = 32, nhead: int = 4, num_layers: int = 2,
                 dim_feedforward: int = 64, num_classes: int = 3, dropout: float = 0.1, max_len: int = 512):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.type_embed = nn.Embedding(2, d_model)
        self.layers = [EncoderLayer(d_model, nhead, dim_feedforward, dropout) for _ in range(num_layers)]
        self.norm = nn.LayerNorm(d_model, eps=1e-12)
        self.pooler = nn.Linear(d_model, d_model)
        self.classifier = nn.Linear(d_model, num_classes)
        self.scale = math.sqrt(d_model)
        position = mx.arange(max_len)[:, None]
        angles = position * mx.exp(mx.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        self._pe = mx.stack([mx.sin(angles), mx.cos(angles)], axis=-1).reshape(max_len, d_model)  # not a parameter

    def __call__(self, input_ids: mx.array, token_type_ids: mx.array, attention_mask: mx.array) -> mx.array:
        x = self.embed(input_ids) * self.scale + self.type_embed(token_type_ids) + self._pe[: input_ids.shape[1]]
        mask = (attention_mask != 0)[:, None, None, :]  # True: attend to this key
        for layer in self.layers:
            x = layer(x, mask)
        x = self.norm(x)
        return self.classifier(mx.tanh(self.pooler(x[:, 0])))

    @staticmethod
    def torch_weights(state_dict: dict) -> dict:
        return port_weights(state_dict, rename=(
            (r"^encoder\.layers\.", "layers."), (r"self_attn\.in_proj_(weight|bias)$", r"in_proj.\1"),
            (r"self_attn\.out_proj\.", "out_proj.")))
