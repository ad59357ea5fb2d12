"""The torch-layout build (transforms/layout/torch_layout.py) of transposed convolutions and instance norms: the
helpers ConvTranspose{1,2,3}dNCHW and InstanceNorm{1,2}dNCHW take torch's constructor and torch's channels-first
data (they stayed flagged there, having no helper)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402
from tests.model_support import assert_close, exec_source, randomize_parameters, warnings  # noqa: E402

DECODER = '''import torch
import torch.nn as nn


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.up1 = nn.ConvTranspose1d(3, 4, 3, stride=2, padding=1, output_padding=1)
        self.norm1 = nn.InstanceNorm1d(4, affine=True)
        self.up2 = nn.ConvTranspose2d(4, 5, (3, 2), stride=(2, 1), padding=(1, 0), output_padding=(1, 0), dilation=1)
        self.norm2 = nn.InstanceNorm2d(5, eps=1e-3)
        self.up3 = nn.ConvTranspose3d(5, 2, 2, stride=2, bias=False)

    def forward(self, x):
        y = self.norm1(self.up1(x))                                 # (N, 4, 2L)
        z = self.norm2(self.up2(y.reshape(y.shape[0], 4, 4, -1)))   # (N, 5, 8, L/2 + 1)
        return self.up3(z.unsqueeze(2)), y
'''


def test_transposed_convolutions_and_instance_norms_in_torch_layout_match_torch():
    result = convert_source(DECODER, "model.py", layout="torch")
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    for helper in ("ConvTranspose1dNCHW(3, 4", "InstanceNorm1dNCHW(4", "ConvTranspose2dNCHW(4, 5", "InstanceNorm2dNCHW(5",
                   "ConvTranspose3dNCHW(5, 2"):
        assert helper in result.code, result.code
    torch.manual_seed(0)
    torch_model = exec_source(DECODER, "torch_decoder")["Decoder"]()
    randomize_parameters(torch_model)
    torch_model.eval()
    mlx_model = exec_source(result.code, "mlx_decoder")["Decoder"]()
    mlx_model.eval()
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and "up2.weight" in report.loaded and "norm1.bias" in report.loaded, report.describe()
    x = np.random.RandomState(0).standard_normal((2, 3, 8)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert tuple(expected[0].shape) == (2, 2, 2, 16, 10)
    assert_close(mlx_model(mx.array(x)), expected, channels_last_output=False)


def test_unbatched_instance_norm_and_what_mlx_lacks():
    source = '''import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.InstanceNorm2d(3, affine=True)
        self.up = nn.ConvTranspose2d(3, 3, 2, stride=2)

    def forward(self, x):
        return self.up(self.norm(x))
'''
    result = convert_source(source, "model.py", layout="torch")
    assert not warnings(result), result.code
    torch_model, mlx_model = exec_source(source, "torch_net")["Net"](), exec_source(result.code, "mlx_net")["Net"]()
    randomize_parameters(torch_model)
    assert load_torch_weights(mlx_model, torch_model.state_dict()).ok
    x = np.random.RandomState(1).standard_normal((3, 5, 4)).astype(np.float32)  # unbatched (C, H, W)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert_close(mlx_model(mx.array(x)), expected, channels_last_output=False)
    grouped = convert_source(source.replace("stride=2)", "stride=2, groups=3)"), "model.py", layout="torch")
    assert "torch.nn.ConvTranspose2d" in {d.rule_id for d in warnings(grouped)}  # the table's flag: kept as written
    running = convert_source(source.replace("affine=True", "track_running_stats=True"), "model.py", layout="torch")
    assert "torch.nn.InstanceNorm1d" in {d.rule_id for d in warnings(running)}
