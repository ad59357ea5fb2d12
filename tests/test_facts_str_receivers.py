"""A method called on a str stays str's, unflagged (transforms/facts/str_receivers.py): the idioms of timm that
read `.split(...)` on a str as a tensor's, which flagged every timm model at import (deepseek_vit.py:763,
qwen3_vit.py:787), and _efficientnet_builder.py:107, vgg.py:402, create_norm_act.py:125. The converted code runs
under MLX to the same strs torch's gives; what may not be a str stays flagged."""
from __future__ import annotations

import textwrap

import pytest

from tests.model_support import warnings
from torch2mlx import convert_source

SOURCE = '''
import torch

_SOURCE_CFGS = {
    'deepseek_vit_412m.deepseek_v4_flash': dict(num_classes=0),
    'deepseek_vit_412m.exp': dict(num_classes=1),
}

default_cfgs = {
    f'{name.split(".", 1)[0]}{suffix}.{name.split(".", 1)[1]}': dict(cfg)
    for name, cfg in _SOURCE_CFGS.items()
    for suffix in ('', '_enc')
}


def _decode_block_str(block_str):
    """Decode a block definition string."""
    assert isinstance(block_str, str)
    ops = block_str.split('_')
    return ops[0], ops[1:]


def _create_vgg(variant: str, pretrained: bool = False):
    return variant.split('_')[0]


def get_norm_act_layer(norm_layer, x: torch.Tensor):
    if isinstance(norm_layer, str):
        if not norm_layer:
            return None
        layer_name = norm_layer.replace('_', '').lower().split('-')[0]
        return layer_name, x.split(2)
    return norm_layer, x


out = (default_cfgs, _decode_block_str('ir_r1_k3_s1'), _create_vgg('vgg11_bn'),
       get_norm_act_layer('Batch_Norm-2d', torch.arange(4.0))[0])
'''


def test_str_methods_stay_strs_under_mlx():
    result = convert_source(SOURCE)
    assert not warnings(result), result.diagnostics
    assert "mx.split(x" in result.code  # the tensor's split beside them is still translated
    assert "import torch" not in result.code
    mlx_ns: dict = {}
    exec(compile(result.code, "<mlx>", "exec"), mlx_ns)
    torch_ns: dict = {}
    exec(compile(SOURCE, "<torch>", "exec"), torch_ns)
    assert mlx_ns["out"] == torch_ns["out"]
    assert sorted(mlx_ns["default_cfgs"]) == ["deepseek_vit_412m.deepseek_v4_flash", "deepseek_vit_412m.exp",
                                              "deepseek_vit_412m_enc.deepseek_v4_flash", "deepseek_vit_412m_enc.exp"]


# `.split(n)`: an argument Tensor.split takes too (a string one, `.split('_')`, is never Tensor.split:
# test_facts_str_split_arguments.py)
@pytest.mark.parametrize("body", [
    "def f(s, n):\n    return s.split(n)\n",                                              # unknown
    "def f(s, t, n):\n    if isinstance(s, str):\n        s = t\n        return s.split(n)\n",  # rebound in the body
    "def f(s, ts, n):\n    if isinstance(s, str):\n        return [s.split(n) for s in ts]\n",  # a comprehension's s
    "def f(s, t, n):\n    if isinstance(s, str):\n        pass\n    else:\n        return s.split(n)\n",  # the else branch
    "def f(s, t, n):\n    if isinstance(t, str):\n        return s.split(n)\n",             # another name narrowed
    "def f(s, n):\n    return s.lower().split(n)\n",                                        # a method of an unknown value
    "str = bytes\n\ndef f(s, n):\n    if isinstance(s, str):\n        return s.split(n)\n",  # `str` is not the builtin
])
def test_what_may_not_be_a_str_stays_flagged(body):
    result = convert_source("import torch\n\n\n" + textwrap.dedent(body))
    assert any(d.rule_id == "torch.split" for d in warnings(result)), result.code
