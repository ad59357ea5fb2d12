"""A creation call whose dtype= argument may be None at run time (`dtype=dtype` with `dtype=None` a default, timm's
and torch.ao's `**factory_kwargs`): torch then infers the dtype from the data, int64 for Python ints, where MLX
infers int32. Found on torch/ao/nn/quantized/modules/batchnorm.py (`torch.tensor(0, **factory_kwargs)`), which
also converted differently on a second pass (keyword-dicts expanded the dict after the table had flagged it)."""
import mlx.core as mx
import numpy as np
import torch

from tests.model_support import exec_source, warnings
from torch2mlx import convert_source

SOURCE = '''import torch


def make(dtype=None):
    return torch.tensor([1, 2], dtype=dtype), torch.arange(3, dtype=dtype), torch.tensor(1.5, dtype=dtype)


def factory(device=None, dtype=None):
    factory_kwargs = {"device": device, "dtype": dtype}
    return torch.tensor(0, **factory_kwargs)
'''


def test_ints_with_a_dtype_that_may_be_none_get_torchs_dtype_either_way():
    result = convert_source(SOURCE, "creation.py")
    assert not warnings(result), [d.format() for d in warnings(result)]
    assert convert_source(result.code, "creation.py").code == result.code, "a second pass changed the output"
    torch_ns, mlx_ns = exec_source(SOURCE, "torch_creation"), exec_source(result.code, "mlx_creation")
    for torch_dtype, mlx_dtype in ((None, None), (torch.float32, mx.float32), (torch.int32, mx.int32)):
        expected = [*torch_ns["make"](torch_dtype), torch_ns["factory"](dtype=torch_dtype)]
        actual = [*mlx_ns["make"](mlx_dtype), mlx_ns["factory"](dtype=mlx_dtype)]
        for e, a in zip(expected, actual):
            assert str(e.dtype).split(".")[-1] == str(a.dtype).split(".")[-1], (torch_dtype, e.dtype, a.dtype)
            np.testing.assert_array_equal(np.array(a), e.numpy())


def test_data_of_unknown_type_with_a_dtype_that_may_be_none_is_flagged():
    source = "import torch\n\n\ndef f(x, dtype=None):\n    return torch.tensor(x, dtype=dtype)\n"
    result = convert_source(source, "creation.py")
    assert [d.rule_id for d in warnings(result)] == ["torch.tensor"]
    assert "when `dtype=dtype` is None" in warnings(result)[0].message
    assert torch.tensor([1, 2], dtype=None).dtype == torch.int64 and mx.array([1, 2], dtype=None).dtype == mx.int32


def test_a_dtype_attribute_is_kept_for_int_data():
    source = ("import torch\n\n\nclass A:\n    dtype = torch.float32\n\n    def f(self):\n"
              "        return torch.tensor([1, 2], dtype=self.dtype)\n")
    result = convert_source(source, "creation.py")
    assert not warnings(result)
    got = exec_source(result.code, "mlx_attr")["A"]().f()
    want = exec_source(source, "torch_attr")["A"]().f()
    assert str(want.dtype) == "torch.float32" and got.dtype == mx.float32
    np.testing.assert_array_equal(np.array(got), want.numpy())
