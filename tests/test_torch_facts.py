"""torch_facts.py, checked against torch: a wrong entry fails here, not as a silently wrong translation."""
import pytest

torch = pytest.importorskip("torch")

from torch2mlx.array_facts import TORCH_TENSOR_MEMBERS  # noqa: E402
from torch2mlx.torch_facts import (  # noqa: E402
    CONTAINER_LAYERS, FRESH_METHODS, MODULE_BASES, NON_TENSOR_MODULES, TUPLE_RETURNING_LAYERS, VALUE_ATTRIBUTES,
)

# arguments for the methods that need some (x is 3 x 3; bmm gets a batch)
_ARGS = {"add": (1.0,), "sub": (1.0,), "mul": (2.0,), "div": (2.0,), "pow": (2,), "mm": "x", "matmul": "x",
         "softmax": (0,), "log_softmax": (0,), "new_zeros": ((2,),), "new_ones": ((2,),), "new_full": ((2,), 1.0),
         "new_empty": ((2,),), "new_tensor": ([1.0],),
         # arguments that change nothing: a copy all the same
         "repeat": (1, 1), "repeat_interleave": (1,), "flip": (0,), "roll": (0,), "cumsum": (0,), "cumprod": (0,),
         "masked_fill": (torch.zeros(3, 3, dtype=torch.bool), 0.0), "gather": (0, torch.arange(3).expand(3, 3)),
         "index_select": (0, torch.arange(3)), "clamp": (-100.0,), "clip": (-100.0,)}


def _resolve(qualified: str):
    obj = __import__(qualified.split(".")[0])
    for part in qualified.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


def test_module_bases_are_torch_nn_module():
    assert {_resolve(q) for q in MODULE_BASES} == {torch.nn.Module}


@pytest.mark.parametrize("name, build, call", [
    ("LSTM", lambda: torch.nn.LSTM(3, 4), lambda m: m(torch.randn(2, 1, 3))),
    ("GRU", lambda: torch.nn.GRU(3, 4), lambda m: m(torch.randn(2, 1, 3))),
    ("RNN", lambda: torch.nn.RNN(3, 4), lambda m: m(torch.randn(2, 1, 3))),
    ("LSTMCell", lambda: torch.nn.LSTMCell(3, 4), lambda m: m(torch.randn(1, 3))),
    ("MultiheadAttention", lambda: torch.nn.MultiheadAttention(4, 2), lambda m: m(*[torch.randn(2, 1, 4)] * 3)),
    ("GRUCell", lambda: torch.nn.GRUCell(3, 4), lambda m: m(torch.randn(1, 3))),
    ("RNNCell", lambda: torch.nn.RNNCell(3, 4), lambda m: m(torch.randn(1, 3))),
])
def test_tuple_returning_layers_are_those_returning_tuples(name, build, call):
    assert isinstance(call(build()), tuple) == (name in TUPLE_RETURNING_LAYERS)


def test_non_tensor_modules_are_torch_layers():
    assert {q.rpartition(".")[2] for q in NON_TENSOR_MODULES} == TUPLE_RETURNING_LAYERS | CONTAINER_LAYERS
    assert all(isinstance(_resolve(q), type) and issubclass(_resolve(q), torch.nn.Module) for q in NON_TENSOR_MODULES)


@pytest.mark.parametrize("method", sorted(FRESH_METHODS))
def test_fresh_methods_never_share_the_receiver_s_storage(method):
    assert method in TORCH_TENSOR_MEMBERS
    x = torch.randn(2, 3, 3) if method == "bmm" else torch.randn(1) if method == "item" else torch.randn(3, 3)
    args = _ARGS.get(method, ())
    args = (x,) if args == "x" or method == "bmm" else args
    result = getattr(x, method)(*args)
    for value in result if isinstance(result, tuple) else (result,):
        if isinstance(value, torch.Tensor):
            assert value.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()


@pytest.mark.parametrize("name", sorted(VALUE_ATTRIBUTES))
def test_value_attributes_hold_no_tensor(name):
    assert name in TORCH_TENSOR_MEMBERS
    assert not isinstance(getattr(torch.randn(2), name), torch.Tensor)
