"""Numbers known at conversion time, for init arguments: `0.02`, `-2.`, `math.sqrt(5)`, `1 / 3`.

torch computes kaiming's gain and trunc_normal_'s standardised bounds from these; translating
them means doing the same arithmetic here, so only literal arithmetic (and `math.sqrt` of it)
is evaluated. Anything else is None (the caller flags or keeps an expression).
"""
from __future__ import annotations

import ast
import math
import operator
from typing import Optional, Union

Number = Union[int, float]
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}


def literal_number(code: str) -> Optional[Number]:
    """The value of literal arithmetic source (`math.sqrt` allowed), else None."""
    try:
        node = ast.parse(code.strip(), mode="eval").body
        return _evaluate(node)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None


def _evaluate(node: ast.expr) -> Optional[Number]:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand)
        return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        return None if left is None or right is None else _BINARY[type(node.op)](left, right)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "sqrt"
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "math"
            and len(node.args) == 1 and not node.keywords):
        value = _evaluate(node.args[0])
        return None if value is None else math.sqrt(value)
    return None


def string_literal(code: str) -> Optional[str]:
    try:
        node = ast.parse(code.strip(), mode="eval").body
    except SyntaxError:
        return None
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def calculate_gain(nonlinearity: str, param: Optional[Number]) -> Optional[float]:
    """torch.nn.init.calculate_gain, or None where torch raises (the call is then left flagged)."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                        "conv_transpose3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    return None
