"""In-place updates: `inplace-op` (ops.py: `x.add_(y)`, `x[i] = v`, ...) and `nn-inplace-activation`
(activation.py: `inplace=True` layers and functions, with the flow analysis in flow.py)."""
