"""torchvision densenet's _Transition: an nn.Sequential subclass setting `nn.ReLU(inplace=True)` among its layers
as attributes. It derives from TorchSequential, which runs them in order, so the in-place ReLU is exact
(it was flagged "MLX's nn.Sequential calls only the layers given to its constructor", densenet121's last flag)."""
from tests.test_layout_torch_build import _matches_torch

TRANSITION = """class _Transition(nn.Sequential):
    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), _Transition(6, 4))

    def forward(self, x):
        return self.features(x)
"""


def test_an_inplace_relu_set_on_a_sequential_subclass_runs_in_order_and_matches_torch():
    result = _matches_torch(TRANSITION, lambda ns: ns["Net"](), (2, 3, 8, 8))
    assert "class _Transition(TorchSequential):" in result.code
    assert "self.relu = nn.ReLU()" in result.code
