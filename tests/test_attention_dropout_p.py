"""`.p` of a dropout layer built in view (torch2mlx/layer_attributes.py, KEEPING): transformers' GPT-2 passes
`dropout=self.attn_dropout.p if self.training else 0.0` to its attention function, timm's attention
`dropout_p=self.attn_drop.p ...`. MLX's Dropout keeps no p, so the layer is built as TorchDropout (written into the
file), an nn.Dropout that keeps p as given: no parameter (parameters() and weight loading are unchanged), isinstance
of nn.Dropout, and setting p changes the probability as in torch."""
from __future__ import annotations

import mlx.core as mx
import mlx.nn as mnn
import numpy as np
import pytest
import torch
from mlx.utils import tree_flatten

from torch2mlx import convert_source
from torch2mlx.layer_attributes import RULE_ID
from torch2mlx.weights import load_torch_weights

_GPT2 = '''
import torch
import torch.nn as nn


def eager_attention_forward(module, query, key, value, dropout=0.0):
    weights = nn.functional.softmax(query @ key.transpose(-1, -2), dim=-1)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    return weights @ value


class GPT2Attention(nn.Module):
    def __init__(self, dim, attn_pdrop):
        super().__init__()
        self.c_attn = nn.Linear(dim, 3 * dim)
        self.attn_dropout = nn.Dropout(attn_pdrop)
        self.resid_dropout = nn.Dropout(attn_pdrop)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        q, k, v = self.c_attn(hidden_states).split(hidden_states.shape[-1], dim=2)
        out = eager_attention_forward(self, q, k, v, dropout=self.attn_dropout.p if self.training else 0.0)
        return self.resid_dropout(out)

    def rate(self):
        return self.attn_dropout.p

    def set_rate(self, p):
        self.attn_dropout.p = p
'''


def _convert(source: str) -> tuple:
    result = convert_source(source)
    assert not [d for d in result.diagnostics if d.severity != "info" and "taken to be tensors" not in d.message], \
        [d.message for d in result.diagnostics]
    scope: dict = {}
    exec(compile(result.code, "<converted>", "exec"), scope)
    return result.code, scope


def test_gpt2_dropout_p_is_read():
    code, scope = _convert(_GPT2)
    assert RULE_ID not in code
    assert "self.attn_dropout = TorchDropout(p=attn_pdrop)" in code
    assert "self.resid_dropout = nn.Dropout(p=attn_pdrop)" in code  # no .p read: MLX's own layer
    torch_scope: dict = {}
    exec(compile(_GPT2, "<torch>", "exec"), torch_scope)
    theirs = torch_scope["GPT2Attention"](8, 0.1).eval()
    ours = scope["GPT2Attention"](8, 0.1)
    assert ours.rate() == theirs.rate() == 0.1 and type(ours.rate()) is type(theirs.rate())
    assert isinstance(ours.attn_dropout, mnn.Dropout)
    # no parameter of its own: the torch state_dict loads as before, strict
    assert [k for k, _ in tree_flatten(ours.parameters())] == ["c_attn.weight", "c_attn.bias"]
    load_torch_weights(ours, theirs.state_dict())
    ours.eval()
    x = torch.randn(2, 5, 8)
    np.testing.assert_allclose(np.array(ours(mx.array(x.numpy()))), theirs(x).detach().numpy(), rtol=1e-4, atol=1e-5)


def _dropped_share(layer, n=20000) -> float:
    layer.train()
    return float(np.mean(np.array(layer(mx.ones((n,)))) == 0))


def test_setting_p_changes_the_probability():
    _, scope = _convert(_GPT2)
    ours = scope["GPT2Attention"](8, 0.1)
    mx.random.seed(0)
    assert abs(_dropped_share(ours.attn_dropout) - 0.1) < 0.02
    ours.set_rate(0.6)  # torch's Dropout reads self.p when called
    assert ours.rate() == 0.6
    assert abs(_dropped_share(ours.attn_dropout) - 0.6) < 0.02
    kept = np.array(ours.attn_dropout(mx.ones((1000,))))
    np.testing.assert_allclose(kept[kept != 0], 1 / (1 - 0.6), rtol=1e-6)
    ours.set_rate(0)
    assert _dropped_share(ours.attn_dropout) == 0
    with pytest.raises(ValueError):  # MLX's range, as its constructor's
        ours.set_rate(1.5)


def test_name_taken_gets_a_fresh_one():
    source = _GPT2 + "\n\nclass TorchDropout:\n    pass\n"
    code, scope = _convert(source)
    assert "self.attn_dropout = TorchDropout_1(p=attn_pdrop)" in code
    assert scope["GPT2Attention"](8, 0.25).rate() == 0.25


def test_converting_twice_changes_nothing():
    first = convert_source(_GPT2).code
    assert first.count("class TorchDropout(") == 1
    assert convert_source(first).code == first


def test_written_below_the_mlx_import():
    # timm's vision_transformer_relpos.py: `try: from typing import Literal` between the imports; a class's base
    # is read where it is defined, so TorchDropout goes below the import binding nn (it went above: NameError)
    source = _GPT2.replace("import torch\nimport torch.nn as nn\n", "import logging\ntry:\n    from typing import Literal\n"
                           "except ImportError:\n    Literal = None\nimport torch\nimport torch.nn as nn\n"
                           "from functools import partial\n")
    code, scope = _convert(source)
    assert code.index("import mlx.nn as nn") < code.index("from functools import partial") < code.index(
        "class TorchDropout(")
    assert scope["GPT2Attention"](8, 0.25).rate() == 0.25


def test_setting_p_of_a_narrowed_dropout_is_flagged():
    # `m.p = 0` on whatever MLX Dropout the loop meets sets an attribute MLX's Dropout never reads: flagged
    source = _GPT2 + ("\n\ndef disable_dropout(model):\n    for m in model.modules():\n"
                      "        if isinstance(m, nn.Dropout):\n            m.p = 0.0\n")
    result = convert_source(source)
    flagged = [d for d in result.diagnostics if d.rule_id == RULE_ID]
    assert len(flagged) == 1 and "setting `.p`" in flagged[0].message
    assert f"# torch2mlx: {RULE_ID}: setting `.p`" in result.code
