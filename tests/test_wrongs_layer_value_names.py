"""A torch layer class used as a value reports torch's `__name__` / `__qualname__` after conversion.

timm's get_norm_act_layer (timm/layers/create_norm_act.py) looks the norm class up by
`norm_layer.__name__.lower()`: the converted value is nn-layer-values' helper (`BatchNorm2dNCHW`), whose own
name made the lookup fail (an AssertionError in 7 timm models). The helper now carries torch's name, also where
the file's own names force a fresh helper name (`LayerNorm_1`) and for the channels-last sibling."""
from __future__ import annotations

from torch2mlx import convert_source
from tests.model_support import exec_source, warnings

SOURCE = '''
import torch.nn as nn


class LayerNorm(nn.Module):  # the file's own LayerNorm: the helper for nn.LayerNorm gets a fresh name
    pass


def names(norm=nn.BatchNorm2d, conv=nn.Conv1d, group=nn.GroupNorm, pool=nn.MaxPool2d, act=nn.ReLU,
          gelu=nn.GELU, layer_norm=nn.LayerNorm):
    classes = (norm, conv, group, pool, act, gelu, layer_norm)
    return [c.__name__ for c in classes] + [c.__qualname__ for c in classes] + [type(norm(3)).__name__]


_NORM_TO_NORM_ACT = {"batchnorm2d": "BatchNormAct2d", "groupnorm": "GroupNormAct", "layernorm": "LayerNormAct"}


def norm_act_for(norm_layer=nn.BatchNorm2d):
    # timm/layers/create_norm_act.py get_norm_act_layer
    type_name = norm_layer.__name__.lower()
    norm_act_layer = _NORM_TO_NORM_ACT.get(type_name, None)
    assert norm_act_layer is not None, f"No equivalent norm_act layer for {type_name}"
    return norm_act_layer
'''


def test_layer_class_values_report_torch_names():
    torch_ns = exec_source(SOURCE, "torch_names")
    result = convert_source(SOURCE)
    assert not warnings(result), result.diagnostics
    assert "LayerNorm_1" in result.code  # the renamed helper is exercised
    mlx_ns = exec_source(result.code, "mlx_names")
    expected = torch_ns["names"]()
    assert expected[0] == "BatchNorm2d"
    assert mlx_ns["names"]() == expected
    assert mlx_ns["norm_act_for"]() == torch_ns["norm_act_for"]() == "BatchNormAct2d"


def test_channels_last_sibling_reports_torch_name():
    # `nn.Conv2d(..., **kwargs)` builds the channels-last helper Conv2dNHWC: it too is torch's Conv2d by name
    source = '''
import torch.nn as nn


def build(**kwargs):
    layer = nn.Conv2d(3, 4, 3, **kwargs)
    return type(layer).__name__, type(layer).__qualname__
'''
    torch_ns = exec_source(source, "torch_nhwc")
    result = convert_source(source)
    assert "Conv2dNHWC" in result.code
    mlx_ns = exec_source(result.code, "mlx_nhwc")
    assert mlx_ns["build"](padding=1) == torch_ns["build"](padding=1) == ("Conv2d", "Conv2d")


def test_names_survive_a_second_conversion():
    once = convert_source(SOURCE).code
    assert convert_source(once).code == once
