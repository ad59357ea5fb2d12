"""nn.Module classes: `nn-module` (nn_module.py), `jit-markers` (jit_markers.py), and the rule handlers
that write torch-compatible layer classes into the output: containers.py (nn.Sequential, ModuleList,
ModuleDict), rnn.py (LSTM, GRU, RNN and their cells), attention.py (MultiheadAttention, Transformer*),
vision_helpers.py (pixel shuffle, adaptive pooling, interpolate to a size). Their handlers register
themselves with `@register` when `handlers` imports this package (torch2mlx/handlers/__init__.py)."""
