"""F.scaled_dot_product_attention with dropout, masks and run-time arguments (the `nnf_sdpa` handler,
torch2mlx/handlers/nn_dropout.py): the converted call runs a helper written into the file, compared with torch here.

dropout_p = 0: torch's values (rtol 1e-4, atol 1e-5) for masks of either kind (with rows in which no key takes part),
is_causal with L != S, scale, enable_gqa, 3-D inputs and batch broadcasting. dropout_p > 0 draws MLX's random mask:
the mean over many draws is torch's output without dropout, and the share of dropped weights is p, as torch's own;
the weights kept are torch's divided by 1 - p. timm's Attention idiom (`dropout_p=self.attn_drop.p if self.training
else 0.`, `is_causal=is_causal`) converts with no flag and matches torch in eval mode."""
from __future__ import annotations

import zlib

import mlx.core as mx
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from torch2mlx import convert_source
from torch2mlx.weights import load_torch_weights

_ATTEND = '''
import torch
import torch.nn.functional as F


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask, p: float, causal: bool, scale, gqa: bool):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal, scale=scale,
                                          enable_gqa=gqa)
'''


def _converted(source: str) -> dict:
    result = convert_source(source)
    assert not result.diagnostics, [d.message for d in result.diagnostics]
    assert "torch" not in result.code.replace("torch2mlx", "")
    scope: dict = {}
    exec(compile(result.code, "<converted>", "exec"), scope)
    return scope


@pytest.fixture(scope="module")
def attend():
    return _converted(_ATTEND)["attend"]


def _mx(t):
    return None if t is None else mx.array(t.numpy())


def _case(name):
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()) % 1000)  # str hash() differs per process

    def randn(*shape):
        return torch.randn(*shape, generator=g)
    q, k, v = randn(2, 3, 4, 8), randn(2, 3, 6, 8), randn(2, 3, 6, 5)
    empty_row = torch.rand(2, 1, 4, 6, generator=g) > 0.4
    empty_row[0, 0, 1] = False  # a row in which no key takes part
    float_mask = randn(4, 6).masked_fill(torch.tensor([[False] * 6, [True] * 6, [False] * 6, [True] + [False] * 5]),
                                         float("-inf"))
    cases = {
        "plain": (q, k, v, None, False, None, False),
        "bool mask": (q, k, v, empty_row, False, None, False),
        "float mask": (q, k, v, float_mask, False, 0.3, False),
        "causal L < S": (q, k, v, None, True, None, False),
        "causal L > S": (randn(2, 3, 7, 8), k, v, None, True, None, False),
        "gqa": (randn(2, 6, 4, 8), k, v, None, False, None, True),
        "gqa 3-D": (randn(6, 4, 8), k[0], v[0], None, True, None, True),
        "3-D": (q[0], k[0], v[0], empty_row[0], False, 0.5, False),
        "2-D": (q[0, 0], k[0, 0], v[0, 0], None, True, None, False),
        "one key/value head": (q, k[:, :1], v[:, :1], None, False, None, False),
        "batch broadcast": (q, k[:1], v[:1], float_mask, False, None, False),
    }
    return cases[name]


_CASES = ["plain", "bool mask", "float mask", "causal L < S", "causal L > S", "gqa", "gqa 3-D", "3-D", "2-D",
          "one key/value head", "batch broadcast"]


@pytest.mark.parametrize("name", _CASES)
def test_no_dropout_matches_torch(attend, name):
    q, k, v, mask, causal, scale, gqa = _case(name)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=scale, enable_gqa=gqa)
    got = attend(_mx(q), _mx(k), _mx(v), _mx(mask), 0.0, causal, scale, gqa)
    assert got.shape == tuple(want.shape) and got.dtype == mx.float32
    np.testing.assert_allclose(np.array(got), want.numpy(), rtol=1e-4, atol=1e-5)


def test_masked_out_rows_are_zeros(attend):
    # mx.fast.scaled_dot_product_attention alone gives the mean of the values here (bool) or nan (float)
    q, k, v, mask, *_ = _case("bool mask")
    got = np.array(attend(_mx(q), _mx(k), _mx(v), _mx(mask), 0.0, False, None, False))
    assert np.all(got[0, :, 1] == 0) and np.all(got[1] != 0)
    q, k, v, mask, *_ = _case("float mask")
    got = np.array(attend(_mx(q), _mx(k), _mx(v), _mx(mask), 0.0, False, None, False))
    assert np.all(got[:, :, 1] == 0) and not np.isnan(got).any()


def test_errors_as_torch(attend):
    q, k, v, mask, *_ = _case("bool mask")
    with pytest.raises(RuntimeError):
        F.scaled_dot_product_attention(q, k, v, dropout_p=1.5)
    # a negative p: torch's kernels differ (the flash kernel raises, the math one, taken here, drops nothing)
    for p in (-0.1, 1.5):
        with pytest.raises(RuntimeError):
            attend(_mx(q), _mx(k), _mx(v), None, p, False, None, False)
    with pytest.raises(RuntimeError):
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=True)
    with pytest.raises(RuntimeError):
        attend(_mx(q), _mx(k), _mx(v), _mx(mask), 0.0, True, None, False)
    with pytest.raises(RuntimeError):
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask.long())
    with pytest.raises(RuntimeError):
        attend(_mx(q), _mx(k), _mx(v), _mx(mask.long()), 0.0, False, None, False)


@pytest.mark.parametrize("name", ["plain", "bool mask", "causal L > S", "gqa"])
def test_dropout_mean_over_draws_is_torch_without_dropout(attend, name):
    q, k, v, mask, causal, scale, gqa = _case(name)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=scale,
                                          enable_gqa=gqa).numpy()
    mx.random.seed(0)
    draws = np.stack([np.array(attend(_mx(q), _mx(k), _mx(v), _mx(mask), 0.25, causal, scale, gqa))
                      for _ in range(400)])
    assert not np.allclose(draws[0], want, atol=1e-3)  # dropout did happen
    mean, error = draws.mean(0), draws.std(0) / np.sqrt(len(draws))
    assert np.all(np.abs(mean - want) <= 6 * error + 1e-5)


def _dropped_weights(sdpa, q, k, p):
    """The attention weights after dropout: value = identity, so the output is the weights themselves."""
    eye = np.eye(k.shape[-2], dtype=np.float32)
    return sdpa(q, k, eye, p)


def test_dropped_share_and_kept_values(attend):
    q, k, _v, mask, *_ = _case("bool mask")
    p = 0.3
    weights = F.scaled_dot_product_attention(q, k, torch.eye(6), attn_mask=mask).numpy()
    mx.random.seed(1)
    torch.manual_seed(1)
    ours = np.stack([np.array(attend(_mx(q), _mx(k), mx.eye(6), _mx(mask), p, False, None, False))
                     for _ in range(100)])
    theirs = np.stack([F.scaled_dot_product_attention(q, k, torch.eye(6), attn_mask=mask, dropout_p=p).numpy()
                       for _ in range(100)])
    taking_part = np.broadcast_to(weights != 0, ours.shape)  # weights of keys masked out are 0 either way
    share_ours = np.mean(ours[taking_part] == 0)
    share_theirs = np.mean(theirs[taking_part] == 0)
    n = int(taking_part.sum())
    bound = 5 * np.sqrt(p * (1 - p) / n)  # five standard errors of a share of n independent draws
    assert n > 5000 and bound < 0.05
    assert abs(share_ours - p) < bound and abs(share_theirs - p) < bound, (share_ours, share_theirs, bound)
    kept = ours != 0
    np.testing.assert_allclose(ours[kept], np.broadcast_to(weights / (1 - p), ours.shape)[kept], rtol=1e-4, atol=1e-6)
    # each weight is dropped on its own: no row, key or head is dropped as a whole more often than chance
    rows_all_dropped = np.mean(np.all(ours[taking_part.all(-1)].reshape(-1, 6) == 0, axis=-1)) if taking_part.all(
        -1).any() else 0.0
    assert rows_all_dropped < 0.01


def test_dropout_one_gives_zeros(attend):
    q, k, v, *_ = _case("plain")
    want = F.scaled_dot_product_attention(q, k, v, dropout_p=1.0).numpy()
    got = np.array(attend(_mx(q), _mx(k), _mx(v), None, 1.0, False, None, False))
    assert np.all(want == 0) and np.all(got == 0)


_TIMM = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, dim, num_heads=2, attn_drop=0.):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask=None, is_causal: bool = False) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(
            q, k, v,
            attn_mask=attn_mask,
            dropout_p=self.attn_drop.p if self.training else 0.,
            is_causal=is_causal,
        )
        return self.proj(x.transpose(1, 2).reshape(B, N, C))
'''


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("attn_drop", [0.0, 0.4])
def test_timm_attention(causal, attn_drop):
    result = convert_source(_TIMM)
    assert not result.diagnostics, [d.message for d in result.diagnostics]
    scope: dict = {}
    exec(compile(result.code, "<converted>", "exec"), scope)
    torch_scope: dict = {}
    exec(compile(_TIMM, "<torch>", "exec"), torch_scope)
    torch.manual_seed(0)
    theirs = torch_scope["Attention"](8, attn_drop=attn_drop).eval()
    ours = scope["Attention"](8, attn_drop=attn_drop)
    load_torch_weights(ours, theirs.state_dict())
    ours.eval()
    assert ours.attn_drop.p == theirs.attn_drop.p == attn_drop
    x = torch.randn(2, 5, 8)
    want = theirs(x, is_causal=causal).detach().numpy()
    np.testing.assert_allclose(np.array(ours(mx.array(x.numpy()), is_causal=causal)), want, rtol=1e-4, atol=1e-5)
    ours.train()
    trained = np.array(ours(mx.array(x.numpy()), is_causal=causal))
    if attn_drop == 0.0:  # training with p = 0: no dropout, torch's values
        np.testing.assert_allclose(trained, want, rtol=1e-4, atol=1e-5)
    else:
        assert not np.allclose(trained, want, atol=1e-3)


def test_converting_twice_changes_nothing():
    first = convert_source(_TIMM).code
    assert "def scaled_dot_product_attention(" in first and "class TorchDropout(" in first
    assert convert_source(first).code == first


def test_helper_name_taken_in_the_file():
    source = _TIMM + "\n\ndef scaled_dot_product_attention(q, k, v):\n    return 'a function of its own'\n"
    result = convert_source(source)
    assert not result.diagnostics
    assert "x = scaled_dot_product_attention_1(" in result.code
    assert "def scaled_dot_product_attention_1(query, key, value" in result.code
