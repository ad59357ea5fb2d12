"""fixtures/models/vae.py by hand."""
import mlx.core as mx
import mlx.nn as nn

from .torch_weights import port_weights


class VAE(nn.Module):
    def __init__(self, input_dim: int = 784, hidden_dim: int = 400, latent_dim: int = 20):
        super().__init__()
        self.input_dim = input_dim
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, latent_dim)
        self.fc22 = nn.Linear(hidden_dim, latent_dim)
        self.fc3 = nn.Linear(latent_dim, hidden_dim)
        self.fc4 = nn.Linear(hidden_dim, input_dim)

    def __call__(self, x: mx.array) -> tuple:
        h = nn.relu(self.fc1(x.reshape(-1, self.input_dim)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + mx.random.normal(mu.shape) * mx.exp(0.5 * logvar) if self.training else mu
        return mx.sigmoid(self.fc4(nn.relu(self.fc3(z)))), mu, logvar

    @staticmethod
    def torch_weights(state_dict: dict) -> dict:
        return port_weights(state_dict)
