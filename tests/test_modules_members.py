"""torch module-tree walks and registration on the converted model (transforms/module/module_members.py):
`named_children()`, `children()`, `add_module()` as timm and torchvision write them, converted and run against
torch. Before, each was flagged `torch-module-member` (timm's _manipulate.named_apply alone kept 13 models of the
real-model corpus flagged)."""
from __future__ import annotations

import numpy as np
import pytest

from torch2mlx import convert_source, load_torch_weights
from tests.model_support import assert_close, exec_source, torch_names, warnings

# timm/models/_manipulate.py (named_apply, named_modules), regnet.py (RegStage: add_module of blocks named
# "b1", ..., forward over self.children()), resnet.py (`self.add_module(*stage)`), cspnet.py (`nn.Sequential()`
# then `self.blocks.add_module(str(i), block)`; `[n for n, _ in self.stem.named_children()]`)
TIMM_LIKE = '''
import torch
import torch.nn as nn


def named_apply(fn, module: nn.Module, name='', depth_first: bool = True, include_root: bool = False) -> nn.Module:
    if not depth_first and include_root:
        fn(module=module, name=name)
    for child_name, child_module in module.named_children():
        child_name = '.'.join((name, child_name)) if name else child_name
        named_apply(fn=fn, module=child_module, name=child_name, depth_first=depth_first, include_root=True)
    if depth_first and include_root:
        fn(module=module, name=name)
    return module


def named_modules(module: nn.Module, name: str = '', depth_first: bool = True, include_root: bool = False):
    if not depth_first and include_root:
        yield name, module
    for child_name, child_module in module.named_children():
        child_name = '.'.join((name, child_name)) if name else child_name
        yield from named_modules(module=child_module, name=child_name, depth_first=depth_first, include_root=True)
    if depth_first and include_root:
        yield name, module


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.fc = nn.Linear(c, c)

    def forward(self, x):
        return x + self.fc(self.norm(x))


class RegStage(nn.Module):
    def __init__(self, depth, c):
        super().__init__()
        for i in range(depth):
            name = "b{}".format(i + 1)
            self.add_module(name, Block(c))

    def forward(self, x):
        for block in self.children():
            x = block(x)
        return x


class CrossStage(nn.Module):
    def __init__(self, depth, c):
        super().__init__()
        self.conv_exp = nn.Linear(c, c)
        self.blocks = nn.Sequential()
        for i in range(depth):
            self.blocks.add_module(str(i), Block(c))

    def forward(self, x):
        return self.blocks(self.conv_exp(x))


class Net(nn.Module):
    def __init__(self, c=8, classes=3):
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(5, c), nn.GELU())
        stage_modules = [("layer1", RegStage(2, c)), ("layer2", CrossStage(3, c))]
        for stage in stage_modules:
            self.add_module(*stage)
        self.extra = nn.ModuleList([Block(c), nn.ModuleList([nn.Linear(c, c)])])
        self.heads = nn.ModuleDict({"cls": nn.Linear(c, classes), "aux": nn.Linear(c, 2)})
        self.feature_info = [dict(num_chs=c, module="layer1")]  # a plain list: no child
        self.stem_names = [n for n, _ in self.stem.named_children()]
        self.seen = []
        named_apply(self._record, self)

    def _record(self, module, name=''):
        if isinstance(module, nn.Linear):
            self.seen.append(name)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        x = self.extra[1][0](self.extra[0](x))
        return self.heads["cls"](x), self.heads["aux"](x)
'''


def _convert(source: str, name: str):
    result = convert_source(source, f"{name}.py")
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    assert not torch_names(result.code), torch_names(result.code)
    assert convert_source(result.code).code == result.code, "converting the output again changed it"
    return result


def _kind(module) -> str:
    """A module's class name, torch's containers named as what they become in MLX."""
    name = type(module).__name__
    name = name[len("Torch"):] if name.startswith("Torch") else name  # TorchSequential: torch's Sequential
    return {"ModuleList": "list", "ModuleDict": "dict"}.get(name, name)


def test_timm_walks_and_stages_match_torch():
    import mlx.core as mx
    import torch

    result = _convert(TIMM_LIKE, "timm_like")
    for method in (".named_children(", ".children(", ".add_module("):
        assert method not in result.code.split("def named_apply")[1], method
    torch_ns, mlx_ns = exec_source(TIMM_LIKE, "torch_timm_like"), exec_source(result.code, "mlx_timm_like")
    torch.manual_seed(0)
    torch_model = torch_ns["Net"]().eval()
    mlx_model = mlx_ns["Net"]()
    mlx_model.eval()
    # the walks: torch's names, in torch's order, the same kinds of module at each
    assert mlx_model.seen == torch_model.seen
    assert len(torch_model.seen) == 11
    assert mlx_model.stem_names == torch_model.stem_names == ["0", "1"]
    for depth_first in (True, False):
        theirs = list(torch_ns["named_modules"](torch_model, depth_first=depth_first, include_root=True))
        mine = list(mlx_ns["named_modules"](mlx_model, depth_first=depth_first, include_root=True))
        assert [(n, _kind(m)) for n, m in mine] == [(n, _kind(m)) for n, m in theirs]
    assert [n for n, _ in mlx_ns["module_named_children"](mlx_model)] == [n for n, _ in torch_model.named_children()]
    assert [_kind(m) for m in mlx_ns["module_children"](mlx_model.layer1)] == ["Block", "Block"]
    # the weights load under torch's names (the stages' blocks where add_module put them) and the outputs agree
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and len(report.loaded) == len(torch_model.state_dict()), report
    x = np.random.RandomState(0).standard_normal((4, 5)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert_close(mlx_model(mx.array(x)), expected, channels_last_output=False)


ADD_MODULE_ERRORS = '''
import torch.nn as nn


class Host(nn.Module):
    def __init__(self):
        super().__init__()
        self.width = 4
        self.fc = nn.Linear(2, 2)


def add(host, name, module):
    host.add_module(name, module)
    return host


def add_to_sequential(name):
    seq = nn.Sequential(nn.Linear(2, 2))
    seq.add_module(name, nn.ReLU())
    return seq


def children_of(module):
    return [name for name, _ in module.named_children()]
'''


@pytest.mark.parametrize("name, module, error", [
    ("a.b", "linear", KeyError), ("", "linear", KeyError), (3, "linear", TypeError), ("fc2", "int", TypeError),
    ("width", "linear", KeyError),
])
def test_add_module_raises_as_torch(name, module, error):
    import torch

    result = _convert(ADD_MODULE_ERRORS, "add_module_errors")
    for ns, lib in ((exec_source(ADD_MODULE_ERRORS, "torch_add_errors"), torch.nn),
                    (exec_source(result.code, "mlx_add_errors"), None)):
        import mlx.nn

        value = {"linear": (lib or mlx.nn).Linear(2, 2), "int": 5}[module]
        with pytest.raises(error):
            ns["add"](ns["Host"](), name, value)


def test_add_module_replaces_in_place_and_keeps_order():
    import torch

    result = _convert(ADD_MODULE_ERRORS, "add_module_order")
    import mlx.nn

    for ns, lib in ((exec_source(ADD_MODULE_ERRORS, "torch_add_order"), torch.nn),
                    (exec_source(result.code, "mlx_add_order"), mlx.nn)):
        host = ns["Host"]()
        ns["add"](host, "z", lib.ReLU())
        ns["add"](host, "a", lib.ReLU())
        ns["add"](host, "fc", lib.GELU())  # an existing child: replaced where it was
        assert ns["children_of"](host) == ["fc", "z", "a"]
        assert type(host.fc).__name__ == "GELU"


def test_what_mlx_cannot_name_raises():
    """A Sequential grown where it is built is flagged in the channels-last build (nn-layout reads the
    constructor's layers only), with the mark that makes layout "auto" build the file in torch's layout, where it
    is a TorchSequential (any name, torch's order); add_module on an MLX nn.Sequential raises (its layers are
    numbered). An empty list member may be an empty ModuleList (a child in torch) or a plain list (not): raises."""
    import mlx.nn
    import torch

    from torch2mlx.layout_facts import CONTAINER_LAYOUT_MARK

    conv = "import torch.nn as nn\n\n\ndef stem():\n    s = nn.Sequential()\n    s.add_module('conv1', nn.Conv2d(3, 4, 3))\n    return s\n"
    channels_last = convert_source(conv, "grown_cl.py", layout="channels-last")
    flags = [d for d in warnings(channels_last) if d.rule_id == "torch.nn.Sequential"]
    assert len(flags) == 1 and CONTAINER_LAYOUT_MARK in flags[0].message, channels_last.code
    assert "s = TorchSequential()" in _convert(conv, "grown_auto").code  # auto: the torch-layout build
    result = _convert(ADD_MODULE_ERRORS, "add_module_mlx")  # no channels-last layer in the file
    assert "seq = TorchSequential(" in result.code
    ns, torch_ns = exec_source(result.code, "mlx_add_mlx"), exec_source(ADD_MODULE_ERRORS, "torch_add_mlx")
    for name in ("1", "pool"):
        assert ns["children_of"](ns["add_to_sequential"](name)) == torch_ns["children_of"](
            torch_ns["add_to_sequential"](name)) == ["0", name]
    seq = ns["add_to_sequential"]("pool")
    x = np.array([[-1.0, 2.0]], dtype=np.float32)
    expected = torch_ns["add_to_sequential"]("pool")
    expected[0].load_state_dict({"weight": torch.from_numpy(np.array(seq[0].weight)),
                                 "bias": torch.from_numpy(np.array(seq[0].bias))})
    with torch.no_grad():
        assert_close(seq(__import__("mlx.core").core.array(x)), expected(torch.from_numpy(x)), channels_last_output=False)
    with pytest.raises(NotImplementedError):
        ns["add"](mlx.nn.Sequential(mlx.nn.ReLU()), "1", mlx.nn.ReLU())
    host = ns["Host"]()
    host.blocks = []
    with pytest.raises(NotImplementedError):
        ns["children_of"](host)
    host.blocks = [mlx.nn.ReLU()]
    assert ns["children_of"](host) == ["fc", "blocks"]
    with pytest.raises(KeyError):  # an MLX method of that name would hide the module
        ns["add"](host, "update", mlx.nn.ReLU())


def test_other_objects_keep_their_methods():
    """A receiver that is no MLX module (a tree of its own, a class defining the method) gets its own method."""
    source = '''
import torch.nn as nn


class Tree:
    def __init__(self, kids):
        self.kids = kids

    def children(self):
        return ["own", *self.kids]

    def add_module(self, name, module):
        self.kids.append(name)


def walk(tree):
    tree.add_module("x", None)
    return list(tree.children())


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
'''
    result = _convert(source, "own_methods")
    assert "module_children(tree)" in result.code
    ns = exec_source(result.code, "mlx_own_methods")
    assert ns["walk"](ns["Tree"](["a"])) == ["own", "a", "x"]


def test_super_receiver_stays_flagged():
    """`super().add_module(...)`: the helper would be handed the super proxy, not the module: left as written, and
    the audit flags it (torch-module-member) as before."""
    source = '''
import torch.nn as nn


class Stage(nn.Module):
    def __init__(self):
        super().__init__()
        super().add_module("fc", nn.Linear(2, 2))
'''
    result = convert_source(source, "super_add.py")
    assert "super().add_module(" in result.code
    assert [d.rule_id for d in warnings(result)] == ["torch-module-member"], result.code


# torchvision densenet's _Transition (modules set as attributes of an nn.Sequential subclass) and regnet's AnyStage
# (add_module in a loop): torch's Sequential runs them in the order they were set. layer_bases.TorchSequential
# registers them so (attributes and add_module) and runs them in that order, under torch's names.
SEQUENTIAL_SUBCLASSES = '''
class Transition(Sequential):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm = nn.LayerNorm(cin)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(cin, cout)


class AnyStage(Sequential):
    def __init__(self, c, depth, stage_index=1):
        super().__init__()
        for i in range(depth):
            self.add_module(f"block{stage_index}-{i}", nn.Linear(c, c))
        self.width = c


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.trans = Transition(4, 6)
        self.stage = AnyStage(6, 3)

    def forward(self, x):
        return self.stage(self.trans(x))
'''


def test_torch_sequential_runs_modules_set_on_self_in_order():
    import mlx.core as mx
    import torch

    from torch2mlx.transforms.module.layer_bases import BASE_CODE

    torch_ns = exec_source("import torch.nn as nn\nSequential = nn.Sequential\n" + SEQUENTIAL_SUBCLASSES, "torch_seq")
    mlx_source = ("import mlx.core as mx\nimport mlx.nn as nn\n" + BASE_CODE["TorchSequential"]
                  + "\nSequential = TorchSequential\n" + SEQUENTIAL_SUBCLASSES.replace("def forward", "def __call__"))
    mlx_ns = exec_source(mlx_source, "mlx_seq")
    helpers = exec_source(convert_source(ADD_MODULE_ERRORS, "walks.py").code, "mlx_walks")
    torch.manual_seed(0)
    torch_model = torch_ns["Net"]().eval()
    mlx_model = mlx_ns["Net"]()
    for part in ("trans", "stage"):
        assert helpers["children_of"](mlx_model[part]) == [n for n, _ in getattr(torch_model, part).named_children()]
    assert mlx_model.stage.width == 6 and len(mlx_model.stage) == 3
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and len(report.loaded) == len(torch_model.state_dict()), report
    x = np.random.RandomState(0).standard_normal((3, 4)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert_close(mlx_model(mx.array(x)), expected, channels_last_output=False)


# torchvision densenet.py: features = nn.Sequential(OrderedDict([("conv0", nn.Conv2d(...)), ...])), then
# self.features.add_module("denseblock%d" ...) / ("norm5", ...). Its convolutions take channels-last data in MLX,
# which the channels-last analysis does not follow through TorchSequential: the flag says so (with the mark that
# makes the file one built in torch's layout), and in torch's layout the dict's layers run as torch runs them.
DENSENET_LIKE = '''
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, growth, kernel_size=3, padding=1, bias=False)

    def forward(self, x):
        return torch.cat([x, self.conv1(self.relu1(self.norm1(x)))], 1)


class Net(nn.Module):
    def __init__(self, growth=4, classes=3):
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv0", nn.Conv2d(3, 8, kernel_size=7, stride=2, padding=3, bias=False)),
                    ("norm0", nn.BatchNorm2d(8)),
                    ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                ]
            )
        )
        c = 8
        for i in range(2):
            self.features.add_module("denselayer%d" % (i + 1), DenseLayer(c, growth))
            c += growth
        self.features.add_module("norm5", nn.BatchNorm2d(c))
        self.classifier = nn.Linear(c, classes)

    def forward(self, x):
        features = self.features(x)
        out = F.relu(features, inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        out = torch.flatten(out, 1)
        return self.classifier(out)
'''


def test_named_sequential_of_convolutions_in_torch_layout_matches_torch():
    import mlx.core as mx
    import torch

    from tests.model_support import randomize_parameters
    from torch2mlx.layout_facts import CONTAINER_LAYOUT_MARK

    channels_last = convert_source(DENSENET_LIKE, "densenet_like.py", layout="channels-last")
    flags = [d for d in warnings(channels_last) if d.rule_id == "torch.nn.Sequential"]
    assert flags and CONTAINER_LAYOUT_MARK in flags[0].message, channels_last.code
    result = _convert(DENSENET_LIKE, "densenet_like")  # layout "auto": torch's, since channels-last flags
    assert "self.features = TorchSequential(" in result.code
    assert 'module_add_module(self.features, "norm5", ' in result.code
    torch_ns, mlx_ns = exec_source(DENSENET_LIKE, "torch_densenet_like"), exec_source(result.code, "mlx_densenet_like")
    torch.manual_seed(0)
    torch_model = torch_ns["Net"]()
    randomize_parameters(torch_model)
    torch_model.eval()
    mlx_model = mlx_ns["Net"]()
    mlx_model.eval()
    names = ["conv0", "norm0", "relu0", "pool0", "denselayer1", "denselayer2", "norm5"]
    helpers = exec_source(convert_source(ADD_MODULE_ERRORS, "walks.py").code, "mlx_walks")
    assert helpers["children_of"](mlx_model.features) == names
    assert [n for n, _ in torch_model.features.named_children()] == names
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and len(report.loaded) == len(
        [k for k in torch_model.state_dict() if not k.endswith("num_batches_tracked")]), report
    x = np.random.RandomState(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert np.abs(expected.numpy()).max() > 0.1
    assert_close(mlx_model(mx.array(x)), expected, channels_last_output=False)


def test_a_list_grown_then_made_a_sequential_is_a_plain_sequential():
    """`layers = []`, `layers.append(m)`, `layers = nn.Sequential(*layers)`: the list grows, not the Sequential,
    which stays MLX's (nn-layout follows it)."""
    source = '''
import torch.nn as nn


def make(c):
    layers = []
    layers.append(nn.Conv2d(c, c, 3, padding=1))
    layers.append(nn.ReLU())
    layers = nn.Sequential(*layers)
    return layers
'''
    result = convert_source(source, "list_grown.py", layout="channels-last")
    assert "layers = nn.Sequential(*layers)" in result.code
    assert "TorchSequential" not in result.code
    assert not [d for d in warnings(result) if d.rule_id == "torch.nn.Sequential"], result.code
