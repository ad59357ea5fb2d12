"""fixtures/models/mlp.py by hand."""
import mlx.core as mx
import mlx.nn as nn

from .torch_weights import port_weights


class MLP(nn.Module):
    def __init__(self, in_features: int, hidden: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, num_classes)

    def __call__(self, x: mx.array) -> mx.array:
        x = x.reshape(x.shape[0], -1)
        h = nn.gelu(self.fc2(self.dropout(nn.relu(self.fc1(x)))))
        return nn.log_softmax(self.head(self.norm(h)))

    @staticmethod
    def torch_weights(state_dict: dict) -> dict:
        return port_weights(state_dict, rename=((r"^net\.0\.", "fc1."), (r"^net\.3\.", "fc2.")))
