"""fixtures/models/lenet.py by hand: NHWC throughout; fc1 reads the NHWC map (weights reordered once at load)."""
import mlx.core as mx
import mlx.nn as nn

from .torch_weights import flatten_nhwc, port_weights


class LeNet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(5 * 5 * 16, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def __call__(self, x: mx.array) -> mx.array:
        x = self.pool(nn.relu(self.conv1(x)))
        x = self.pool(nn.relu(self.conv2(x)))
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(self.fc1(x))
        x = nn.relu(self.fc2(x))
        return self.fc3(x)

    @staticmethod
    def torch_weights(state_dict: dict) -> dict:
        weights = port_weights(state_dict)
        weights["fc1.weight"] = flatten_nhwc(weights["fc1.weight"], 16, 5, 5)
        return weights
