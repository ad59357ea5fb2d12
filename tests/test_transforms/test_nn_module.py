"""nn-module: module classes become MLX modules (forward, buffers, train/eval), checked by running them."""
import textwrap

import numpy as np
import pytest

from torch2mlx import convert_source

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"


def _convert(body: str):
    result = convert_source(HEADER + textwrap.dedent(body).strip() + "\n")
    return result, result.code


def _run(code: str) -> dict:
    namespace: dict = {"__name__": "converted"}
    exec(compile(code, "<converted>", "exec"), namespace)  # noqa: S102 - our own test code
    return namespace


BUFFERS = """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.register_buffer("mask", torch.tril(torch.ones(3, 3)))
        self.register_buffer("pos", torch.arange(3), persistent=False)
        self.register_buffer("empty", None)

    def forward(self, x):
        return self.fc(x) * self.mask[0] + self.pos
"""


def test_forward_becomes_call_and_buffers_become_attributes():
    result, code = _convert(BUFFERS)
    assert not result.flagged, code
    assert "def __call__(self, x):" in code and "def forward" not in code
    assert 'self.mask = mx.tril(mx.ones((3, 3)))\n        self.freeze(keys=["mask"], recurse=False)' in code
    assert "self._pos = mx.arange(3, dtype=mx.int64)" in code and "+ self._pos" in code
    assert "self.empty = None" in code
    assert "torch" not in code


def test_buffers_load_but_do_not_train():
    from mlx.utils import tree_flatten

    net = _run(_convert(BUFFERS)[1])["Net"]()
    params = dict(tree_flatten(net.parameters()))
    trainable = dict(tree_flatten(net.trainable_parameters()))
    assert "mask" in params and "mask" not in trainable      # persistent: in the state_dict, frozen
    assert "pos" not in params and "_pos" not in params       # persistent=False: not in the state_dict
    assert "fc.weight" in trainable


def test_parameter_is_a_trainable_array():
    from mlx.utils import tree_flatten

    result, code = _convert("""
        class Scale(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.gamma = nn.Parameter(torch.ones(n))

            def forward(self, x):
                return x * self.gamma
    """)
    assert "self.gamma = mx.ones(n)" in code and not result.flagged
    scale = _run(code)["Scale"](4)
    assert "gamma" in dict(tree_flatten(scale.trainable_parameters()))


def test_forward_calls_and_super_forward():
    result, code = _convert("""
        class Base(nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = nn.Linear(2, 2)

            def forward(self, x):
                return self.lin.forward(x)


        class Child(Base):
            def forward(self, x):
                return super().forward(x) + self.forward_extra(x)

            def forward_extra(self, x):
                return x


        class NotAModule:
            def forward(self, x):
                return x
    """)
    assert "return self.lin(x)" in code
    assert "class Child(Base):\n    def __call__(self, x):\n        return super().__call__(x)" in code
    assert "class NotAModule:\n    def forward(self, x):" in code
    ns = _run(code)
    import mlx.core as mx

    child = ns["Child"]()
    x = mx.ones((1, 2))
    np.testing.assert_allclose(np.array(child(x)), np.array(child.lin(x) + x))


def test_train_and_eval_keep_their_meaning():
    import mlx.core as mx

    torch = pytest.importorskip("torch")
    source = """
        class Drop(nn.Module):
            def __init__(self):
                super().__init__()
                self.drop = nn.Dropout(0.5)

            def forward(self, x):
                if self.training:
                    return self.drop(x) * 0 - 1
                return self.drop(x)
    """
    result, code = _convert(source)
    assert not result.flagged
    m = _run(code)["Drop"]()
    t = _run(HEADER + textwrap.dedent(source))["Drop"]()
    x = np.ones((4, 4), dtype=np.float32)
    assert m.training is t.training is True
    np.testing.assert_allclose(np.array(m(mx.array(x))), t(torch.from_numpy(x)).numpy())
    m.eval()
    t.eval()
    assert m.training is t.training is False
    np.testing.assert_allclose(np.array(m(mx.array(x))), t(torch.from_numpy(x)).numpy())
    m.train()
    assert m.training is True


FLAGGED = [
    # name not a literal
    """
    class A(nn.Module):
        def __init__(self, name):
            super().__init__()
            self.register_buffer(name, torch.zeros(3))
    """,
    # persistent not a literal
    """
    class A(nn.Module):
        def __init__(self, keep):
            super().__init__()
            self.register_buffer("b", torch.zeros(3), persistent=keep)
    """,
    # Module.apply has another meaning in MLX (nn-init translates `self.apply(name)`, not a computed fn)
    """
    class A(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
            self.apply(self._make_init())

        def _init(self, m):
            pass
    """,
    # an OrderedDict Sequential whose OrderedDict is not known to be collections' (TorchSequential otherwise)
    """
    from mylib import OrderedDict


    class A(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2))]))
    """,
]


@pytest.mark.parametrize("body", FLAGGED)
def test_left_in_place_and_flagged(body):
    result, code = _convert(body)
    assert result.flagged and "# torch2mlx:" in code, code


def test_forward_arguments_are_tensors_with_an_info_note():
    result, code = _convert("""
        class Heads(nn.Module):
            def __init__(self):
                super().__init__()
                self.qkv = nn.Linear(8, 24)

            def forward(self, x, mask=None):
                B, T, C = x.size()
                qkv = self.qkv(x)
                q, k, v = qkv.split(8, dim=2)
                q = q.view(B, T, 2, 4).transpose(1, 2)
                return q
    """)
    assert not result.flagged, code
    assert "B, T, C = x.shape" in code
    assert any(d.rule_id == "nn-module" and d.severity.value == "info" for d in result.diagnostics)


def test_converting_twice_changes_nothing():
    code = _convert(BUFFERS)[1]
    assert convert_source(code).code == code


def test_sequential_and_module_dict_access_keep_their_meaning():
    import mlx.core as mx

    torch = pytest.importorskip("torch")
    source = """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Tanh(), nn.Sigmoid(), nn.ReLU())
                self.heads = nn.ModuleDict({"a": nn.Tanh(), "b": nn.Sigmoid()})

            def forward(self, x):
                outs = [self.body[0](x), self.heads.a(x), self.heads["b"](x)]
                for i, layer in enumerate(self.body):
                    x = layer(x) + i
                return outs + [x * len(self.body), self.body(x), sum(1 for _ in self.heads.keys())]
    """
    result, code = _convert(source)
    assert not result.flagged, code
    assert "self.body.layers[0](x)" in code and 'self.heads["a"](x)' in code and "len(self.body.layers)" in code
    x = np.linspace(-2, 2, 6, dtype=np.float32)
    expected = _run(HEADER + textwrap.dedent(source))["Net"]()(torch.from_numpy(x))
    actual = _run(code)["Net"]()(mx.array(x))
    for e, a in zip(expected[:-1], actual[:-1]):
        np.testing.assert_allclose(np.array(a), e.numpy(), rtol=1e-5, atol=1e-6)
    assert expected[-1] == actual[-1] == 2


def test_nested_and_one_line_module_classes_get_the_mlx_base():
    result, code = _convert("""
        class Outer(nn.Module):
            class Inner(nn.Module):
                def forward(self, y):
                    return y

            def forward(self, x):
                return x


        class Empty(nn.Module): pass
    """)
    assert "torch" not in code and code.count("(nn.Module)") == 3
    assert "class Inner(nn.Module):\n        def __call__(self, y):" in code


def test_sequential_of_a_name_bound_to_an_ordered_dict_is_a_torch_sequential():
    """torchvision's ViT builds `heads_layers = OrderedDict()`, sets items, then `nn.Sequential(heads_layers)`:
    MLX's Sequential would hold the dict as one layer (`self.heads.head` raised at build, unflagged); it becomes
    TorchSequential (layer_bases.py), members named by the dict's keys (tests/test_tvhub_sequential.py runs it)."""
    from torch2mlx import convert_source

    source = (
        "from collections import OrderedDict\nfrom torch import nn\n\n"
        "class Head(nn.Module):\n"
        "    def __init__(self, n):\n"
        "        super().__init__()\n"
        "        layers: OrderedDict[str, nn.Module] = OrderedDict()\n"
        "        layers['head'] = nn.Linear(n, n)\n"
        "        self.heads = nn.Sequential(layers)\n"
        "        block = nn.Linear(n, n)\n"
        "        self.body = nn.Sequential(block, nn.ReLU())\n"
    )
    result = convert_source(source, "head.py")
    flagged = [d for d in result.diagnostics if d.severity == "warning"]
    assert not flagged, result.code
    assert "self.heads = TorchSequential(layers)" in result.code, result.code
    assert "self.body = mlx_nn.Sequential(block, mlx_nn.ReLU())" in result.code or \
        "self.body = nn.Sequential(block, nn.ReLU())" in result.code, result.code
    # an OrderedDict not known to be collections': flagged as before
    other = convert_source(source.replace("from collections import OrderedDict", "from mylib import OrderedDict"))
    assert [d.rule_id for d in other.diagnostics if d.severity == "warning"] == ["torch.nn.Sequential"], other.code
