"""An in-place update the first conversion left flagged is not translated by a second one.

torch's distributed/checkpoint/hf_storage.py (and quantized_hf_storage.py): `target_tensor = planner.resolve_tensor(req)
.detach()` may share storage with the planner's tensor, so `target_tensor.copy_(tensor)` is flagged. Converted, the
binding reads `mx.stop_gradient(planner.resolve_tensor(req))`, where the view is no longer visible, and a second
conversion rewrote the update to `target_tensor = mx.broadcast_to(...)`: the planner would not see the copy.
"""
from __future__ import annotations

import difflib
import textwrap

from torch2mlx import convert_source

SOURCE = '''
import torch


def read_into(planner, req, tensor):
    target_tensor = planner.resolve_tensor(req).detach()
    if target_tensor.shape != tensor.shape:
        raise AssertionError(f"mismatch {target_tensor.shape}")
    target_tensor.copy_(tensor)
    planner.commit_tensor(req, target_tensor)
    return torch.strided
'''


def test_an_update_flagged_for_shared_storage_stays_flagged_on_a_second_conversion():
    first = convert_source(textwrap.dedent(SOURCE), "hf_storage.py").code
    assert "# torch2mlx: inplace-op: " in first and "target_tensor.copy_(tensor)" in first, first
    second = convert_source(first, "hf_storage.py").code
    assert second == first, "\n".join(difflib.unified_diff(first.splitlines(), second.splitlines(), lineterm=""))
    assert "target_tensor.copy_(tensor)" in second
