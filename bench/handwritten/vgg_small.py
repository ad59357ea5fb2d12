"""fixtures/models/vgg_small.py by hand: NHWC throughout; the first classifier layer reads the NHWC map."""
import mlx.core as mx
import mlx.nn as nn

from .torch_weights import flatten_nhwc, port_weights


class VGGSmall(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm(16), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Linear(7 * 7 * 16, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, num_classes))

    def __call__(self, x: mx.array) -> mx.array:
        x = self.features(x)
        return self.classifier(x.reshape(x.shape[0], -1))

    @staticmethod
    def torch_weights(state_dict: dict) -> dict:
        weights = port_weights(state_dict, rename=((r"^(features|classifier)\.", r"\1.layers."),))
        weights["classifier.layers.0.weight"] = flatten_nhwc(weights["classifier.layers.0.weight"], 16, 7, 7)
        return weights
