"""fixtures/models/unet_small.py by hand: NHWC; skip connections concatenated on the last axis."""
import mlx.core as mx
import mlx.nn as nn

from .torch_weights import port_weights


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm(out_channels), nn.ReLU())


class UNetSmall(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 2, width: int = 4):
        super().__init__()
        self.down1 = conv_bn_relu(in_channels, width)
        self.down2 = conv_bn_relu(width, 2 * width)
        self.bottleneck = conv_bn_relu(2 * width, 4 * width)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, stride=2)
        self.dec2 = conv_bn_relu(4 * width, 2 * width)
        self.up1 = nn.Upsample(scale_factor=2, mode="linear", align_corners=False)
        self.reduce1 = nn.Conv2d(2 * width, width, 1)
        self.dec1 = conv_bn_relu(2 * width, width)
        self.head = nn.Conv2d(width, num_classes, 1)

    def __call__(self, x: mx.array) -> mx.array:
        skip1 = self.down1(x)
        skip2 = self.down2(self.pool(skip1))
        bottom = self.bottleneck(self.pool(skip2))
        d2 = self.dec2(mx.concatenate([self.up2(bottom), skip2], axis=-1))
        d1 = self.dec1(mx.concatenate([self.reduce1(self.up1(d2)), skip1], axis=-1))
        return self.head(d1)

    @staticmethod
    def torch_weights(state_dict: dict) -> dict:
        return port_weights(state_dict, rename=((r"^(down1|down2|bottleneck|dec2|dec1)\.", r"\1.layers."),),
                            transposed=("up2.weight",))
