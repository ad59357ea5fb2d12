"""fixtures/models/resnet_block.py by hand: NHWC; returns the logits and the NHWC feature map."""
import mlx.core as mx
import mlx.nn as nn

from .torch_weights import port_weights


class TinyResNet(nn.Module):
    def __init__(self, channels: int = 8, num_classes: int = 5):
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm(channels, eps=1e-3, momentum=0.2)
        self.down = nn.Conv2d(channels, 2 * channels, 1, stride=2)
        self.fc = nn.Linear(2 * channels, num_classes)

    def __call__(self, x: mx.array) -> tuple:
        x = nn.relu(self.bn0(self.stem(x)))
        out = nn.relu(self.bn1(self.conv1(x)))
        out = nn.relu(self.bn2(self.conv2(out)) + x)
        feats = self.down(out)
        return self.fc(feats.mean(axis=(1, 2))), feats

    @staticmethod
    def torch_weights(state_dict: dict) -> dict:
        return port_weights(state_dict)
