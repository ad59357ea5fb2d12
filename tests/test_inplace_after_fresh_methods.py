"""An in-place update of a tensor made by a method that always returns a new tensor (torch's associative_scan.py:
`y_mat = bwys.unsqueeze(dim).repeat_interleave(sc, dim=dim)` then `y_mat.masked_fill_(...)`) translates on the first
pass: the update reaches no other tensor. It was flagged as possibly sharing storage, and the second pass, reading
`mx.repeat(...)`, translated it: the output changed when converted again."""
import numpy as np
import torch

from torch2mlx import convert_source

SOURCE = '''import torch


def f(bwys, ones_mask, dim: int, sc: int):
    y_mat = bwys.unsqueeze(dim).repeat_interleave(sc, dim=dim)
    y_mat.masked_fill_(ones_mask, 1.0)
    z = bwys.flip(0).cumsum(0)
    z.clamp_(max=0.5)
    return y_mat, z, bwys
'''


def test_an_update_of_a_fresh_tensor_translates_once_and_matches_torch():
    import mlx.core as mx

    result = convert_source(SOURCE, "fresh.py")
    assert not [d for d in result.diagnostics if d.severity.value != "info"], result.code
    assert convert_source(result.code, "fresh.py").code == result.code
    x = np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32)
    mask = np.random.default_rng(1).random((3, 2, 2)) > 0.5
    ns_torch: dict = {}
    exec(SOURCE, ns_torch)  # noqa: S102 - the test's own program
    expected = ns_torch["f"](torch.tensor(x), torch.tensor(mask), 2, 2)
    ns_mlx: dict = {}
    exec(result.code, ns_mlx)  # noqa: S102
    got = ns_mlx["f"](mx.array(x), mx.array(mask), 2, 2)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(np.array(g), e.numpy(), rtol=1e-5, atol=1e-6)
