"""Ints read through `//`, `-`, `%`, `**` of config fields typed `int | list[int] | tuple[int, int] | None`
(scalar_facts.int_or_raises, the hub's `name?` config entries): transformers' CLIP
`self.num_patches = (self.image_size // self.patch_size) ** 2`, `torch.arange(self.num_positions)`, and
`torch.arange(module.num_positions)` under `isinstance(module, CLIPVisionEmbeddings)` (transforms/facts/layer_checks.py)
are torch's int64, as CLIPVisionModel's were its last flags in the real-model bench."""
from __future__ import annotations

import numpy as np
import pytest

from tests.model_support import warnings
from torch2mlx import convert_source

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")
pytest.importorskip("transformers")

PATH = "transformers/models/clip/modeling_t.py"
SOURCE = '''
import torch
from torch import nn

from .configuration_clip import CLIPVisionConfig


class Embeddings(nn.Module):
    def __init__(self, config: CLIPVisionConfig):
        super().__init__()
        self.image_size = config.image_size
        self.patch_size = config.patch_size
        self.num_patches = (self.image_size // self.patch_size) ** 2
        self.num_positions = self.num_patches + 1

    def forward(self, x):
        return torch.arange(self.num_positions) + x


def init_ids(module):
    if isinstance(module, Embeddings):
        return torch.arange(module.num_positions) * 2
    return None
'''


def test_ints_from_int_or_sequence_fields_under_torch_and_mlx():
    result = convert_source(SOURCE, PATH, hub=("transformers",))
    assert not warnings(result), result.diagnostics
    assert result.code.count("dtype=mx.int64") == 2
    absolute = "from transformers.models.clip.configuration_clip import CLIPVisionConfig"
    torch_ns: dict = {}
    exec(compile(SOURCE.replace("from .configuration_clip import CLIPVisionConfig", absolute), "t.py", "exec"), torch_ns)
    mlx_ns: dict = {}
    exec(compile(result.code.replace("from .configuration_clip import CLIPVisionConfig", absolute), "t_mlx.py", "exec"), mlx_ns)
    config = torch_ns["CLIPVisionConfig"](image_size=8, patch_size=4)
    ref, model = torch_ns["Embeddings"](config), mlx_ns["Embeddings"](config)
    for expected, actual in ((ref(torch.tensor(1)), model(mx.array(1))), (torch_ns["init_ids"](ref), mlx_ns["init_ids"](model))):
        assert actual.dtype == mx.int64 and expected.dtype == torch.int64
        np.testing.assert_array_equal(np.array(actual), expected.numpy())


@pytest.mark.parametrize("old, new", [
    ("(self.image_size // self.patch_size) ** 2", "self.image_size * 2"),     # a list times 2 is a list
    ("(self.image_size // self.patch_size) ** 2", "self.image_size + self.patch_size"),  # two lists add up
    ("        self.image_size = config.image_size\n", "        self.image_size = config.image_size\n"
                                                     "        self.image_size = 2.5\n"),
    ("    if isinstance(module, Embeddings):\n", "    if isinstance(module, Embeddings):\n        module = other\n"),
])
def test_what_may_not_be_an_int_stays_flagged(old, new):
    assert old in SOURCE
    result = convert_source(SOURCE.replace(old, new, 1), PATH, hub=("transformers",))
    assert any(d.rule_id == "torch.arange" for d in warnings(result)), result.code
