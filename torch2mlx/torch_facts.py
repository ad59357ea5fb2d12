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
# ... both by qualified name: `self.x = nn.<one of these>(...)` is no layer taking and giving a tensor
NON_TENSOR_MODULES = frozenset(f"torch.nn.{name}" for name in TUPLE_RETURNING_LAYERS | CONTAINER_LAYERS)

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

# Tensor methods whose result never shares storage with the receiver: a new tensor, or a Python value
FRESH_METHODS = frozenset({
    "clone", "add", "sub", "mul", "div", "matmul", "mm", "bmm", "exp", "log", "sqrt", "abs", "neg",
    "sum", "mean", "pow", "softmax", "log_softmax", "argmax", "argmin", "sigmoid", "tanh", "relu",
    "new_zeros", "new_ones", "new_full", "new_empty", "new_tensor", "size", "dim", "numel", "item",
    "tolist", "stride", "is_contiguous", "max", "min", "std", "var", "norm", "amax", "amin",
    # always a new tensor in torch (never the receiver, whatever its dtype or shape)
    "repeat", "repeat_interleave", "flip", "roll", "cumsum", "cumprod", "masked_fill", "gather", "index_select",
    "tril", "triu", "clamp", "clip",
})
# Tensor attributes that are plain values (reading one keeps no reference to the storage)
VALUE_ATTRIBUTES = frozenset({"shape", "dtype", "device", "ndim", "is_cuda", "requires_grad"})

# ops whose out-of-place result is bool: in place (`x.eq_(y)`) torch stores it in the receiver's dtype
BOOL_RESULT_OPS = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "greater", "greater_equal", "less", "less_equal",
                             "not_equal", "logical_not", "logical_and", "logical_or", "logical_xor"})


# decorators that return the function itself in eager torch; the conversion removes them (a converted def is undecorated)
JIT_MARKERS = {  # decorator -> keyword arguments its call form may carry
    "torch.jit.ignore": {"drop"}, "torch.jit.unused": set(), "torch.jit.export": set(),
    "torch.jit.script": set(), "torch.jit.script_if_tracing": set(),
    "torch.compiler.disable": {"recursive", "reason"}, "torch._dynamo.disable": {"recursive", "reason"},
}
SCRIPT_IF_TRACING = ("torch.jit._script_if_tracing", "torch.jit._script._script_if_tracing", "torch.jit._overload",
                     "torch.jit._overload_method", "torch._jit_internal._overload", "torch._jit_internal._overload_method")
GRAD_CONTEXTS = frozenset({"torch.no_grad", "torch.inference_mode", "torch.enable_grad", "torch.autograd.no_grad",
                           "torch.autograd.grad_mode.no_grad", "torch.autograd.grad_mode.inference_mode"})
# methods torch.nn.Module shares with torch.Tensor (set(dir(nn.Module)) & set(dir(Tensor)), torch 2.13): on a receiver
# not known to be a tensor, their result may be the module
MODULE_TENSOR_METHODS = frozenset({"bfloat16", "cpu", "cuda", "double", "float", "half", "ipu", "mtia", "requires_grad_",
                                   "to", "type", "xpu"})

# attributes of torch.nn layers that always hold a Python int, by class name (the constructor stores `int(arg)` or
# a count it computed; an instance keeps them unless the code rebinds them): `torch.arange(self.emb.num_embeddings)`
# is int64 in torch (value_facts reads `self.x.<attr>` as an int where every store of `self.x` builds one of these
# classes, or a class of the file deriving from it that stores no such attribute). tests/test_torch_facts.py checks
# each against torch.
LAYER_INT_ATTRIBUTES = {
    "Embedding": ("num_embeddings", "embedding_dim"),
    "Linear": ("in_features", "out_features"),
    "Bilinear": ("in1_features", "in2_features", "out_features"),
    **{f"Conv{n}d": ("in_channels", "out_channels", "groups") for n in (1, 2, 3)},
    **{f"ConvTranspose{n}d": ("in_channels", "out_channels", "groups") for n in (1, 2, 3)},
    **{f"BatchNorm{n}d": ("num_features",) for n in (1, 2, 3)},
    "GroupNorm": ("num_groups", "num_channels"),
    "MultiheadAttention": ("embed_dim", "num_heads", "head_dim"),
}
