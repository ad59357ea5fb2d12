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
