"""inplace-op: the VALUE of an in-place update of a parameter (timm's layers/activations.py: `return x.sigmoid_() if
self.inplace else x.sigmoid()`, `x.mul_(x.sigmoid())`, `x.add_(3.).clamp_(0., 6.).div_(6.)`; fastvit's
LayerScale2d: `x.mul_(self.gamma)`) becomes `update_whole(x, <new value>)`: the caller's array object gets the new
contents (MLX item assignment, which every reference to that object sees, as torch's update of the caller's
tensor), and the value is that object.

Each case is the idiom as timm writes it (reduced), run under torch and under MLX with a caller that keeps another
reference to the tensor it passes: the caller's reference must see the update in both. Where the function keeps a
view of the parameter, or a caller in the file passes a view, the update stays flagged (torch's view shares storage,
an MLX slice is a copy).
"""
import textwrap

import numpy as np
import pytest

from torch2mlx import convert_source
from torch2mlx.verify import compare, to_numpy

# timm 1.0.31 layers/activations.py (swish, sigmoid, Sigmoid, hard_swish, hard_sigmoid) and models/fastvit.py
# (LayerScale2d), reduced to what the idiom needs
TIMM = '''
import torch
from torch import nn as nn
from torch.nn import functional as F


def swish(x, inplace: bool = False):
    return x.mul_(x.sigmoid()) if inplace else x.mul(x.sigmoid())


def sigmoid(x, inplace: bool = False):
    return x.sigmoid_() if inplace else x.sigmoid()


class Sigmoid(nn.Module):
    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return x.sigmoid_() if self.inplace else x.sigmoid()


def hard_swish(x, inplace: bool = False):
    inner = F.relu6(x + 3.).div_(6.)
    return x.mul_(inner) if inplace else x.mul(inner)


def hard_sigmoid(x, inplace: bool = False):
    if inplace:
        return x.add_(3.).clamp_(0., 6.).div_(6.)
    else:
        return F.relu6(x + 3.) / 6.


class LayerScale2d(nn.Module):
    def __init__(self, dim: int, init_values: float = 1e-5, inplace: bool = False):
        super().__init__()
        self.inplace = inplace
        self.gamma = nn.Parameter(init_values * torch.ones(dim, 1, 1))

    def forward(self, x):
        return x.mul_(self.gamma) if self.inplace else x * self.gamma


def twice(x):
    return x + x.mul_(2)  # torch reads the updated tensor on both sides (the left operand is the same object)


def example(a, kind, inplace):
    kept = a  # another reference to the caller's tensor: it sees torch's in-place update
    if kind == "swish":
        out = swish(a, inplace)
    elif kind == "sigmoid":
        out = sigmoid(a, inplace)
    elif kind == "Sigmoid":
        out = Sigmoid(inplace)(a)
    elif kind == "hard_swish":
        out = hard_swish(a, inplace)
    elif kind == "hard_sigmoid":
        out = hard_sigmoid(a, inplace)
    elif kind == "LayerScale2d":
        layer = LayerScale2d(3, 0.5, inplace)
        out = layer(a)
    else:
        out = twice(a)
    return out, kept, out is kept
'''

KINDS = ["swish", "sigmoid", "Sigmoid", "hard_swish", "hard_sigmoid", "LayerScale2d", "twice"]


def _run(source: str, framework: str, **inputs):
    namespace: dict = {"__name__": "example"}
    exec(compile(source, f"<{framework}>", "exec"), namespace)  # noqa: S102 - our own examples
    if framework == "torch":
        import torch
        args = {k: torch.from_numpy(v.copy()) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
    else:
        import mlx.core as mx
        args = {k: mx.array(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
    out, kept, same = namespace["example"](**args)
    return to_numpy(out), to_numpy(kept), same


def _warnings(result) -> list:
    return [d for d in result.diagnostics if d.severity.value != "info"]


@pytest.fixture(scope="module")
def converted():
    result = convert_source(TIMM)
    assert not _warnings(result), "\n".join(d.format() for d in _warnings(result)) + "\n" + result.code
    assert "import torch" not in result.code, result.code
    return result


def test_timm_idioms_translate_to_whole_updates(converted):
    code = converted.code
    assert "update_whole(x, mx.sigmoid(x)) if self.inplace else mx.sigmoid(x)" in code, code
    # each link of the chain updates x again: the value of the last one is x's object
    assert code.count("update_whole(x, ") >= 8, code
    # an info note says what the translation assumes about callers in other files
    notes = [d for d in converted.diagnostics if d.rule_id == "inplace-op" and d.severity.value == "info"]
    assert notes and all("view" in d.message for d in notes), notes
    assert convert_source(code).code == code  # idempotent: the helper is already MLX


@pytest.mark.parametrize("inplace", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_caller_sees_the_same_update_as_in_torch(converted, kind, inplace):
    rng = np.random.RandomState(3)
    a = rng.standard_normal((2, 3, 4, 5)).astype(np.float32) * 4
    t_out, t_kept, t_same = _run(TIMM, "torch", a=a, kind=kind, inplace=inplace)
    m_out, m_kept, m_same = _run(converted.code, "mlx", a=a, kind=kind, inplace=inplace)
    assert compare(t_out, m_out) is None, compare(t_out, m_out)
    assert compare(t_kept, m_kept) is None, compare(t_kept, m_kept)  # the caller's other reference
    assert t_same == m_same  # the value is the caller's own object exactly when it is in torch
    if inplace or kind == "twice":
        assert not np.allclose(t_kept, a)  # the case does update in place (it can tell the forms apart)


def test_dtype_of_the_callers_array_is_kept():
    source = textwrap.dedent('''
        import torch


        def gate(x):
            return x.gt_(0.5)  # torch writes the comparison into x's dtype


        def example(a, kind, inplace):
            kept = a
            out = gate(a)
            return out, kept, out is kept
    ''')
    result = convert_source(source)
    assert not _warnings(result), "\n".join(d.format() for d in _warnings(result)) + "\n" + result.code
    a = np.linspace(0, 1, 12, dtype=np.float16).reshape(3, 4)
    t_out, t_kept, t_same = _run(source, "torch", a=a, kind="", inplace=True)
    m_out, m_kept, m_same = _run(result.code, "mlx", a=a, kind="", inplace=True)
    assert t_out.dtype == m_out.dtype == m_kept.dtype == np.float16
    assert compare(t_out, m_out) is None and compare(t_kept, m_kept) is None
    assert t_same and m_same


FLAGGED = [
    # the function keeps a view of its parameter: torch's view sees the update, an MLX slice is a copy
    ("def f(x):\n    first = x[0]\n    return x.sigmoid_() + first\n", "view `x[0]` is kept"),
    ("def f(x):\n    flat = x.view(-1)\n    return x.mul_(2), flat\n", "view `x.view(-1)` is kept"),
    # the shape would change: the whole-array assignment would broadcast into the old shape
    ("def f(x):\n    return x.squeeze_()\n", "changes the shape"),
    # the parameter is rebound: the name no longer holds the caller's tensor
    ("def f(x, y):\n    if y is not None:\n        x = y\n    return x.sigmoid_()\n", "rebound"),
    # the parameter's object reaches another name, a container or an unknown call, where a view of it may be made
    ("def f(x):\n    y = x\n    first = y[0]\n    return x.sigmoid_() + first\n", "is assigned to another name"),
    ("def f(x):\n    y = x\n    first = y[0]\n    x.sigmoid_()\n    return first\n", "is assigned to another name"),
    ("def f(x):\n    parts = [x]\n    first = parts[0][0]\n    return x.tanh_(), first\n", "is stored in a container"),
    ("def f(x, keep):\n    keep(x)\n    return x.mul_(2)\n", "is passed to `keep(...)`"),
    # a caller in this file passes a view (whose base it reads after) to a function updating its parameter
    ("def act(x):\n    return x.sigmoid_()\n\n\ndef g(w):\n    act(w[0])\n    return w\n", "`w[0]` is a view"),
    ("def act(x, inplace=True):\n    return x.tanh_() if inplace else x.tanh()\n\n\ndef g(w):\n    y = act(w.t())\n    return w, y\n",
     "`w.t()` is a view"),
]


@pytest.mark.parametrize("body,why", FLAGGED, ids=[w for _, w in FLAGGED])
def test_flagged_where_the_caller_could_see_a_difference(body, why):
    result = convert_source("import torch\n\n\n" + body)
    messages = [d.message for d in _warnings(result) if d.rule_id == "inplace-op"]
    assert any(why in m for m in messages), (messages, result.code)


def test_a_view_of_another_name_really_differs():
    """Why `y = x; first = y[0]` stays flagged: torch's `first` views x's storage, MLX's is a copy of it."""
    import torch

    x = torch.zeros(2, 3)
    y = x
    first = y[0]
    x.sigmoid_()
    assert float(first.sum()) == 1.5


def test_a_view_passed_by_a_caller_really_differs():
    """Why the view cases above stay flagged: torch's update of `w[0]` reaches w, an MLX update of a slice does not."""
    import mlx.core as mx
    import torch

    w_t = torch.zeros(2, 3)
    w_t[0].sigmoid_()
    w_m = mx.zeros((2, 3))
    first = w_m[0]
    first[...] = mx.sigmoid(first)
    assert float(w_t.sum()) == 1.5 and float(w_m.sum().item()) == 0.0


LAYER_CALLERS = [
    # a layer of this file whose forward updates its input, called with a view (held in an attribute, or built and
    # called at once), or with a name bound to a view
    ("class Gate(torch.nn.Module):\n    def forward(self, x):\n        return x.sigmoid_()\n\n\n"
     "class Block(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.gate = Gate()\n\n"
     "    def forward(self, x):\n        y = self.gate(x[:, :2])\n        return x + y.sum()\n", "`x[:, :2]` is a view"),
    ("class Gate(torch.nn.Module):\n    def forward(self, x):\n        return x.sigmoid_()\n\n\n"
     "def g(x):\n    return Gate()(x.transpose(0, 1)), x\n", "`x.transpose(0, 1)` is a view"),
    ("def act(x):\n    return x.tanh_()\n\n\ndef g(w):\n    first = w[0]\n    act(first)\n    return w\n", "`first` (= `w[0]`) is a view"),
    # torch's contiguous() of a transposed tensor is a copy, MLX's translation the same array: flagged alike
    ("def act(x):\n    return x.tanh_()\n\n\ndef g(w):\n    t = w.t()\n    act(t.contiguous())\n    return t\n",
     "`t.contiguous()` is a view"),
]


@pytest.mark.parametrize("body,why", LAYER_CALLERS, ids=[w for _, w in LAYER_CALLERS])
def test_callers_in_the_file_passing_a_view_are_flagged(body, why):
    result = convert_source("import torch\n\n\n" + body)
    messages = [d.message for d in _warnings(result) if d.rule_id == "inplace-op"]
    assert any(why in m for m in messages), (messages, result.code)
