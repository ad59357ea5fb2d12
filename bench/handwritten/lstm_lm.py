"""fixtures/models/lstm_lm.py by hand: one mlx.nn.LSTM per layer (batch-first), the two torch biases summed."""
import mlx.core as mx
import mlx.nn as nn

from .torch_weights import port_weights


class RNNModel(nn.Module):
    def __init__(self, ntoken: int, ninp: int, nhid: int, nlayers: int, dropout: float = 0.5):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.layers = [nn.LSTM(ninp if i == 0 else nhid, nhid) for i in range(nlayers)]
        self.decoder = nn.Linear(nhid, ntoken)

    def __call__(self, tokens: mx.array, hidden: tuple) -> tuple:
        """tokens (L, N) and hidden ((layers, N, H), (layers, N, H)), as the torch model takes them."""
        h0, c0 = hidden
        x = self.drop(self.encoder(tokens.T))  # (N, L, D): nn.LSTM is batch-first
        h_n, c_n = [], []
        for i, lstm in enumerate(self.layers):
            if i:
                x = self.drop(x)
            x, cells = lstm(x, h0[i], c0[i])
            h_n.append(x[:, -1])
            c_n.append(cells[:, -1])
        decoded = self.decoder(self.drop(x.transpose(1, 0, 2)))
        return nn.log_softmax(decoded.reshape(-1, self.ntoken), axis=1), (mx.stack(h_n), mx.stack(c_n))

    @staticmethod
    def torch_weights(state_dict: dict) -> dict:
        weights = port_weights(state_dict, rename=((r"^rnn\.weight_ih_l(\d+)$", r"layers.\1.Wx"),
                                                   (r"^rnn\.weight_hh_l(\d+)$", r"layers.\1.Wh")))
        for layer in range(sum(key.endswith(".Wx") for key in weights)):
            weights[f"layers.{layer}.bias"] = weights.pop(f"rnn.bias_ih_l{layer}") + weights.pop(f"rnn.bias_hh_l{layer}")
        return weights
