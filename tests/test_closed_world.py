"""The closed world: exit 0 means the output no longer needs torch (issue: nothing passes silently).

Every case here was found on code nobody here wrote (third-party snippets, real repositories):
a method a known tensor has but an mx.array lacks, a torch name left in the output, a module
built on torch, a frozen backbone under no_grad inside forward.
"""
import textwrap

import mlx.core as mx
import mlx.nn as mnn
import numpy as np
import pytest
import torch

from torch2mlx import convert_source
from torch2mlx.verify import compare, run_function, to_numpy

from model_support import exec_source


def _warnings(result) -> list:
    return [d for d in result.diagnostics if d.severity.value != "info"]


def _convert(source: str):
    result = convert_source(textwrap.dedent(source))
    assert convert_source(result.code).code == result.code, "a second conversion changes the output"
    return result


@pytest.mark.parametrize("line", ["y = x.q_scale()", "y = x.dequantize()", "x.share_memory_()", "y = x.is_pinned()",
                                  "n = x.storage_offset() + 0", "z = x.H"])
def test_a_member_mx_array_lacks_is_flagged_on_a_known_tensor(line):
    result = _convert(f"import torch\nx = torch.randn(3, 3)\n{line}\n")
    assert _warnings(result), result.code
    flagged_line = result.code.splitlines()[result.code.splitlines().index(line) - 1]
    assert flagged_line.startswith("# torch2mlx: "), result.code


def test_members_mx_array_has_and_unknown_receivers_are_left_alone():
    result = _convert("import torch\nx = torch.randn(3, 3)\ns = x.shape\nn = x.ndim\nfoo.kron(bar)\n")
    assert not _warnings(result), result.code


def test_data_attribute_is_translated_and_gives_torch_values():
    source = "import torch\n\ndef example(a: torch.Tensor):\n    out = a * 2\n    return torch.softmax(out.data, 1)\n"
    result = _convert(source)
    assert not _warnings(result) and "mx.stop_gradient(out)" in result.code, result.code
    a = np.random.RandomState(0).standard_normal((2, 3)).astype(np.float32)
    assert compare(to_numpy(run_function(source, {"a": a}, "torch")), to_numpy(run_function(result.code, {"a": a}, "mlx"))) is None


@pytest.mark.parametrize("line", ["g = x.grad", "r = x.requires_grad", "d = x.device"])
def test_autograd_and_device_attributes_are_flagged_with_what_to_do(line):
    result = _convert(f"import torch\nx = torch.randn(3)\n{line}\n")
    (warning,) = _warnings(result)
    assert warning.line == 3 and ("grad" in warning.message or "device" in warning.message), warning.format()


def test_assigning_an_attribute_of_an_array_is_flagged_not_rewritten():
    result = _convert("import torch\nx = torch.randn(3)\nx.data = torch.zeros(3)\n")
    assert _warnings(result) and "x.data = mx.zeros" in result.code, result.code


def test_a_torch_name_the_pass_cannot_resolve_is_flagged_at_its_line():
    source = "try:\n    import torch\nexcept ImportError:\n    torch = None\n\n\ndef f(x):\n    return torch.relu(x)\n"
    result = _convert(source)
    (warning,) = _warnings(result)
    assert (warning.rule_id, warning.line) == ("torch-reference", 8), warning.format()
    lines = result.code.splitlines()
    assert lines[lines.index("    return torch.relu(x)") - 1].startswith("    # torch2mlx: torch-reference:"), result.code
    again = convert_source(result.code)
    assert [d.rule_id for d in _warnings(again)] == ["torch-reference"], "a second conversion must still report it"


@pytest.mark.parametrize("imp,module", [
    ("from einops.layers.torch import Rearrange", "einops.layers.torch"),
    ("import torchvision", "torchvision"),
    ("from torchvision.models import resnet18", "torchvision"),
    ("import timm", "timm"),
    ("from transformers import AutoModel", "transformers"),
])
def test_a_module_built_on_torch_never_exits_clean(imp, module):
    result = _convert(f"import torch\n{imp}\nx = torch.zeros(3)\n")
    (warning,) = _warnings(result)
    assert warning.rule_id == "torch-dependency" and warning.line == 2 and module in warning.message, warning.format()


def test_einops_functions_work_on_mlx_arrays_and_are_not_flagged():
    result = _convert("import torch\nfrom einops import rearrange\nx = rearrange(torch.zeros(2, 3), 'a b -> b a')\n")
    assert not _warnings(result), result.code


def test_clean_output_names_no_torch():
    result = _convert("import torch\nimport torch.nn.functional as F\n\ndef f(x: torch.Tensor) -> torch.Tensor:\n    return F.relu(x).sum(dim=1)\n")
    assert not _warnings(result)
    assert "torch" not in result.code, result.code


FROZEN = '''
import torch
import torch.nn as nn


class Frozen(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        with torch.no_grad():
            feats = self.backbone(x)
            feats = feats * 2
        return self.head(feats)
'''


def test_no_grad_in_forward_keeps_the_backbone_frozen_as_in_torch():
    result = _convert(FROZEN)
    assert not _warnings(result), result.code
    assert "mx.stop_gradient(self.backbone(x))" in result.code, result.code
    model = exec_source(result.code, "frozen_mlx")["Frozen"]()
    x = mx.ones((3, 4))

    def loss(m, x):
        return (m(x) ** 2).sum()

    _, grads = mnn.value_and_grad(model, loss)(model, x)
    assert float(mx.abs(grads["backbone"]["weight"]).sum()) == 0.0
    assert float(mx.abs(grads["head"]["weight"]).sum()) > 0.0
    torch_model = exec_source(FROZEN, "frozen_torch")["Frozen"]()
    (torch_model(torch.ones(3, 4)) ** 2).sum().backward()
    assert torch_model.backbone.weight.grad is None and torch_model.head.weight.grad is not None


def test_no_grad_in_forward_that_cannot_be_cut_exactly_is_flagged():
    source = FROZEN.replace("feats = self.backbone(x)\n            feats = feats * 2", "feats, aux = self.backbone(x)")
    result = _convert(source)
    (warning,) = _warnings(result)
    assert warning.rule_id == "no-grad" and warning.line == 13, warning.format()
    assert "with torch.no_grad():" in result.code


def test_no_grad_outside_a_model_disappears():
    result = _convert("import torch\n\n\ndef evaluate(model, x):\n    with torch.no_grad():\n        return model(x)\n")
    assert not _warnings(result) and "no_grad" not in result.code and "stop_gradient" not in result.code, result.code


def test_torch_built_module_detection_covers_submodules():
    from torch2mlx.closed_world import torch_built_module

    assert torch_built_module("torchvision.models.resnet") == "torchvision"
    assert torch_built_module("einops.layers.torch") == "einops.layers.torch"
    assert torch_built_module("einops") is None and torch_built_module("torchmetrics_like") is None


def test_every_torch2mlx_comment_in_converted_fixtures_is_a_flag():
    """`grep '# torch2mlx:'` over converted code lists flags only; generated helpers carry their own marker."""
    import pathlib
    import re

    from torch2mlx.emitter import GENERATED_PREFIX

    root = pathlib.Path(__file__).resolve().parents[1]
    flag = re.compile(r"^# torch2mlx: [\w.\-\[\]]+: \S")
    helpers = 0
    files = sorted([*root.glob("fixtures/**/*.py"), *root.glob("examples/*.py")])
    assert len(files) >= 20
    for path in files:
        code = convert_source(path.read_text(), str(path)).code
        for line in code.splitlines():
            text = line.strip()
            if text.startswith("# torch2mlx:"):
                assert flag.match(text) and "generated helper" not in text, f"{path.name}: {text}"
            helpers += text.startswith(GENERATED_PREFIX)
    assert helpers > 0, "no fixture has a generated helper: the check above proves nothing about helpers"


def test_data_of_a_value_not_known_to_be_a_tensor_is_flagged():
    """Every evaluation loop of six real repositories read `outputs.data` (MLX arrays have no .data)."""
    source = ("import torch\n\n\ndef evaluate(model, images):\n    outputs = model(images)\n"
              "    _, predicted = torch.max(outputs.data, 1)\n    return predicted\n")
    result = _convert(source)
    assert any(d.rule_id == "Tensor.data" and d.line == 6 for d in _warnings(result)), result.code


def test_a_directory_run_of_a_torch_built_package_does_not_flag_its_own_imports(tmp_path):
    """Converting timm's own folder: `from timm.layers import ...` is the project, not a dependency."""
    from torch2mlx.project import build_project_index, module_name

    pkg = tmp_path / "timm"
    (pkg / "layers").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "layers" / "__init__.py").write_text("import torch\n\ndef act(x):\n    return torch.relu(x)\n")
    model = pkg / "model.py"
    model.write_text("import torch\nimport torchvision\nfrom timm.layers import act\n\ny = act(torch.zeros(2))\n")
    files = sorted(pkg.rglob("*.py"))
    project = build_project_index([pkg], files)
    result = convert_source(model.read_text(), str(model), project=project, module_name=module_name(model, pkg))
    assert [(d.rule_id, d.line) for d in _warnings(result)] == [("torch-dependency", 2)], result.code


def _star_package(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "parts.py").write_text(
        "import torch\nimport torch.nn as nn\n\n\nclass Block(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.lin = nn.Linear(3, 3)\n\n    def forward(self, x):\n"
        "        return torch.relu(self.lin(x))\n")
    (pkg / "net.py").write_text(
        "from .parts import *\n\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.block = Block()\n        self.head = nn.Linear(3, 2)\n\n    def forward(self, x):\n"
        "        return torch.sigmoid(self.head(self.block(x)))\n")
    return pkg


def test_star_import_is_followed_in_a_directory_run(tmp_path):
    """`from .parts import *` (a UNet repository's style): torch aliases and module classes come through."""
    from torch2mlx.project import build_project_index, module_name

    pkg = _star_package(tmp_path)
    net = pkg / "net.py"
    project = build_project_index([pkg], sorted(pkg.rglob("*.py")))
    result = convert_source(net.read_text(), str(net), project=project, module_name=module_name(net, pkg))
    assert not _warnings(result), result.code
    assert "mx.sigmoid(" in result.code and "def __call__" in result.code and "nn.Linear(3, 2)" in result.code


def test_star_import_of_an_own_module_is_flagged_in_a_single_file_run(tmp_path):
    net = _star_package(tmp_path) / "net.py"
    result = _convert(net.read_text())
    assert any(d.rule_id == "star-import" and d.line == 1 for d in _warnings(result)), result.code
    assert not _warnings(_convert("import torch\nfrom math import *\nx = torch.zeros(2)\n"))


_MODULE_PRELUDE = """\
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(4, 4)

    def forward(self, x):
        return self.backbone(x)

def main(model, sd):
    model = Net()
"""


@pytest.mark.parametrize("line,rule", [
    ("model.backbone.load_state_dict(sd)", "load_state_dict"),   # a sub-module's, with no checkpoint read
    ("weights = model.state_dict()", "state_dict"),
    ("n = sum(p.size for p in model.parameters())", "parameters"),  # MLX: iterates the dict's keys
    ("layer = model.get_submodule('backbone')", "get_submodule"),  # (children(): module_members.py translates it)
    ("handle = model.register_forward_hook(print)", "register_forward_hook"),
    ("model.zero_grad()", "zero_grad"),
])
def test_a_torch_module_member_left_in_the_output_is_flagged(line, rule):
    # Found on third-party training code: these ran into AttributeError (or walked dict keys) after an exit 0.
    result = _convert(_MODULE_PRELUDE + f"    {line}\n    return model\n")
    flags = [d for d in _warnings(result) if d.rule_id == "torch-module-member"]
    assert flags and rule in flags[0].message, result.code
    lines = result.code.splitlines()
    assert lines[lines.index(f"    {line}") - 1].startswith("    # torch2mlx: torch-module-member: "), result.code
    assert flags[0].line == _MODULE_PRELUDE.count("\n") + 1


def test_module_members_mlx_has_or_the_file_defines_are_left_alone():
    body = """\
    from mlx.utils import tree_flatten
    n = sum(v.size for _, v in tree_flatten(model.parameters()))
    flat = model.parameters()
    kids = model.children()
    for m in model.modules():
        pass
    saver = Saver()
    saver.state_dict()
    return n, flat, kids

class Saver:
    def state_dict(self):
        return {}
"""
    result = _convert(_MODULE_PRELUDE + body)
    assert not [d for d in result.diagnostics if d.rule_id == "torch-module-member"], result.code


def test_the_torch_only_module_members_are_what_the_libraries_say():
    # the list is written by hand (with what to write instead); the libraries are the truth
    from torch2mlx.closed_world import _DICT_IN_MLX, _TORCH_ONLY_MODULE_MEMBERS

    torch_members = set(dir(torch.nn.Module)) | set(dir(torch.optim.Optimizer))
    mlx_members = set(dir(mnn.Module)) | set(dir(mx.array))
    for name in _TORCH_ONLY_MODULE_MEMBERS:
        assert name in torch_members, name
        assert name not in set(dir(mnn.Module)), name
    for name in _DICT_IN_MLX:  # both have it; MLX's returns a dict
        assert name in torch_members and name in mlx_members, name
        assert isinstance(getattr(mnn.Linear(2, 2), name)(), dict), name


def test_builtin_method_names_of_manual_rules_stay_quiet_on_unknown_receivers():
    # `values` / `indices` are sparse-tensor members with no MLX form; on a dict or a slice they are Python's
    result = _convert("import torch\ndef f(d, s, n):\n    return list(d.values()), s.indices(n)\n")
    assert not _warnings(result), result.code
    result = _convert("import torch\nx = torch.randn(3, 3)\nv = x.values()\n")
    assert [d.rule_id for d in _warnings(result)] == ["torch.Tensor.indices"], result.code
