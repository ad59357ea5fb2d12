"""nn.LSTM / nn.GRU / nn.RNN: a local, torch-compatible recurrent layer written into the output file.

**What it does**: `nn.LSTM(10, 20, num_layers=2, batch_first=True)` becomes
`MultiLayerRNN("LSTM", 10, 20, num_layers=2, batch_first=True)`, and the class
`MultiLayerRNN` (about 70 readable lines of MLX) is added after the imports, once per file.

**Why not mlx.nn.LSTM**: MLX's recurrent layers are single-layer, batch-first, one-directional,
return `(hidden, cell)` sequences instead of `output, (h_n, c_n)`, and keep one bias and
differently named weights. The local class follows torch exactly: `num_layers`, `batch_first`,
`bidirectional`, `dropout` between layers (training mode only), unbatched input, an optional
initial state, the same return values and torch's parameter names (`weight_ih_l0`,
`bias_hh_l1_reverse`, ...), so a torch state_dict loads without renaming.

`nn.LSTMCell` / `nn.GRUCell` / `nn.RNNCell` become `RecurrentCell("LSTM", ...)` etc.: one time
step with the same gate code, torch's names (`weight_ih`, `bias_hh`), `(h, c)` or `h` returned,
unbatched input accepted.

**Left in place when**: `proj_size` is given (LSTM projections) or `dtype=`. Where the file uses the
name `MultiLayerRNN` / `RecurrentCell` already, the local class gets a fresh one (`MultiLayerRNN_1`).
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Flag
from torch2mlx.handlers import register
from torch2mlx.patterns import is_integer
from torch2mlx.transforms.codegen import mlx_statements

CLASS_NAME = "MultiLayerRNN"

# one time step of every mode: shared by the stacked layer and the single cell
_CELL_METHOD = '''    def _input_gates(self, x, w_ih, b_ih, b_hh):
        """x @ w_ih.T plus the biases, once for all steps (GRU keeps b_hh apart: r scales it)."""
        gates = x @ w_ih.T
        if b_ih is not None:
            gates = gates + b_ih
        if b_hh is not None and self.mode != "GRU":
            gates, b_hh = gates + b_hh, None
        return gates, b_hh

    def _cell(self, x_gates, h, c, w_hh_t, b_hh):
        if self.mode == "LSTM":
            i, f, g, o = mx.split(mx.addmm(x_gates, h, w_hh_t), 4, axis=-1)
            c = mx.sigmoid(f) * c + mx.sigmoid(i) * mx.tanh(g)
            return mx.sigmoid(o) * mx.tanh(c), c
        if self.mode == "GRU":
            h_gates = mx.addmm(b_hh, h, w_hh_t) if b_hh is not None else h @ w_hh_t
            xr, xz, xn = mx.split(x_gates, 3, axis=-1)
            hr, hz, hn = mx.split(h_gates, 3, axis=-1)
            r, z = mx.sigmoid(xr + hr), mx.sigmoid(xz + hz)
            n = mx.tanh(xn + r * hn)
            return (1 - z) * n + z * h, c
        pre = mx.addmm(x_gates, h, w_hh_t)
        return (mx.tanh(pre) if self.mode == "RNN_TANH" else mx.maximum(pre, 0)), c
'''

LOCAL_RNN = '''
class MultiLayerRNN(nn.Module):
    """PyTorch-style LSTM / GRU / RNN on MLX: stacked, batch_first, bidirectional, same weight names."""

    GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, nonlinearity="tanh"):
        super().__init__()
        self.mode = "RNN_" + nonlinearity.upper() if mode == "RNN" else mode
        self.hidden_size, self.num_layers, self.batch_first = hidden_size, num_layers, batch_first
        self.directions = 2 if bidirectional else 1
        self.dropout = nn.Dropout(dropout)
        gates = self.GATES[self.mode] * hidden_size
        bound = 1.0 / hidden_size ** 0.5
        for layer in range(num_layers):
            size = input_size if layer == 0 else hidden_size * self.directions
            for suffix in ["", "_reverse"][: self.directions]:
                shapes = {"weight_ih": (gates, size), "weight_hh": (gates, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(gates,), bias_hh=(gates,))
                for name, shape in shapes.items():
                    setattr(self, f"{name}_l{layer}{suffix}", mx.random.uniform(-bound, bound, shape))

{cell_method}
    def __call__(self, x, state=None):
        unbatched = x.ndim == 2
        if unbatched:
            x = mx.expand_dims(x, 1)
        elif self.batch_first:
            x = mx.swapaxes(x, 0, 1)  # (L, N, D) from here on
        length, batch = x.shape[0], x.shape[1]
        zeros = mx.zeros((self.num_layers * self.directions, batch, self.hidden_size), dtype=x.dtype)
        if self.mode == "LSTM":
            h0, c0 = state if state is not None else (zeros, zeros)
        else:
            h0, c0 = (state if state is not None else zeros), zeros
        if unbatched and state is not None:
            h0, c0 = mx.expand_dims(h0, 1), mx.expand_dims(c0, 1)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction, suffix in enumerate(["", "_reverse"][: self.directions]):
                get = lambda name: getattr(self, f"{name}_l{layer}{suffix}", None)  # noqa: E731
                x_gates, b_hh = self._input_gates(x, get("weight_ih"), get("bias_ih"), get("bias_hh"))
                w_hh_t = get("weight_hh").T
                h, c = h0[layer * self.directions + direction], c0[layer * self.directions + direction]
                steps = range(length) if direction == 0 else range(length - 1, -1, -1)
                ys = [None] * length
                for t in steps:
                    h, c = self._cell(x_gates[t], h, c, w_hh_t, b_hh)
                    ys[t] = h
                outputs.append(mx.stack(ys))
                h_n.append(h)
                c_n.append(c)
            x = mx.concatenate(outputs, axis=-1) if self.directions == 2 else outputs[0]
            if layer < self.num_layers - 1:
                x = self.dropout(x)
        h_n, c_n = mx.stack(h_n), mx.stack(c_n)
        if unbatched:
            x, h_n, c_n = x[:, 0], h_n[:, 0], c_n[:, 0]
        elif self.batch_first:
            x = mx.swapaxes(x, 0, 1)
        return x, ((h_n, c_n) if self.mode == "LSTM" else h_n)
'''.replace("{cell_method}", _CELL_METHOD)

CELL_CLASS_NAME = "RecurrentCell"

LOCAL_CELL = '''
class RecurrentCell(nn.Module):
    """PyTorch-style LSTMCell / GRUCell / RNNCell on MLX: one time step, same weight names."""

    GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}

    def __init__(self, mode, input_size, hidden_size, bias=True, nonlinearity="tanh"):
        super().__init__()
        self.mode = "RNN_" + nonlinearity.upper() if mode == "RNN" else mode
        self.hidden_size = hidden_size
        gates = self.GATES[self.mode] * hidden_size
        bound = 1.0 / hidden_size ** 0.5
        shapes = {"weight_ih": (gates, input_size), "weight_hh": (gates, hidden_size)}
        if bias:
            shapes.update(bias_ih=(gates,), bias_hh=(gates,))
        for name, shape in shapes.items():
            setattr(self, name, mx.random.uniform(-bound, bound, shape))

{cell_method}
    def __call__(self, x, state=None):
        unbatched = x.ndim == 1
        if unbatched:
            x = mx.expand_dims(x, 0)
        zeros = mx.zeros((x.shape[0], self.hidden_size), dtype=x.dtype)
        if self.mode == "LSTM":
            h, c = state if state is not None else (zeros, zeros)
        else:
            h, c = (state if state is not None else zeros), zeros
        if unbatched and state is not None:
            h, c = mx.expand_dims(h, 0), mx.expand_dims(c, 0)
        x_gates, b_hh = self._input_gates(x, self.weight_ih, self.get("bias_ih"), self.get("bias_hh"))
        h, c = self._cell(x_gates, h, c, self.weight_hh.T, b_hh)
        if unbatched:
            h, c = h[0], c[0]
        return (h, c) if self.mode == "LSTM" else h
'''.replace("{cell_method}", _CELL_METHOD)

_DROPPED = frozenset({"device"})


# the class each kind of call becomes, with its code and the most positional arguments torch's
# signature lets through before `nonlinearity` (nn.RNN's and nn.RNNCell's next parameter)
_LOCAL_CLASSES = {"layer": (CLASS_NAME, LOCAL_RNN, 3), "cell": (CELL_CLASS_NAME, LOCAL_CELL, 2)}


def _local_rnn(mode: str, original: cst.Call, call: cst.Call, rewriter, kind: str = "layer"):
    class_name, code, rnn_positionals = _LOCAL_CLASSES[kind]
    args = []
    for arg in call.args:
        key = arg.keyword.value if arg.keyword is not None else None
        if arg.star:
            raise Flag(f"cannot check {arg.star}-arguments of nn.{mode}")
        if key in _DROPPED:
            continue
        if key == "dtype":
            raise Flag(f"the local {class_name} has no dtype argument; call .set_dtype() on the module")
        if key == "proj_size" and not is_integer(arg.value, "0"):
            raise Flag("LSTM projections (proj_size) are not implemented by the local recurrent layer", "no-equivalent")
        if key == "nonlinearity" and mode != "RNN":
            raise Flag(f"unknown argument 'nonlinearity' for nn.{mode}")
        if key == "proj_size":
            continue
        args.append(arg.with_changes(comma=cst.MaybeSentinel.DEFAULT, whitespace_after_arg=cst.SimpleWhitespace("")))
    if mode == "RNN" and len([a for a in args if a.keyword is None]) > rnn_positionals:
        raise Flag(f"nn.RNN{'Cell' if kind == 'cell' else ''}'s argument after the first {rnn_positionals} "
                   "positional ones is nonlinearity: pass it and the later ones by keyword")
    class_name = rewriter.helper(class_name, lambda: mlx_statements(rewriter, code.lstrip("\n")))
    mode_arg = cst.Arg(cst.SimpleString(f'"{mode}"'))
    return cst.Call(func=cst.Name(class_name), args=[mode_arg, *args]), frozenset({"mx", "nn"})


# handler name -> (torch mode, which local class)
_HANDLERS = {
    "nn_lstm": ("LSTM", "layer"), "nn_gru": ("GRU", "layer"), "nn_rnn": ("RNN", "layer"),
    "nn_lstm_cell": ("LSTM", "cell"), "nn_gru_cell": ("GRU", "cell"), "nn_rnn_cell": ("RNN", "cell"),
}


def _handler(mode: str, kind: str):
    def handler(rule, original, call, receiver, rewriter):
        return _local_rnn(mode, original, call, rewriter, kind)
    return handler


for _key, (_mode, _kind) in _HANDLERS.items():
    register(_key)(_handler(_mode, _kind))
