"""fixtures/models/dcgan.py by hand: NHWC; the generator takes its latent as (N, 1, 1, nz)."""
import mlx.core as mx
import mlx.nn as nn

from .torch_weights import port_weights


class Generator(nn.Module):
    def __init__(self, nz: int = 8, ngf: int = 4, nc: int = 3):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm(ngf * 4), nn.ReLU(),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm(ngf * 2), nn.ReLU(),
            nn.ConvTranspose2d(ngf * 2, nc, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def __call__(self, z: mx.array) -> mx.array:
        return self.main(z)

    @staticmethod
    def torch_weights(state_dict: dict) -> dict:
        return port_weights(state_dict, rename=((r"^main\.", "main.layers."),),
                            transposed=tuple(k for k in state_dict if k.endswith("weight") and state_dict[k].ndim == 4))


class Discriminator(nn.Module):
    def __init__(self, nc: int = 3, ndf: int = 4):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm(ndf * 2), nn.LeakyReLU(0.2),
            nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
        )

    def __call__(self, x: mx.array) -> mx.array:
        return self.main(x).reshape(x.shape[0], -1)

    @staticmethod
    def torch_weights(state_dict: dict) -> dict:
        return port_weights(state_dict, rename=((r"^main\.", "main.layers."),))
