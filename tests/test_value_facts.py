"""Value facts across a file's own functions (torch2mlx/value_facts.py): `self.x` attributes, returns,
parameters and unpacked elements known to be tensors. Each idiom converts without a flag and gives
torch's values in MLX; where one binding is not a tensor, the use stays flagged."""
from __future__ import annotations

import numpy as np
import pytest

from tests.model_support import exec_source, warnings
from torch2mlx import convert_source

HEADER = "import torch\nimport torch.nn as nn\n\n\n"

ATTRIBUTES = '''
class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.arange(6.0).reshape(2, 3))
        self.register_buffer("shift", torch.ones(3))
        self.bias = torch.zeros(2, 3)

    def weight_flat(self):
        return self.w.view(-1).float()

    def forward(self, x):
        y = x * self.w.transpose(0, 1).transpose(0, 1) + self.shift.float()
        return y + self.bias.view(2, 3) + self.weight_flat().view(2, 3)


m = Scale()
out = m(torch.ones(2, 3))
'''

RETURNS = '''
def base(n: int):
    return torch.arange(n * 1.0)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Identity()

    def forward(self, x):
        return self.lin(x) * 2


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()

    def _proj(self, x):
        return x + base(6).reshape(2, 3)

    def forward(self, x):
        return self.block(x).view(-1) + self._proj(x).view(-1)


out = Net()(torch.ones(2, 3))
'''

PARAMS = '''
def helper(t, n):
    return t.view(n, -1).float()


class Heads(nn.Module):
    def _split(self, t):
        return t.reshape(3, 2).transpose(0, 1)

    def forward(self, x):
        return self._split(x) + helper(x * 2, 2).view(2, 3)


out = Heads()(torch.arange(6.0).reshape(2, 3))
'''

UNPACKING = '''
def run(x: torch.Tensor):
    a, b = x.chunk(2)
    q, k = x.unbind(0)
    return a.view(-1) + b.view(-1) + q.float() * k.float()


out = run(torch.arange(6.0).reshape(2, 3))
'''

TUPLE_RETURNS = '''
def pre_pool(x: torch.Tensor, cls_token: bool):
    if cls_token:
        return x[:, 1:], x[:, :1]
    return x, x[:, :0]


class Pool(nn.Module):
    def _halves(self, x):
        return x[:1] * 2, 3

    def forward(self, x):
        a, b = pre_pool(x, True)
        c, n = self._halves(x)
        return a.float().sum() + b.float().sum() + c.float().sum() * n


out = Pool()(torch.arange(6.0).reshape(2, 3))
'''

# glm4v / hunyuan_vl rotary embeddings: a helper rebinds its parameter before returning it, and its caller
# feeds its own result back in (`sin = self.recompose(sin)`): only the order of the statements shows
# that the returned name and the argument are tensors
REACHING = '''
class Rotary(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.scaling = 0.5

    def recompose(self, freq):
        freq = torch.cat((freq, freq), dim=-1)
        return freq

    def pair(self, t, flag):
        u = t
        if flag:
            u = u * 2
        v = torch.flip(t, [0])
        return v.reshape(-1), t

    @torch.no_grad()
    def forward(self, x, position_ids):
        position_ids = position_ids.expand(3, -1, -1)
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        cos = freqs.cos() * self.scaling
        sin = freqs.sin() * self.scaling
        sin = self.recompose(sin)
        cos = self.recompose(cos)
        a, b = self.pair(cos, True)
        return cos.to(dtype=x.dtype) + sin.to(dtype=x.dtype), a.view(-1) + b.view(-1)


out = Rotary(4)(torch.randn(1, 5, 8), torch.arange(5)[None])
'''

CASES = {"reaching": REACHING, "tuple_returns": TUPLE_RETURNS, "attributes": ATTRIBUTES, "returns": RETURNS, "params": PARAMS, "unpacking": UNPACKING}


@pytest.mark.parametrize("name", sorted(CASES))
def test_value_facts_convert_and_match_torch(name):
    source = HEADER + CASES[name]
    result = convert_source(source)
    assert not warnings(result), result.diagnostics
    mlx_out, torch_out = exec_source(result.code, "mlx_side")["out"], exec_source(source, "torch_side")["out"]
    if isinstance(torch_out, tuple):
        assert isinstance(mlx_out, tuple) and len(mlx_out) == len(torch_out)
        for m, t in zip(mlx_out, torch_out):
            np.testing.assert_allclose(np.array(m), t.detach().numpy(), rtol=1e-6)
        return
    np.testing.assert_allclose(np.array(mlx_out), torch_out.detach().numpy(), rtol=1e-6)


PARAMETER_W = '''
class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))

    def forward(self, x):
        return x + self.w.view(-1)
'''

NEGATIVE = {
    "attribute_also_none": '''
class M(nn.Module):
    def __init__(self, on):
        super().__init__()
        self.w = nn.Parameter(torch.ones(2)) if on else None

    def forward(self, x):
        return x + self.w.view(-1)
''',
    "attribute_stored_none_elsewhere": '''
class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))

    def reset(self):
        self.w = None

    def forward(self, x):
        return x + self.w.view(-1)
''',
    "attribute_stored_in_a_subclass": PARAMETER_W + '''

class N(M):
    def __init__(self):
        super().__init__()
        self.w = [1, 2]
''',
    "attribute_set_by_a_computed_setattr": PARAMETER_W + '''

def clear(model, name):
    setattr(model, name, None)
''',
    "attribute_stored_on_another_object": PARAMETER_W + '''

def clear(model):
    model.w = None
''',
    "tuple_element_also_none": '''
def split_token(x: torch.Tensor, cls_token: bool):
    if cls_token:
        return x[:, 1:], x[:, :1]
    return x, None


def run(x: torch.Tensor):
    a, b = split_token(x, True)
    return a.view(-1), b.view(-1)
''',
    "param_one_call_not_a_tensor": '''
def helper(t):
    return t.view(-1)


def run(x: torch.Tensor, y):
    return helper(x) + helper(y)
''',
    "param_default_omitted": '''
def helper(x: torch.Tensor, t=None):
    return t.view(-1)


def run(x: torch.Tensor):
    return helper(x, x) + helper(x)
''',
    "function_referenced_as_a_value": '''
def helper(t):
    return t.view(-1)


def run(x: torch.Tensor):
    fn = helper
    return helper(x) + fn([1])
''',
    "return_with_a_fall_through": '''
def make(x: torch.Tensor, flag):
    if flag:
        return x * 2


def run(x: torch.Tensor):
    return make(x, True).view(-1)
''',
    "method_overridden_in_a_subclass": '''
class M(nn.Module):
    def _f(self, x):
        return x * 2

    def forward(self, x):
        return self._f(x).view(-1)


class N(M):
    def _f(self, x):
        return [x]
''',
    "method_called_through_a_base_outside_the_file": '''
class A(nn.Module):
    def _f(self, t):
        return t.view(-1)

    def forward(self, x):
        return self._f(x)


class B(nn.Linear, A):
    def go(self):
        return self._f([1])
''',
    "parameter_with_no_call_site": '''
def helper(t):
    return t.view(-1)
''',
    "rebound_in_a_branch_before_the_return": '''
def helper(t):
    t = torch.cat((t, t))
    if len(t) > 4:
        t = [1]
    return t


def run(x: torch.Tensor):
    return helper(x).view(-1)
''',
    "rebound_in_the_returning_statement": '''
def helper(t, flag):
    t = torch.cat((t, t))
    if flag:
        t = [1]
        return t
    return t * 2


def run(x: torch.Tensor):
    return helper(x, True).view(-1)
''',
    "rebound_through_nonlocal": '''
def helper(t):
    t = torch.cat((t, t))

    def clear():
        nonlocal t
        t = [1]

    clear()
    return t


def run(x: torch.Tensor):
    return helper(x).view(-1)
''',
    "argument_rebound_in_a_loop_before_the_call": '''
class M(nn.Module):
    def _f(self, t):
        return t.view(-1)

    def forward(self, x, items: list):
        y = x * 2
        for y in items:
            pass
        return self._f(y)
''',
    "local_loop_target": '''
def run(x: torch.Tensor, items):
    y = x
    for y in items:
        pass
    return y.view(-1)
''',
}


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_a_value_with_one_unknown_binding_stays_flagged(name):
    result = convert_source(HEADER + NEGATIVE[name])
    assert any("not known to be a tensor" in d.message for d in result.diagnostics), result.code
