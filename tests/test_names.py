"""Name resolution: every import style reaches the same rule; look-alike names are left alone."""
import pytest

from torch2mlx import convert_source

SAME = [
    "import torch\ny = torch.sum(x, 1)\n",
    "import torch as T\ny = T.sum(x, 1)\n",
    "from torch import sum as tsum\ny = tsum(x, 1)\n",
    "import torch.nn.functional\ny = torch.sum(x, 1)\n",
    "def f():\n    import torch\n    return torch.sum(x, 1)\n",
]


@pytest.mark.parametrize("source", SAME)
def test_import_styles_resolve(source):
    result = convert_source(source)
    assert "mx.sum(x, axis=1)" in result.code
    assert "torch" not in result.code
    assert not result.flagged


def test_from_torch_import_name():
    out = convert_source("from torch import zeros\nz = zeros(2, 3)\n").code
    assert out == "import mlx.core as mx\nz = mx.zeros((2, 3))\n"


@pytest.mark.parametrize("source", [
    "import torch\n\ndef f(torch):\n    return torch.zeros(3)\n",          # a parameter called torch
    "import torch\ntorch = MyLib()\ny = torch.zeros(3)\n",                 # rebound at module level
    "import torch.nn.functional as F\nF = make_f()\ny = F.zeros(3)\n",      # the user's own F
    "class torch:\n    pass\ny = torch.zeros(3)\n",                        # no torch import at all
])
def test_look_alike_names_are_not_rewritten(source):
    result = convert_source(source)
    assert "mx.zeros" not in result.code
    assert "torch.zeros(3)" in result.code or "F.zeros(3)" in result.code


def test_method_on_non_tensor_is_left_alone():
    src = "import torch\nimport os\nparts = os.path.split(p)\nwords = 'a b'.split()\ny = torch.zeros(2)\n"
    result = convert_source(src)
    assert "os.path.split(p)" in result.code and "'a b'.split()" in result.code
    assert not result.diagnostics


def test_ambiguous_method_on_unknown_receiver_is_flagged_not_rewritten():
    result = convert_source("import torch\n\ndef f(a):\n    return a.sum()\n")
    assert "a.sum()" in result.code
    assert "# torch2mlx: torch.sum:" in result.code
    assert result.diagnostics[0].kind.value == "unknown-receiver"


def test_dim_keyword_proves_a_tensor():
    result = convert_source("import torch\n\ndef f(a):\n    return a.sum(dim=1)\n")
    assert "mx.sum(a, axis=1)" in result.code and not result.flagged


def test_tensor_inferred_from_assignment():
    src = "import torch\n\ndef f():\n    t = torch.zeros(2, 3)\n    return t.sum(0)\n"
    assert "mx.sum(t, axis=0)" in convert_source(src).code


def test_numpy_style_aliases_accepted():
    assert "mx.sum(x, axis=1, keepdims=True)" in convert_source(
        "import torch\ny = torch.sum(x, axis=1, keepdims=True)\n").code


def test_boolean_mask_indexing_is_flagged():
    src = "import torch\n\ndef f(x: torch.Tensor):\n    m = x > 0\n    return x[m], x[x < 1], x[0]\n"
    result = convert_source(src)
    assert [d.rule_id for d in result.diagnostics] == ["boolean-mask-indexing", "boolean-mask-indexing"]


def test_flag_inside_dropped_argument_is_moot():
    src = "import torch\ny = torch.zeros(2, device=torch.device(torch.weird_thing()))\n"
    result = convert_source(src)
    assert result.code.endswith("y = mx.zeros(2)\n") and not result.diagnostics


def test_names_that_are_not_references_are_left_alone():
    src = ("import torch\nimport torch.nn as nn\nfrom torch import cat\n\n"
           "def f(x: torch.Tensor, cat=1):\n    g(cat=2)\n    return x.nn, torch.nn.utils.clip_grad_norm_\n")
    result = convert_source(src)
    assert "g(cat=2)" in result.code and "x.nn" in result.code
    assert all(d.rule_id != "torch.nn" for d in result.diagnostics), [d.format() for d in result.diagnostics]


def test_boolean_tensor_index_is_flagged_on_an_unknown_receiver():
    src = "import torch\n\ndef f(x, y: torch.Tensor):\n    keep = y > 0\n    return x[keep], x[0]\n"
    assert [d.rule_id for d in convert_source(src).diagnostics if d.severity.value == "warning"] == ["boolean-mask-indexing"]
