"""fixtures/models/mobilenet_small.py by hand: NHWC, depthwise convolutions through groups=."""
import mlx.core as mx
import mlx.nn as nn

from .torch_weights import port_weights


class DepthwiseSeparable(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride=stride, padding=1, groups=in_channels, bias=False)
        self.bn1 = nn.BatchNorm(in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm(out_channels)

    def __call__(self, x: mx.array) -> mx.array:
        x = nn.relu6(self.bn1(self.depthwise(x)))
        return nn.relu6(self.bn2(self.pointwise(x)))


class MobileNetSmall(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm(8), nn.ReLU6())
        self.blocks = nn.Sequential(DepthwiseSeparable(8, 16), DepthwiseSeparable(16, 32, stride=2), DepthwiseSeparable(32, 32))
        self.classifier = nn.Linear(32, num_classes)

    def __call__(self, x: mx.array) -> mx.array:
        x = self.blocks(self.stem(x))
        return self.classifier(x.mean(axis=(1, 2)))

    @staticmethod
    def torch_weights(state_dict: dict) -> dict:
        return port_weights(state_dict, rename=((r"^(stem|blocks)\.", r"\1.layers."),))
