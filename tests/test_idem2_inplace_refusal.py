"""An in-place update the inplace-op transform refuses carries that one flag, on every conversion.

torch's _subclasses/fake_utils.py: `new_tensor = torch.empty(...)`, `new_tensor.set_(...)`, then
`out.append(new_tensor.clone())` in a loop. The converted text appends `mx.array(new_tensor)`, a use that may keep a
reference, so the second conversion refused the update for that reason and kept the table's "`.set_()` on a value
not known to be a tensor" beside it: two flags for one statement the first conversion had flagged once.
"""
from __future__ import annotations

import difflib
import textwrap

from torch2mlx import convert_source

SOURCE = '''
import torch


def copy_all(ten_list, real_storage):
    out = []
    for t in ten_list:
        if t.layout != torch.strided:
            out.append(t)
            continue
        new_tensor = torch.empty([], dtype=t.dtype, device=t.device)
        new_tensor.set_(real_storage, storage_offset=0, size=[2], stride=[1])
        out.append(new_tensor.clone())
    return out
'''


def _flags(code: str) -> list:
    return [line.strip() for line in code.splitlines() if line.strip().startswith("# torch2mlx:")]


def test_a_refused_in_place_update_is_flagged_once_on_a_second_conversion():
    first = convert_source(textwrap.dedent(SOURCE), "fake_utils.py").code
    assert [f for f in _flags(first) if "set_" in f] == [
        "# torch2mlx: inplace-op: in-place update left as written: no out-of-place rule for `.set_()`; "
        "MLX arrays are immutable, assign the result by hand"], first
    second = convert_source(first, "fake_utils.py").code
    assert second == first, "\n".join(difflib.unified_diff(first.splitlines(), second.splitlines(), lineterm=""))


def test_an_update_refused_for_a_kept_reference_is_not_also_an_unknown_receiver():
    # what the second conversion read: an mx.array updated in a loop that appends it (a kept reference)
    code = convert_source(textwrap.dedent('''
        import mlx.core as mx
        import torch


        def fill(ts, s):
            out = []
            for t in ts:
                n = mx.zeros([])
                n.set_(s, size=[2])
                out.append(n)
            return out, torch.strided
    '''), "loop.py").code
    flags = _flags(code)
    assert any(f.startswith("# torch2mlx: inplace-op: ") and "out.append" in f for f in flags), code
    assert not any("not known to be a tensor" in f for f in flags), code
