"""Channels-last layouts: `nn-layout` (inside nn.Module classes: nn_layout.py with flow.py, ops.py and
tables.py), `nn-script-layers` (outside them: nn_script_layers.py), `nn-conv-checks` (conv / batch-norm
arguments MLX cannot take: nn_conv_checks.py)."""
