"""nn.MultiheadAttention, the transformer encoder and decoder layers and stacks, nn.Transformer: local classes.

**What it does**: the constructor keeps its name and arguments (`nn.MultiheadAttention(64, 4,
batch_first=True)` becomes `MultiheadAttention(64, 4, batch_first=True)`) and the local classes
(plain MLX, about 90 lines) are added after the imports, once per file.

**Why not mlx.nn.MultiHeadAttention / TransformerEncoderLayer**: MLX's attention has separate
q/k/v projections without bias by default, is batch-first, takes an additive mask only and
returns no weights; MLX's encoder layer is pre-norm by default and names its members
differently. The local classes follow torch: packed `in_proj_weight`/`in_proj_bias`, `out_proj`,
`batch_first`, boolean or float `attn_mask` and `key_padding_mask`, `need_weights` and
`average_attn_weights`; post-norm (`norm_first=False`) or pre-norm layers with torch's member
names (`self_attn`, `linear1`, `norm1`, ...), so torch state_dicts load unchanged.

`nn.TransformerDecoderLayer`, `nn.TransformerDecoder` and `nn.Transformer` come as a second block
(written only when used) with torch's member names (`multihead_attn`, `norm3`, `encoder.layers.0`,
...) and `Transformer.generate_square_subsequent_mask`. torch's `nn.Transformer` re-initialises
its matrices with xavier_uniform_; the local one keeps each layer's own init (load the weights).

**Differences left**: torch's TransformerEncoder fast path (eval mode with
`src_key_padding_mask`, `enable_nested_tensor=True`) returns zeros at padded positions; the
local class computes them like any other position (the unpadded positions agree, and so does an
nn.Transformer's output when the decoder masks those memory positions, as it normally does).

**Left in place when**: `add_bias_kv`, `add_zero_attn`, `kdim`/`vdim`, `dtype=` are given. A class
name the file uses already (its own `TransformerEncoderLayer`) is given to the local class as a fresh
one (`TransformerEncoderLayer_1`), written wherever the converted code uses it.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Flag
from torch2mlx.handlers import register
from torch2mlx.patterns import is_name
from torch2mlx.transforms.codegen import mlx_statements

LOCAL_ATTENTION = '''
class MultiheadAttention(nn.Module):
    """PyTorch-style multi-head attention on MLX: packed in_proj, batch_first, masks, attention weights."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False):
        super().__init__()
        self.embed_dim, self.num_heads, self.batch_first = embed_dim, num_heads, batch_first
        bound = (6.0 / (4 * embed_dim)) ** 0.5
        self.in_proj_weight = mx.random.uniform(-bound, bound, (3 * embed_dim, embed_dim))
        if bias:
            self.in_proj_bias = mx.zeros((3 * embed_dim,))
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def __call__(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                 average_attn_weights=True, is_causal=False):
        if is_causal and attn_mask is None:
            raise RuntimeError("Need attn_mask if specifying the is_causal hint")
        self_attention = query is key and key is value  # then one packed projection (PyTorch does the same)
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = (mx.expand_dims(t, 0) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = mx.expand_dims(key_padding_mask, 0)
        elif not self.batch_first:
            query, key, value = (mx.swapaxes(t, 0, 1) for t in (query, key, value))
        (n, length, _), source, heads = query.shape, key.shape[1], self.num_heads
        if self_attention:
            qkv = query @ self.in_proj_weight.T
            q, k, v = mx.split(qkv + self.in_proj_bias if "in_proj_bias" in self else qkv, 3, axis=-1)
        else:
            w_q, w_k, w_v = mx.split(self.in_proj_weight, 3)
            b_q, b_k, b_v = mx.split(self.in_proj_bias, 3) if "in_proj_bias" in self else (0, 0, 0)
            q, k, v = query @ w_q.T + b_q, key @ w_k.T + b_k, value @ w_v.T + b_v
        q = q.reshape(n, length, heads, -1).transpose(0, 2, 1, 3)
        k = k.reshape(n, source, heads, -1).transpose(0, 2, 1, 3)
        v = v.reshape(n, source, heads, -1).transpose(0, 2, 1, 3)
        scores = (q * (q.shape[-1] ** -0.5)) @ k.transpose(0, 1, 3, 2)
        if attn_mask is not None:
            mask = attn_mask.reshape(n, heads, length, source) if attn_mask.ndim == 3 else attn_mask
            scores = mx.where(mask, float("-inf"), scores) if mask.dtype == mx.bool_ else scores + mask
        if key_padding_mask is not None:
            pad = key_padding_mask[:, None, None, :]
            scores = mx.where(pad, float("-inf"), scores) if pad.dtype == mx.bool_ else scores + pad
        weights = self.dropout(mx.softmax(scores, axis=-1))
        out = (weights @ v).transpose(0, 2, 1, 3).reshape(n, length, self.embed_dim)
        out = self.out_proj(out)
        if unbatched:
            out, weights = out[0], weights[0]
        elif not self.batch_first:
            out = mx.swapaxes(out, 0, 1)
        if not need_weights:
            return out, None
        return out, (weights.mean(axis=-3) if average_attn_weights else weights)


class TransformerEncoderLayer(nn.Module):
    """PyTorch-style encoder layer on MLX (post-norm unless norm_first), same member names."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-05, batch_first=False, norm_first=False, bias=True):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first)
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        named = {"relu": nn.relu, "gelu": nn.gelu}
        function = named[activation] if isinstance(activation, str) else activation
        self.activation = lambda x: function(x)  # a plain function: copy.deepcopy keeps it as is

    def _self_attention(self, x, mask, key_padding_mask):
        x = self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=key_padding_mask, need_weights=False)[0]
        return self.dropout1(x)

    def _feed_forward(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def __call__(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._self_attention(self.norm1(x), src_mask, src_key_padding_mask)
            return x + self._feed_forward(self.norm2(x))
        x = self.norm1(x + self._self_attention(x, src_mask, src_key_padding_mask))
        return self.norm2(x + self._feed_forward(x))


class TransformerEncoder(nn.Module):
    """PyTorch-style stack of copies of one encoder layer, with an optional final norm."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        import copy

        super().__init__()
        self.layers = [copy.deepcopy(encoder_layer) for _ in range(num_layers)]
        self.num_layers = num_layers
        self.norm = norm

    def __call__(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask)
        return self.norm(x) if self.norm is not None else x
'''

LOCAL_DECODER = """
class TransformerDecoderLayer(nn.Module):
    \"\"\"PyTorch-style decoder layer on MLX (post-norm unless norm_first), same member names.\"\"\"

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-05, batch_first=False, norm_first=False, bias=True):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first)
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        named = {"relu": nn.relu, "gelu": nn.gelu}
        function = named[activation] if isinstance(activation, str) else activation
        self.activation = lambda x: function(x)  # a plain function: copy.deepcopy keeps it as is

    def _self_attention(self, x, mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=key_padding_mask, is_causal=is_causal,
                           need_weights=False)[0]
        return self.dropout1(x)

    def _cross_attention(self, x, memory, mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, memory, memory, attn_mask=mask, key_padding_mask=key_padding_mask,
                                is_causal=is_causal, need_weights=False)[0]
        return self.dropout2(x)

    def _feed_forward(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def __call__(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                 memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = tgt
        if self.norm_first:
            x = x + self._self_attention(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._cross_attention(self.norm2(x), memory, memory_mask, memory_key_padding_mask,
                                          memory_is_causal)
            return x + self._feed_forward(self.norm3(x))
        x = self.norm1(x + self._self_attention(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._cross_attention(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
        return self.norm3(x + self._feed_forward(x))


class TransformerDecoder(nn.Module):
    \"\"\"PyTorch-style stack of copies of one decoder layer, with an optional final norm.\"\"\"

    def __init__(self, decoder_layer, num_layers, norm=None):
        import copy

        super().__init__()
        self.layers = [copy.deepcopy(decoder_layer) for _ in range(num_layers)]
        self.num_layers = num_layers
        self.norm = norm

    def __call__(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                 memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=bool(tgt_is_causal) and tgt_mask is not None,
                      memory_is_causal=memory_is_causal)
        return self.norm(x) if self.norm is not None else x


class Transformer(nn.Module):
    \"\"\"PyTorch-style encoder-decoder transformer on MLX, same member names (encoder.layers.0....).\"\"\"

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation="relu", custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-05,
                 batch_first=False, norm_first=False, bias=True):
        super().__init__()
        layer = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                     layer_norm_eps=layer_norm_eps, batch_first=batch_first, norm_first=norm_first, bias=bias)
        self.encoder = custom_encoder if custom_encoder is not None else TransformerEncoder(
            TransformerEncoderLayer(d_model, nhead, **layer), num_encoder_layers,
            nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        self.decoder = custom_decoder if custom_decoder is not None else TransformerDecoder(
            TransformerDecoderLayer(d_model, nhead, **layer), num_decoder_layers,
            nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first

    def __call__(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                 tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                 memory_is_causal=False):
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        return mx.triu(mx.full((sz, sz), float("-inf"), dtype=dtype or mx.float32), k=1)
"""

# the local classes, in the blocks they are written in (a block comes whole, once per file)
ENCODER_CLASSES = ("MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder")
DECODER_CLASSES = ("TransformerDecoderLayer", "TransformerDecoder", "Transformer")
_BLOCKS = {"encoder": (ENCODER_CLASSES, LOCAL_ATTENTION), "decoder": (DECODER_CLASSES, LOCAL_DECODER)}
_UNSUPPORTED = {
    "add_bias_kv": "False", "add_zero_attn": "False", "kdim": "None", "vdim": "None",
}
_DROPPED = frozenset({"device"})


def _add_block(block: str, rewriter, uses: tuple = ()) -> dict:
    """Write the block's classes, once per file; each class's name in the file (a fresh one where the file uses
    it: the classes call each other, and the decoder's the encoder block's (`uses`), by the names they got)."""
    classes, code = _BLOCKS[block]
    parsed: list = []

    def statement(i: int) -> list:
        if not parsed:
            parsed.extend(mlx_statements(rewriter, code.lstrip("\n")))
        return parsed[i:i + 1]

    names: dict = {}
    for i, name in enumerate(classes):
        names[name] = rewriter.helper(name, lambda i=i: statement(i), uses=(*uses, *names))
    return names


def _local(name: str, call: cst.Call, rewriter, positional_limit: int):
    args = []
    for arg in call.args:
        if arg.star:
            raise Flag(f"cannot check {arg.star}-arguments of nn.{name}")
        key = arg.keyword.value if arg.keyword is not None else None
        if key in _DROPPED:
            continue
        if key == "dtype":
            raise Flag(f"the local {name} has no dtype argument; call .set_dtype() on the module")
        if key in _UNSUPPORTED and not is_name(arg.value, _UNSUPPORTED[key]):
            raise Flag(f"{key}= is not implemented by the local {name}", "no-equivalent")
        if key in _UNSUPPORTED:
            continue
        args.append(arg.with_changes(comma=cst.MaybeSentinel.DEFAULT, whitespace_after_arg=cst.SimpleWhitespace("")))
    if len([a for a in args if a.keyword is None]) > positional_limit:
        raise Flag(f"pass the arguments of nn.{name} after the first {positional_limit} by keyword")
    names = _add_block("encoder", rewriter)  # the decoder's classes build on the attention and encoder classes
    if name in DECODER_CLASSES:
        names = _add_block("decoder", rewriter, ENCODER_CLASSES)
    return cst.Call(func=cst.Name(names[name]), args=args), frozenset({"mx", "nn"})


# handler name -> (local class, how many arguments torch's signature takes positionally)
_HANDLERS = {
    "nn_multihead_attention": ("MultiheadAttention", 4),
    "nn_transformer_encoder_layer": ("TransformerEncoderLayer", 9),
    "nn_transformer_encoder": ("TransformerEncoder", 5),
    "nn_transformer_decoder_layer": ("TransformerDecoderLayer", 9),
    "nn_transformer_decoder": ("TransformerDecoder", 3),
    "nn_transformer": ("Transformer", 13),
}


def _handler(name: str, positional_limit: int):
    def handler(rule, original, call, receiver, rewriter):
        return _local(name, call, rewriter, positional_limit)
    return handler


for _key, (_name, _limit) in _HANDLERS.items():
    register(_key)(_handler(_name, _limit))
