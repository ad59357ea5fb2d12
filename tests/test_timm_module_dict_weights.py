"""load_torch_weights into a ModuleDict subclass whose modules sit under digit keys: timm's MixedConv2d
(timm/layers/mixed_conv2d.py) is an nn.ModuleDict holding its convolutions under str(idx) ("0", "1", ...), set with
add_module. Rebuilding the parameter tree from dotted names read "0" as a list index and Module.update failed
("load weights: KeyError: 0" on mixnet_s)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402
from tests.model_support import assert_close, exec_source, randomize_parameters, warnings  # noqa: E402

MIXED = '''import torch
import torch.nn as nn


def _split_channels(num_chan, num_groups):
    split = [num_chan // num_groups for _ in range(num_groups)]
    split[0] += num_chan - sum(split)
    return split


class MixedConv2d(nn.ModuleDict):
    """timm's MixedConv2d: a ModuleDict subclass, one depthwise conv per kernel size under str(idx)."""

    def __init__(self, channels, kernel_size=(3, 5, 7)):
        super().__init__()
        splits = _split_channels(channels, len(kernel_size))
        for idx, (k, ch) in enumerate(zip(kernel_size, splits)):
            self.add_module(str(idx), nn.Conv2d(ch, ch, k, padding=k // 2, groups=ch))
        self.splits = splits

    def forward(self, x):
        x_split = torch.split(x, self.splits, 1)
        x_out = [c(x_split[i]) for i, c in enumerate(self.values())]
        return torch.cat(x_out, 1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 10, 3, padding=1)
        self.mix = MixedConv2d(10)
        self.heads = nn.ModuleDict({"0": nn.Linear(10, 4), "b": nn.Linear(10, 4)})

    def forward(self, x):
        x = self.mix(self.stem(x)).mean((2, 3))
        return self.heads["0"](x) + self.heads["b"](x)
'''


@pytest.mark.parametrize("layout", ["auto", "torch"])
def test_module_dict_subclass_with_digit_keys_loads_and_matches_torch(layout):
    result = convert_source(MIXED, "model.py", layout=layout)
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    torch.manual_seed(0)
    torch_model = exec_source(MIXED, "torch_mixed")["Net"]()
    randomize_parameters(torch_model)
    torch_model.eval()
    mlx_model = exec_source(result.code, "mlx_mixed")["Net"]()
    mlx_model.eval()
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok, report.describe()
    assert "mix.0.weight" in report.loaded and "mix.2.bias" in report.loaded and "heads.0.weight" in report.loaded
    x = np.random.RandomState(0).standard_normal((2, 3, 9, 9)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    channels_last = "# MLX layout: inputs x are channels-last" in result.code
    actual = mlx_model(mx.array(np.moveaxis(x, 1, -1) if channels_last else x))
    assert_close(actual, expected, channels_last_output=False)
