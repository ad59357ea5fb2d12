"""fixtures/models/gpt2.py by hand: fused causal attention (mx.fast.scaled_dot_product_attention),
the output projection tied to the token embedding (Embedding.as_linear)."""
import math
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn

from .torch_weights import port_weights


@dataclass
class GPTConfig:
    block_size: int = 16
    vocab_size: int = 50
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 32
    dropout: float = 0.0
    bias: bool = True


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.scale = 1.0 / math.sqrt(config.n_embd // config.n_head)

    def __call__(self, x: mx.array) -> mx.array:
        B, T, C = x.shape
        q, k, v = (t.reshape(B, T, self.n_head, -1).transpose(0, 2, 1, 3) for t in mx.split(self.c_attn(x), 3, axis=-1))
        y = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.scale, mask="causal")
        return self.c_proj(y.transpose(0, 2, 1, 3).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)

    def __call__(self, x: mx.array) -> mx.array:
        return self.c_proj(nn.gelu_approx(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def __call__(self, x: mx.array) -> mx.array:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.h = [Block(config) for _ in range(config.n_layer)]
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)

    def __call__(self, idx: mx.array) -> mx.array:
        x = self.wte(idx) + self.wpe(mx.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        return self.wte.as_linear(self.ln_f(x))

    @staticmethod
    def torch_weights(state_dict: dict) -> dict:
        # the causal-mask buffer is not needed (mask="causal"); lm_head.weight is wte.weight (tied)
        return port_weights(state_dict, rename=((r"^transformer\.", ""),), drop=(r".*\.attn\.bias", r"lm_head\.weight"))
