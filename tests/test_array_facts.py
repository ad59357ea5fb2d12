"""The closed-world member lists match the installed mlx and torch."""
import mlx.core as mx
import torch

from torch2mlx.array_facts import MLX_ARRAY_MEMBERS, TORCH_TENSOR_MEMBERS


def _public(cls) -> frozenset:
    return frozenset(n for n in dir(cls) if not n.startswith("_"))


def test_mlx_array_members_are_mlx_own():
    actual = _public(mx.array)
    assert MLX_ARRAY_MEMBERS == actual, f"paste into torch2mlx/array_facts.py: {sorted(actual)}"


def test_torch_tensor_members_are_torch_own():
    actual = _public(torch.Tensor)
    assert TORCH_TENSOR_MEMBERS == actual, f"paste into torch2mlx/array_facts.py: {sorted(actual)}"


def test_mlx_names_whose_result_is_no_array_exist_in_mlx():
    """A misspelt name would make converted code's `mx.<name>(...)` an array where it is not."""
    import mlx.nn as nn

    from torch2mlx.array_facts import MLX_NN_NON_ARRAY_LAYERS, MX_NON_ARRAY_FUNCTIONS

    namespaces = (mx, mx.random, mx.metal)  # the last name of `mx.<...>.<name>(...)`: mx.random.seed too
    assert not {n for n in MX_NON_ARRAY_FUNCTIONS if not any(callable(getattr(ns, n, None)) for ns in namespaces)}
    assert not {n for n in MLX_NN_NON_ARRAY_LAYERS if not isinstance(getattr(nn, n, None), type)}
    assert not isinstance(mx.finfo(mx.float32), mx.array) and not isinstance(mx.default_device(), mx.array)
