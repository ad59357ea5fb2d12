"""nn-layout follows module classes of the same file that keep feature maps channels-last, checked against torch."""
import textwrap

import numpy as np
import pytest
import torch

from torch2mlx import convert_source, load_torch_weights

mx = pytest.importorskip("mlx.core")

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"

BLOCK = """
class Block(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x))) + x
"""

NET = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = Block(4)
        self.body = nn.Sequential(Block(4), nn.ReLU(), Block(4))
        self.more = nn.Sequential(*[Block(4) for _ in range(2)])
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        x = self.more(self.body(self.first(x)))
        return self.fc(x.flatten(1))
"""


def _convert(*parts: str):
    source = HEADER + "\n\n".join(textwrap.dedent(p).strip() for p in parts) + "\n"
    return source, convert_source(source, layout="channels-last")


def _warnings(result) -> list:
    return [d for d in result.diagnostics if d.severity.value != "info"]


@pytest.mark.parametrize("order", ["block first", "net first"])
def test_net_of_own_blocks_matches_torch(order):
    source, result = _convert(*((BLOCK, NET) if order == "block first" else (NET, BLOCK)))
    assert not _warnings(result), "\n".join(d.format() for d in result.diagnostics) + result.code
    assert "mx.transpose(x, (0, 3, 1, 2))" in result.code  # flatten(1) of the feature map goes back to NCHW first
    torch_ns: dict = {"__name__": "torch_side"}
    mlx_ns: dict = {"__name__": "mlx_side"}
    exec(compile(source, "<torch>", "exec"), torch_ns)  # noqa: S102 - our own test code
    exec(compile(result.code, "<mlx>", "exec"), mlx_ns)  # noqa: S102
    torch.manual_seed(0)
    t_net, m_net = torch_ns["Net"](), mlx_ns["Net"]()
    generator = torch.Generator().manual_seed(1)
    for module in t_net.modules():  # non-trivial batch-norm statistics, so eval really uses them
        if isinstance(module, torch.nn.BatchNorm2d):
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(4, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(4, generator=generator) + 0.5)
    t_net.eval()
    m_net.eval()
    assert load_torch_weights(m_net, t_net.state_dict()).ok
    x = np.sin(np.arange(2 * 4 * 4 * 4, dtype=np.float32) * 0.3).reshape(2, 4, 4, 4)  # C == W: a missed transpose is silent
    with torch.no_grad():
        expected = t_net(torch.from_numpy(x)).numpy()
    assert np.abs(expected).max() > 0.1
    got = np.array(m_net(mx.array(np.moveaxis(x, 1, -1))))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_block_that_does_not_stay_channels_last_is_still_flagged():
    flat = BLOCK.replace("return F.relu(self.bn(self.conv(x))) + x", "return self.conv(x)[:, 0]")
    _, result = _convert(flat, NET)
    assert any(d.rule_id == "nn-layout" for d in _warnings(result)), result.code


def test_rebound_class_name_is_not_trusted():
    _, result = _convert(BLOCK, "Block = nn.Identity", NET)
    lines = result.code.splitlines()
    net = next(i for i, line in enumerate(lines) if line.startswith("class Net("))  # `Block = nn.Identity` is MLX's now
    assert not lines[net - 1].startswith("# MLX layout"), result.code  # Net is not made channels-last
