"""A class deriving from nn.SyncBatchNorm, as timm's layers/norm_act.py writes it (SyncBatchNormAct: a forward that
calls super().forward(x), then optional drop / act attributes; defined at import, so the flag on its base kept
`from torch import nn` in the module and `import timm` failed without torch). In one process PyTorch's
SyncBatchNorm is plain batch norm over axis 1 of any rank; the base becomes TorchSyncBatchNorm (layer_bases.py).
Run under torch and MLX with the same weights, in eval and in training (running statistics updated)."""
from __future__ import annotations

import numpy as np
import pytest

from torch2mlx import convert_source, load_torch_weights
from tests.model_support import assert_close, exec_source, randomize_batch_norm, warnings

SYNC_BN = '''
import torch
from torch import nn as nn


class SyncBatchNormAct(nn.SyncBatchNorm):
    # timm layers/norm_act.py:268
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)  # SyncBN doesn't work with torchscript anyways, so this is fine
        if hasattr(self, "drop"):
            x = self.drop(x)
        if hasattr(self, "act"):
            x = self.act(x)
        return x


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.plain = SyncBatchNormAct(4, eps=1e-3, momentum=None)
        self.acted = SyncBatchNormAct(4, momentum=0.3, process_group=None)
        self.acted.act = nn.ReLU()
        self.free = SyncBatchNormAct(4, affine=False, track_running_stats=False)

    def forward(self, seq, maps):
        return self.plain(seq), self.acted(maps), self.free(maps)
'''


@pytest.mark.parametrize("training", [False, True])
def test_sync_batch_norm_base_matches_torch(training):
    import mlx.core as mx
    import torch

    result = convert_source(SYNC_BN, "norm_act.py")
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    code = result.code
    assert "class SyncBatchNormAct(TorchSyncBatchNorm):" in code and "\nfrom torch" not in code
    assert convert_source(code).code == code, "converting the output again changed it"
    torch_ns, mlx_ns = exec_source(SYNC_BN, "torch_sync_bn"), exec_source(code, "mlx_sync_bn")
    torch_model = torch_ns["Net"]()
    randomize_batch_norm(torch.nn.ModuleList([torch_model.plain, torch_model.acted]))
    mlx_model = mlx_ns["Net"]()
    mlx_model.acted.act = mlx_ns["nn"].ReLU()
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok, report
    torch_model.train(training)
    mlx_model.train(training)
    rng = np.random.RandomState(0)
    for step in range(2):  # twice: the second pass sees the running statistics the first updated
        seq = rng.standard_normal((3, 4, 7)).astype(np.float32)
        maps = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
        with torch.no_grad():
            expected = torch_model(torch.from_numpy(seq), torch.from_numpy(maps))
        actual = mlx_model(mx.array(seq), mx.array(maps))
        assert_close(actual, expected, channels_last_output=False, where=f"step {step}")
    for name in ("plain", "acted"):
        torch_bn, mlx_bn = getattr(torch_model, name), getattr(mlx_model, name)
        np.testing.assert_allclose(np.array(mlx_bn.running_mean), torch_bn.running_mean.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.array(mlx_bn.running_var), torch_bn.running_var.numpy(), rtol=1e-4, atol=1e-5)
        assert mlx_bn.num_batches_tracked == int(torch_bn.num_batches_tracked)
    assert mlx_model.free.running_mean is None and mlx_model.free.weight is None
    with pytest.raises(ValueError):
        mlx_model.plain(mx.zeros((4,)))
