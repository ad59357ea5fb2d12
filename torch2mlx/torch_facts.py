"""Facts about torch that several parts of the converter read: one home, so they never disagree.

(What an `mx.array` and a `torch.Tensor` have as members lives in array_facts.py, read from the
libraries themselves; the rule table holds per-API facts such as what a function returns.)
"""
from __future__ import annotations

# the classes a torch nn.Module subclass names as its base
MODULE_BASES = frozenset({"torch.nn.Module", "torch.nn.modules.module.Module"})

# torch.nn layers whose call returns a tuple, not a tensor (GRUCell and RNNCell return a tensor)
TUPLE_RETURNING_LAYERS = frozenset({"LSTM", "GRU", "RNN", "MultiheadAttention", "LSTMCell"})
# torch.nn containers: calling one is not calling a layer on a tensor
CONTAINER_LAYERS = frozenset({"ModuleList", "ModuleDict", "ParameterList", "ParameterDict"})

# functions / methods whose result may be a view of (share storage with) their tensor argument
VIEW_OPS = frozenset({
    "view", "view_as", "reshape", "flatten", "squeeze", "unsqueeze", "transpose", "t", "permute",
    "narrow", "select", "expand", "expand_as", "detach", "unbind", "split", "chunk", "as_strided",
    "movedim", "moveaxis", "swapaxes", "swapdims", "diagonal", "unflatten", "as_tensor", "from_numpy",
    "asarray", "frombuffer", "real", "imag", "contiguous", "to", "type_as", "atleast_1d", "atleast_2d",
    "atleast_3d", "broadcast_to", "hsplit", "vsplit", "tensor_split", "ravel", "squeeze_", "view_as_real",
})
# ... and those that may return their argument itself (in eval mode, or when nothing is to be done)
PASS_THROUGH_OPS = VIEW_OPS - {"squeeze_"} | frozenset({
    "broadcast_tensors", "meshgrid", "positive", "dropout", "dropout1d", "dropout2d", "dropout3d",
    "alpha_dropout", "feature_alpha_dropout", "identity",
})

# ops whose out-of-place result is bool: in place (`x.eq_(y)`) torch stores it in the receiver's dtype
BOOL_RESULT_OPS = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "greater", "greater_equal", "less", "less_equal",
                             "not_equal", "logical_not", "logical_and", "logical_or", "logical_xor"})
