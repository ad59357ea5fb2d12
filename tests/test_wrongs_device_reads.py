"""`.type` / `.index` reads on a torch device are flagged (transforms/runtime/device_reads.py).

`torch.device(...)` becomes `mx.default_device()`, whose `.type` is mx.DeviceType.cpu / gpu: a converted
`device.type == "cuda"` (or `"cpu"`) was silently False, and `.index` an AttributeError. The idiom of training
scripts (`device = torch.device("cuda" if torch.cuda.is_available() else "cpu")`, then branching on
`device.type`) and of models (`x.device.type`, `self.device.type`) now stays flagged with what to write."""
from __future__ import annotations

import pytest

from torch2mlx import convert_source
from tests.model_support import warnings

SOURCE = '''
import torch
from torch import nn

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if device.type == "cuda":
    print("gpu")
kind = torch.device("cpu").type


def on_cpu(x: torch.Tensor):
    return x.device.type == "cpu"


def index():
    return device.index


def autocast_kind(device):
    return device.type


class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.where = torch.device("cpu")

    def forward(self, x):
        return x if self.where.type == "cpu" else x * 2
'''


def _flagged_lines(result) -> set:
    return {d.line for d in warnings(result) if d.rule_id == "device-reads"}


def test_each_device_type_or_index_read_is_flagged():
    result = convert_source(SOURCE)
    lines = SOURCE.splitlines()
    expected = {n for n, line in enumerate(lines, 1) if ".type" in line or ".index" in line}
    assert len(expected) == 6
    assert _flagged_lines(result) == expected
    assert "mx.gpu" in next(d.message for d in warnings(result) if d.rule_id == "device-reads")


def test_the_flags_stay_on_a_second_conversion():
    once = convert_source(SOURCE)
    twice = convert_source(once.code)
    assert twice.code == once.code
    assert sum(1 for d in warnings(twice) if d.rule_id == "device-reads") == 6


@pytest.mark.parametrize("source", [
    "import torch\n\n\ndef f(t: str, x: torch.Tensor):\n    return t.type, x.dtype, x.abs()\n",
    "import torch\n\ndevice = torch.device('cpu')\n\n\ndef f(x: torch.Tensor):\n    return x.to(device) * 2\n",
])
def test_other_type_reads_and_device_uses_are_not_flagged(source):
    assert not any(d.rule_id == "device-reads" for d in convert_source(source).diagnostics)


def test_the_translation_it_guards_is_wrong_in_mlx():
    # why the flag: what `torch.device(...)` becomes has no torch device type string
    import mlx.core as mx
    import torch

    assert torch.device("cpu").type == "cpu"
    assert mx.default_device().type != "cpu" and mx.default_device().type != "cuda"


def test_a_device_compared_is_flagged():
    source = ('import torch\n\ncuda = torch.device("cuda")\n\n\ndef f(x: torch.Tensor):\n'
              '    return x * 2 if x.device == cuda else x\n\n\nsame = torch.device("cpu") != torch.device("cuda")\n')
    result = convert_source(source)
    assert _flagged_lines(result) == {7, 10}


def test_a_tensor_passed_to_to_is_not_taken_for_a_device_by_its_name():
    # handlers/device_dtype.py recognises a device by its name; a value known to be a tensor is not dropped:
    # `x.to(other)` converts x to other's dtype (torch), `x` alone would keep x's dtype
    source = ("import torch\n\n\ndef f(x: torch.Tensor, device_ref: torch.Tensor, device):\n"
              "    return x.to(device_ref), x.to(device)\n")
    result = convert_source(source)
    assert warnings(result) == []  # x.to(<a known tensor>) takes its dtype (a2cbf60), x.to(<a device>) is x
    assert "return x.astype(device_ref.dtype), x\n" in result.code
    import torch
    assert torch.tensor(1.5).to(torch.tensor(1, dtype=torch.int64)).dtype == torch.int64
