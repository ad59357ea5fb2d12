"""Activation modules MLX has no class for: a few readable lines of MLX written into the output file.

`nn.Hardsigmoid()` becomes `Hardsigmoid()` and the class below is added after the imports, once
per file; the same for `Tanhshrink`, `Threshold`, `RReLU` and the softmax family along an axis
other than the last (`nn.Softmax(dim=1)`: MLX's `nn.Softmax` has no axis). Arguments are bound
to torch's signature first, so the rule's `params` (e.g. `inplace`) apply as for any template.
A file that already uses the class name keeps the torch call, flagged.
"""
from __future__ import annotations

import libcst as cst

from torch2mlx.binding import Flag, bind, code_of
from torch2mlx.handlers import register
from torch2mlx.patterns import is_name
from torch2mlx.template import normalize, same_literal, sentinel
from torch2mlx.transforms.codegen import mlx_statements

# class name -> its code; `nn.`/`mx.` are MLX's (rewritten to the file's aliases)
LOCAL_LAYERS = {
    "Hardsigmoid": '''
class Hardsigmoid(nn.Module):
    """PyTorch's Hardsigmoid: relu6(x + 3) / 6 (`inplace` accepted and ignored: MLX arrays are immutable)."""

    def __init__(self, inplace=False):
        super().__init__()

    def __call__(self, x):
        return nn.relu6(x + 3) / 6
''',
    "Tanhshrink": '''
class Tanhshrink(nn.Module):
    """PyTorch's Tanhshrink: x - tanh(x)."""

    def __call__(self, x):
        return x - mx.tanh(x)
''',
    "Threshold": '''
class Threshold(nn.Module):
    """PyTorch's Threshold: x where x > threshold, else value."""

    def __init__(self, threshold, value):
        super().__init__()
        self.threshold, self.value = threshold, value

    def __call__(self, x):
        return mx.where(x > self.threshold, x, self.value)
''',
    "RReLU": '''
class RReLU(nn.Module):
    """PyTorch's RReLU: a random negative slope in [lower, upper] when training, their mean in eval."""

    def __init__(self, lower=1.0 / 8, upper=1.0 / 3):
        super().__init__()
        self.lower, self.upper = lower, upper

    def __call__(self, x):
        if self.training:
            slope = mx.random.uniform(self.lower, self.upper, x.shape, dtype=x.dtype)
        else:
            slope = (self.lower + self.upper) / 2
        return mx.where(x >= 0, x, x * slope)
''',
    "Softmax": '''
class Softmax(nn.Module):
    """PyTorch's Softmax along `dim` (MLX's nn.Softmax works on the last axis only)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def __call__(self, x):
        return mx.softmax(x, axis=self.dim)
''',
    "Softmin": '''
class Softmin(nn.Module):
    """PyTorch's Softmin along `dim` (MLX's nn.Softmin works on the last axis only)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def __call__(self, x):
        return mx.softmax(-x, axis=self.dim)
''',
    "LogSoftmax": '''
class LogSoftmax(nn.Module):
    """PyTorch's LogSoftmax along `dim`, shifted by the max as PyTorch computes it (MLX's nn.LogSoftmax
    works on the last axis only, and its shapeless compile crashes on an axis of size 1)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def __call__(self, x):
        shifted = x - mx.max(x, axis=self.dim, keepdims=True)
        return shifted - mx.logsumexp(shifted, axis=self.dim, keepdims=True)
''',
}


def local_layer_call(name: str, rule, call: cst.Call, rewriter) -> tuple:
    """`Name(<the present arguments, by keyword>)`, with the class added to the file once."""
    bound = normalize(rule, bind(call.args, rule.signature))
    name = rewriter.helper(name, lambda: mlx_statements(rewriter, LOCAL_LAYERS[name].lstrip("\n")), module_only=True)
    args = [cst.Arg(bound.get(p.name), keyword=cst.Name(p.name), equal=cst.AssignEqual(
                whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")))
            for p in rule.signature.params if bound.present(p.name)]
    return cst.Call(cst.Name(name), args), frozenset({"mx", "nn"})


def _local(name: str):
    def handler(rule, original, call, receiver, rewriter):
        return local_layer_call(name, rule, call, rewriter)
    return handler


for _name in ("Hardsigmoid", "Tanhshrink", "Threshold", "RReLU"):
    register(f"local_{_name.lower()}")(_local(_name))


def _softmax_family(name: str):
    def handler(rule, original, call, receiver, rewriter):
        bound = bind(call.args, rule.signature)
        if not bound.present("dim") or is_name(bound.get("dim"), "None"):
            raise Flag(f"nn.{name} without dim uses torch's deprecated implicit axis; pass dim=")
        if same_literal(code_of(bound.get("dim")), "-1") and name != "LogSoftmax":
            return cst.parse_expression(f"{sentinel('nn')}.{name}()"), frozenset({"nn"})
        return local_layer_call(name, rule, call, rewriter)
    return handler


for _name in ("Softmax", "Softmin", "LogSoftmax"):
    register(f"local_{_name.lower()}")(_softmax_family(_name))
