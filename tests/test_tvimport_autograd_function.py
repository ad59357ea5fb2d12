"""Custom autograd functions (`class X(torch.autograd.Function)` with forward/backward staticmethods), as timm's
layers/activations_me.py writes them (defined at import: the flag on the base kept `import torch` in the module,
and `import timm` failed without torch). The base becomes the local AutogradFunction (runtime-values): forward as
PyTorch's, and MLX's gradient through `apply` is the class's own backward. Run under torch and MLX: values and
gradients."""
from __future__ import annotations

import numpy as np

from torch2mlx import convert_source
from tests.model_support import exec_source, warnings

# timm layers/activations_me.py (HardSwishAutoFn, HardMishAutoFn, with their ONNX `symbolic`), and the two other
# forms PyTorch documents: several inputs with a non-tensor one, and forward without ctx plus setup_context
AUTOGRAD = '''
import torch
from torch import nn as nn


def hard_swish_fwd(x: torch.Tensor):
    return x * (x + 3).clamp(min=0, max=6).div(6.)


def hard_swish_bwd(x: torch.Tensor, grad_output: torch.Tensor):
    m = torch.ones_like(x) * (x >= 3.)
    m = torch.where((x >= -3.) & (x <= 3.),  x / 3. + .5, m)
    return grad_output * m


class HardSwishAutoFn(torch.autograd.Function):
    """A memory efficient HardSwish activation"""
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return hard_swish_fwd(x)

    @staticmethod
    def backward(ctx, grad_output):
        x = ctx.saved_tensors[0]
        return hard_swish_bwd(x, grad_output)

    @staticmethod
    def symbolic(g, self):
        input = g.op("Add", self, g.op('Constant', value_t=torch.tensor(3, dtype=torch.float)))
        return g.op("Mul", self, input)


class HardSwishMe(nn.Module):
    def __init__(self, inplace: bool = False):
        super().__init__()

    def forward(self, x):
        return HardSwishAutoFn.apply(x)


class ScaledProduct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, scale):
        ctx.save_for_backward(a, b)
        ctx.scale = scale
        return a * b * scale, a + b

    @staticmethod
    def backward(ctx, grad_prod, grad_sum):
        a, b = ctx.saved_tensors
        grad_a = grad_prod * b * ctx.scale * 2 + grad_sum if ctx.needs_input_grad[0] else None
        return grad_a, None, None


class Cube(torch.autograd.Function):
    @staticmethod
    def forward(x):
        return x ** 3

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 3 * x ** 2 + 1


def loss(x: torch.Tensor, y: torch.Tensor):
    prod, total = ScaledProduct.apply(x, y, 0.5)
    return torch.sum(HardSwishMe()(x) * 2) + torch.sum(prod) + torch.sum(total * total) + torch.sum(Cube.apply(y))
'''


def test_autograd_functions_match_torch_values_and_gradients():
    import mlx.core as mx
    import torch

    result = convert_source(AUTOGRAD, "activations_me.py")
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    code = result.code
    for line in ("class HardSwishAutoFn(AutogradFunction):", "class ScaledProduct(AutogradFunction):",
                 "class Cube(AutogradFunction):"):
        assert line in code, line
    assert "\nimport torch" not in code and "\nfrom torch" not in code  # the module imports without torch
    assert convert_source(code).code == code, "converting the output again changed it"
    torch_ns, mlx_ns = exec_source(AUTOGRAD, "torch_autograd_fn"), exec_source(code, "mlx_autograd_fn")
    rng = np.random.RandomState(0)
    x = (rng.standard_normal((3, 5)) * 3).astype(np.float32)  # both sides of the hard-swish kinks
    y = rng.standard_normal((3, 5)).astype(np.float32)
    tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    expected = torch_ns["loss"](tx, ty)
    expected.backward()
    value, grads = mx.value_and_grad(mlx_ns["loss"], argnums=(0, 1))(mx.array(x), mx.array(y))
    np.testing.assert_allclose(np.array(value), expected.item(), rtol=1e-4, atol=1e-5)
    # torch's gradients are the backward formulas (not the forward's derivative: Cube's has a +1, ScaledProduct's
    # a factor 2 and none for b), so the MLX ones match only if backward is what MLX differentiates with
    np.testing.assert_allclose(np.array(grads[0]), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.array(grads[1]), ty.grad.numpy(), rtol=1e-4, atol=1e-5)
    # forward alone, outside any transformation, and a call with no array
    np.testing.assert_allclose(np.array(mlx_ns["HardSwishAutoFn"].apply(mx.array(x))),
                               torch_ns["HardSwishAutoFn"].apply(torch.tensor(x)).numpy(), rtol=1e-4, atol=1e-5)
    assert mlx_ns["Cube"].apply(2.0) == torch_ns["Cube"].apply(2.0) == 8.0


def test_autograd_function_name_taken_takes_a_fresh_name():
    source = '''
import torch

AutogradFunction = None


class Twice(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2
'''
    result = convert_source(source, "taken.py")
    assert not warnings(result), [d.format() for d in result.diagnostics]
    assert "class Twice(AutogradFunction_1):" in result.code and "\nAutogradFunction = None\n" in result.code
    import mlx.core as mx

    ns = exec_source(result.code, "mlx_autograd_fn_taken")
    assert ns["AutogradFunction"] is None and np.allclose(np.array(ns["Twice"].apply(mx.array([1.0, 2.0]))), [2.0, 4.0])
