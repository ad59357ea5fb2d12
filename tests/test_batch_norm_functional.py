"""F.batch_norm -> the local batch_norm_channels_first (torch2mlx/handlers/nn_batch_norm.py): timm's
BatchNormAct2d forward (a cut & paste of torch's BatchNorm2d.forward) in eval mode gives torch's output;
training with running statistics, which torch updates in place, raises instead of differing."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source  # noqa: E402
from tests.model_support import exec_source, warnings  # noqa: E402

SOURCE = '''import torch
import torch.nn.functional as F


def bn_act(x: torch.Tensor, running_mean, running_var, weight, bias, training: bool, momentum, eps: float):
    # timm/layers/norm_act.py BatchNormAct2d.forward, with the module's attributes as arguments
    if momentum is None:
        exponential_average_factor = 0.0
    else:
        exponential_average_factor = momentum
    if training:
        bn_training = True
    else:
        bn_training = (running_mean is None) and (running_var is None)
    x = F.batch_norm(
        x,
        running_mean if not training else None,
        running_var if not training else None,
        weight,
        bias,
        bn_training,
        exponential_average_factor,
        eps,
    )
    return F.relu(x)
'''


def _arrays(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)
    stats = [rng.standard_normal(5).astype(np.float32), (rng.random(5) + 0.5).astype(np.float32),
             rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)]
    return x, stats


def test_batch_norm_act_matches_torch_in_eval_and_without_running_statistics():
    result = convert_source(SOURCE, "bn.py")
    assert not warnings(result), result.code
    assert "batch_norm_channels_first(" in result.code
    assert convert_source(result.code, "bn.py").code == result.code
    torch_fn = exec_source(SOURCE, "bn_torch")["bn_act"]
    mlx_fn = exec_source(result.code, "bn_mlx")["bn_act"]
    x, (mean, var, weight, bias) = _arrays()
    for training in (False, True):  # training passes no running statistics (as timm's, track_running_stats off)
        expected = torch_fn(torch.from_numpy(x), *map(torch.from_numpy, (mean, var, weight, bias)), training, 0.1, 1e-3)
        actual = mlx_fn(mx.array(x), *map(mx.array, (mean, var, weight, bias)), training, 0.1, 1e-3)
        np.testing.assert_allclose(np.array(actual), expected.numpy(), rtol=1e-4, atol=1e-5)


def test_training_with_running_statistics_raises():
    source = "import torch\nimport torch.nn.functional as F\n\n\ndef f(x: torch.Tensor, m, v):\n    return F.batch_norm(x, m, v, training=True)\n"
    result = convert_source(source, "bn.py")
    assert not warnings(result), result.code
    x, (mean, var, _, _) = _arrays()
    with pytest.raises(NotImplementedError, match="in place"):
        exec_source(result.code, "bn_mlx")["f"](mx.array(x), mx.array(mean), mx.array(var))


def test_batch_norm_of_a_channels_last_feature_map_is_flagged():
    # after an MLX conv the map is (N, H, W, C): normalising axis 1 would be wrong, the layout analysis flags it
    source = '''import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.register_buffer("rm", torch.zeros(4))
        self.register_buffer("rv", torch.ones(4))

    def forward(self, x):
        x = self.conv(x)
        return F.batch_norm(x, self.rm, self.rv)
'''
    result = convert_source(source, "net.py", layout="channels-last")
    assert [d.line for d in warnings(result) if d.rule_id == "nn-layout" and "axis order" in d.message] == [15]
    # by default the file is then built in torch's layout (the conv takes and gives NCHW): exact
    result = convert_source(source, "net.py")
    assert not warnings(result), result.code
    torch_net, mlx_net = exec_source(source, "torch_bn")["Net"](), exec_source(result.code, "mlx_bn")["Net"]()
    torch_net.eval()
    mlx_net.eval()
    from torch2mlx import load_torch_weights

    assert load_torch_weights(mlx_net, torch_net.state_dict()).ok
    x = np.random.RandomState(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    with torch.no_grad():
        expected = torch_net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.array(mlx_net(mx.array(x))), expected, rtol=1e-4, atol=1e-5)
