"""In-place flags on real models (torchvision's vgg, mnasnet, squeezenet, shufflenetv2, densenet, resnet, efficientnet,
swin, vision_transformer, ops.stochastic_depth): each idiom reduced to a minimal model, converted, run under torch
and MLX and compared; the variants where another reference would see torch's update stay flagged."""
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402
from torch2mlx.verify import compare, run_function, to_numpy  # noqa: E402
from tests.model_support import assert_close, channels_last, exec_source, randomize_batch_norm  # noqa: E402

HEADER = ("from collections import OrderedDict\nfrom typing import Callable, Optional\n\n"
          "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n")


def _warnings(result) -> list:
    return [d for d in result.diagnostics if d.severity.value != "info"]


def _inplace_flags(result) -> list:
    return [d for d in _warnings(result) if "inplace" in d.message or "in-place" in d.message]


def _converted_matches_torch(source: str, build: str, shape: tuple, nhwc: bool = True):
    """Convert; no in-place flag and no `inplace` left; a second conversion changes nothing; torch and MLX agree
    with torch's weights loaded (eval mode, batch-norm statistics randomised)."""
    source = HEADER + textwrap.dedent(source)
    result = convert_source(source, "model.py", layout="channels-last")  # (the NHWC input below)
    assert not _inplace_flags(result), "\n".join(d.format() for d in result.diagnostics) + "\n" + result.code
    assert "inplace" not in result.code, result.code
    assert convert_source(result.code, "model.py", layout="channels-last").code == result.code
    torch.manual_seed(0)
    torch_model = eval(build, exec_source(source, "torch_model"))  # noqa: S307 - the test's own expression
    randomize_batch_norm(torch_model)
    torch_model.eval()
    mlx_model = eval(build, exec_source(result.code, "mlx_model"))  # noqa: S307
    mlx_model.eval()
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and report.loaded
    x = np.random.RandomState(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert_close(mlx_model(mx.array(channels_last(x) if nhwc else x)), expected)
    return result


# vgg.py make_layers: a list built with `layers += [...]` in a loop, unpacked into nn.Sequential and returned
VGG = '''
def make_layers(cfg, batch_norm=False):
    layers: list = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
        else:
            conv2d = nn.Conv2d(in_channels, v, kernel_size=3, padding=1)
            if batch_norm:
                layers += [conv2d, nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            else:
                layers += [conv2d, nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, features, num_classes=5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Linear(8, 8), nn.ReLU(True), nn.Dropout(p=0.5), nn.Linear(8, num_classes))

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.classifier(x)
        return x
'''


@pytest.mark.parametrize("batch_norm", [True, False])
def test_vgg_layers_built_in_a_list(batch_norm):
    _converted_matches_torch(VGG, f"VGG(make_layers([4, 'M', 8], batch_norm={batch_norm}))", (2, 3, 8, 8))


# mnasnet.py: a list literal unpacked into nn.Sequential held by the model; efficientnet.py: an in-place Dropout
# first in the classifier, whose input is `torch.flatten(self.avgpool(x), 1)` (a view of a new tensor)
MNASNET = '''
class MNASNet(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        layers = [
            nn.Conv2d(3, 4, 3, padding=1, stride=2, bias=False),
            nn.BatchNorm2d(4),
            nn.ReLU(inplace=True),
            nn.Conv2d(4, 8, 1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
        ]
        self.layers = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=0.2, inplace=True), nn.Linear(8, num_classes))

    def forward(self, x):
        x = self.layers(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)
'''


def test_mnasnet_list_literal_and_efficientnet_dropout():
    _converted_matches_torch(MNASNET, "MNASNet()", (2, 3, 8, 8))


# squeezenet.py: `self.features` assigned per version (if/elif), a local `final_conv` inside the classifier
SQUEEZENET = '''
class SqueezeNet(nn.Module):
    def __init__(self, version="1_0", num_classes=5):
        super().__init__()
        if version == "1_0":
            self.features = nn.Sequential(nn.Conv2d(3, 8, kernel_size=3, stride=2), nn.ReLU(inplace=True),
                                          nn.MaxPool2d(kernel_size=2, stride=2))
        elif version == "1_1":
            self.features = nn.Sequential(nn.Conv2d(3, 8, kernel_size=3), nn.ReLU(inplace=True))
        else:
            raise ValueError(version)
        final_conv = nn.Conv2d(8, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.5), final_conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1))
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is final_conv:
                nn.init.normal_(m.weight, mean=0.0, std=0.01)

    def forward(self, x):
        x = self.features(x)
        x = self.classifier(x)
        return torch.flatten(x, 1)
'''


@pytest.mark.parametrize("version", ["1_0", "1_1"])
def test_squeezenet_features_per_version_and_local_final_conv(version):
    _converted_matches_torch(SQUEEZENET, f"SqueezeNet({version!r})", (2, 3, 9, 9))


# shufflenetv2.py: `self.branch1` is a Sequential with an in-place ReLU, or an empty nn.Sequential()
SHUFFLE = '''
class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride):
        super().__init__()
        self.stride = stride
        if self.stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(inp, oup, kernel_size=3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(oup),
                nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(nn.Conv2d(inp, oup, kernel_size=1, stride=stride), nn.ReLU(inplace=True))

    def forward(self, x):
        return torch.cat((self.branch1(x), self.branch2(x)), dim=1)
'''


@pytest.mark.parametrize("stride", [1, 2])
def test_shufflenet_branch_assigned_twice(stride):
    _converted_matches_torch(SHUFFLE, f"InvertedResidual(4, 4, {stride})", (2, 4, 8, 8))


# densenet.py: an nn.Sequential subclass with its layers as attributes (_Transition); layers appended with
# add_module under new names; `F.relu(features, inplace=True)` on a name not read afterwards
DENSENET = '''
class _Transition(nn.Sequential):
    def __init__(self, num_input_features, num_output_features):
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv0", nn.Conv2d(3, 8, kernel_size=3, stride=1, padding=1, bias=False)),
                    ("norm0", nn.BatchNorm2d(8)),
                    ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                ]
            )
        )
        for i in range(2):
            trans = _Transition(num_input_features=8, num_output_features=8)
            self.features.add_module("transition%d" % (i + 1), trans)
        self.features.add_module("norm5", nn.BatchNorm2d(8))
        self.classifier = nn.Linear(8, num_classes)

    def forward(self, x):
        features = self.features(x)
        out = F.relu(features, inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        out = torch.flatten(out, 1)
        out = self.classifier(out)
        return out
'''


def test_densenet_add_module_and_dead_name():
    """The in-place decisions only: MLX's nn.Sequential has no add_module and no OrderedDict form (flagged by the
    Sequential rule), so this model does not run converted; `features` not read after F.relu is checked
    numerically among the functions below."""
    result = convert_source(HEADER + textwrap.dedent(DENSENET), "model.py")
    flags = {d.line: d.message for d in _inplace_flags(result)}
    relu0 = HEADER.count("\n") + DENSENET.count("\n", 0, DENSENET.index('("relu0"')) + 1
    assert relu0 not in flags and "F.relu(features, inplace=True)" not in result.code, flags
    assert "out = nn.relu(features)" in result.code and "import mlx.nn as nn\n" in result.code  # nothing flagged: no torch.nn


def test_sequential_subclass_with_attribute_layers_runs_them_in_order():
    """densenet's _Transition: the ReLU follows the norm in torch's Sequential.forward; the class derives from
    TorchSequential (nn-layer-values), which runs the layers set as attributes in that order, so the in-place ReLU
    is exact (it was flagged while the base was MLX's nn.Sequential, which calls only its constructor's layers;
    run against torch in tests/test_inplace_sequential_attributes.py)."""
    result = convert_source(HEADER + textwrap.dedent(DENSENET), "model.py")
    assert _inplace_flags(result) == []
    assert "class _Transition(TorchSequential):" in result.code


# resnet.py: `self.conv1 = conv3x3(...)` (a function of the file returning a layer) and `self.bn1 =
# norm_layer(planes)` (a parameter, a torch norm layer unless the caller passes another): converted, with an
# info note saying what the exactness assumes of the caller's layer. (Linear/LayerNorm stand for resnet's
# Conv2d/BatchNorm2d: the channels-last layout of a norm layer built by a parameter is nn-layout's business.)
RESNET = '''
def conv3x3(in_planes, out_planes):
    return nn.Linear(in_planes, out_planes, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, norm_layer: Optional[Callable[..., nn.Module]] = None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.LayerNorm
        self.conv1 = conv3x3(inplanes, planes)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)

    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out += identity
        out = self.relu(out)
        return out
'''


def test_resnet_block_with_norm_layer_parameter():
    result = _converted_matches_torch(RESNET, "BasicBlock(4, 4)", (3, 4), nhwc=False)
    notes = [d.message for d in result.diagnostics if d.rule_id == "nn-inplace-activation"]
    assert notes and all("norm_layer" in m and "self.bn" in m for m in notes), notes


def test_norm_layer_parameter_without_a_torch_default_stays_flagged():
    source = HEADER + RESNET.replace("        if norm_layer is None:\n            norm_layer = nn.LayerNorm\n", "")
    assert any("may share" in d.message for d in _inplace_flags(convert_source(source)))


# swin_transformer.py: the relative-position MLP of a subclass whose base class (in the same file) never uses it
SWIN = '''
class Attention(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.qkv = nn.Linear(dim, dim * 3)

    def forward(self, x):
        return self.qkv(x)


class AttentionV2(Attention):
    def __init__(self, dim):
        super().__init__(dim)
        self.cpb_mlp = nn.Sequential(nn.Linear(dim, 16, bias=True), nn.ReLU(inplace=True), nn.Linear(16, dim, bias=False))

    def forward(self, x):
        return self.qkv(x) + self.cpb_mlp(x).repeat(1, 3)
'''


def test_swin_mlp_in_a_subclass_of_a_class_of_the_file():
    _converted_matches_torch(SWIN, "AttentionV2(4)", (3, 4), nhwc=False)


# ----- the variants another reference would see: left flagged ---------------------------------------------
FLAGGED = [
    # the base class reads the Sequential's in-place layer alone
    (SWIN.replace("return self.qkv(x)\n", "return self.qkv(x) + self.cpb_mlp[1](x).sum()\n"), "base class"),
    # add_module under the name of a layer: replaces norm0, which the in-place relu0 follows
    (DENSENET.replace('"norm5", nn.BatchNorm2d(8)', '"norm0", nn.Identity()'), "replaced"),
    # the layers reordered before the Sequential is built
    (VGG.replace("nn.Sequential(*layers)", "nn.Sequential(*layers[::-1])"), "inplace"),
    # a list whose first in-place layer sees the Sequential's input
    ("def head():\n    layers = [nn.Identity(), nn.ReLU(inplace=True)]\n    return nn.Sequential(*layers)\n", "first layer"),
    # appended after whatever came before: not followed
    ("def head():\n    layers = [nn.Linear(2, 2)]\n    layers.append(nn.ReLU(inplace=True))\n    return nn.Sequential(*layers)\n",
     "follows a layer"),
    # an nn.Sequential subclass whose in-place layer comes first: it updates the caller's tensor
    ("class T(nn.Sequential):\n    def __init__(self):\n        super().__init__()\n        self.relu = nn.ReLU(inplace=True)\n"
     "        self.fc = nn.Linear(2, 2)\n", "first layer"),
    # an nn.Sequential subclass with a forward of its own
    ("class T(nn.Sequential):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(2, 2)\n"
     "        self.relu = nn.ReLU(inplace=True)\n\n    def forward(self, x):\n        return self.relu(x)\n", "base class"),
    # a local name bound twice is not known to be the conv
    ("def head(c):\n    conv = nn.Conv2d(c, c, 1)\n    conv = nn.Identity()\n    return nn.Sequential(nn.Identity(), conv, nn.ReLU(inplace=True))\n",
     "follows a layer"),
]


@pytest.mark.parametrize("source,why", FLAGGED)
def test_shared_variants_stay_flagged(source, why):
    result = convert_source(HEADER + textwrap.dedent(source))
    messages = [d.message for d in _inplace_flags(result)]
    assert messages and any(why in m for m in messages), "\n".join(d.format() for d in result.diagnostics)
    assert "inplace=True" in result.code or "True)" in result.code
    assert convert_source(result.code).code == result.code


# ----- functions: in-place tensor methods and F.relu(inplace=True) ----------------------------------------
def _function(body: str) -> str:
    return HEADER + "def example(a: torch.Tensor, b: torch.Tensor):\n" + textwrap.indent(textwrap.dedent(body).strip(), "    ") + "\n"


FUNCTIONS = [
    # ops/stochastic_depth.py, survival rate 1 (the draw is all ones, so the values can be compared)
    ("survival_rate = 1.0\nsize = [a.shape[0]] + [1] * (a.ndim - 1)\nnoise = torch.empty(size, dtype=a.dtype)\n"
     "noise = noise.bernoulli_(survival_rate)\nif survival_rate > 0.0:\n    noise.div_(survival_rate)\nreturn a * noise",
     "noise = mx.random.bernoulli("),
    # timm's drop_path: `x.new_empty(shape).bernoulli_(keep_prob)` (keep_prob 1: deterministic)
    ("keep_prob = 1.0\nshape = (a.shape[0],) + (1,) * (a.ndim - 1)\nrandom_tensor = a.new_empty(shape).bernoulli_(keep_prob)\n"
     "random_tensor.div_(keep_prob)\nreturn a * random_tensor", "random_tensor = mx.random.bernoulli("),
    # vision_transformer.py: the update of a new tensor, its value used (std 0: deterministic)
    ("pos = torch.empty(1, 2, 6).normal_(mean=2.0, std=0.0)\nreturn a + pos", "mx.random.normal("),
    ("return torch.zeros(2, 6).uniform_(1.0, 1.0) * a", "mx.random.uniform("),
    # swin_transformer.py shifted_window_attention: a slice of a clone of a parameter zeroed
    ("qkv_bias = b.clone()\nlength = qkv_bias.numel() // 3\nqkv_bias[length : 2 * length].zero_()\nreturn qkv_bias",
     "qkv_bias[length : 2 * length] = 0"),
    ("y = a * 2\ny[0:1].fill_(5.0)\nreturn y", "y[0:1] = 5.0"),
    # densenet.py: the argument is not read after the update
    ("features = a * 2\nout = F.relu(features, inplace=True)\nout = out + b\nreturn out", "out = nn.relu(features)"),
]


@pytest.mark.parametrize("body,expected", FUNCTIONS)
def test_function_idioms_convert_and_match_torch(body, expected):
    source = _function(body)
    result = convert_source(source)
    assert not _warnings(result), "\n".join(d.format() for d in result.diagnostics) + "\n" + result.code
    assert expected in result.code, result.code
    assert convert_source(result.code).code == result.code
    rng = np.random.RandomState(0)
    inputs = {"a": rng.standard_normal((2, 6)).astype(np.float32), "b": rng.standard_normal((2, 6)).astype(np.float32)}
    expected_value = to_numpy(run_function(source, inputs, "torch"))
    assert compare(expected_value, to_numpy(run_function(result.code, inputs, "mlx")), "values") is None


FUNCTIONS_FLAGGED = [
    "noise = a\nnoise = noise.bernoulli_(0.5)\nreturn noise",                       # the caller's tensor
    "y = a * 1\nv = y.view(-1)\ny[0:1].zero_()\nreturn v",                          # a view sees the write
    "a[0:1].zero_()\nreturn a",                                                    # the caller's tensor
    "y = a * 1\ny[b > 0].zero_()\nreturn y",                                       # torch zeroes a copy
    "y = a * 1\nz = y\ny[0:1].zero_()\nreturn z + y",                              # another name holds y's tensor
    "return torch.empty(a.shape[0] + int(b.sum())).normal_()",                      # the receiver is not repeatable
    "return a.new_empty(a.shape).bernoulli_(0.5) + a.view(-1).new_empty(a.shape[0]).bernoulli_(0.5)",  # nor here
    "y = a[0:1].clone()\nreturn y.new_empty(y.shape).bernoulli_(0.5, generator=None)",  # generator=: not bound
    "features = a * 2\nout = F.relu(features, inplace=True)\nreturn out + features",  # read after the update
    "f = a * 2\nfor i in range(2):\n    out = F.relu(f, inplace=True)\nreturn out",   # read again by the next iteration
]


def test_module_level_name_not_read_later_in_the_file_stays_flagged():
    """Another module may import `features` and read it after the update."""
    source = HEADER + "features = torch.ones(3) * 2\nout = F.relu(features, inplace=True)\n"
    assert any("still refers" in d.message for d in _inplace_flags(convert_source(source)))


@pytest.mark.parametrize("body", FUNCTIONS_FLAGGED)
def test_function_idioms_stay_flagged(body):
    result = convert_source(_function(body))
    assert _warnings(result), result.code
    assert convert_source(result.code).code == result.code


def test_swin_bias_slice_zeroed_in_init():
    source = HEADER + textwrap.dedent('''
        class A(nn.Module):
            def __init__(self, dim, qkv_bias=True):
                super().__init__()
                self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
                self.register_buffer("relative_position_index", torch.zeros(3))
                if qkv_bias:
                    length = self.qkv.bias.numel() // 3
                    self.qkv.bias[length : 2 * length].data.zero_()
        ''')
    result = convert_source(source)
    assert not _warnings(result), result.code
    assert "self.qkv.bias[length : 2 * length] = 0" in result.code
    torch.manual_seed(0)
    expected = exec_source(source, "t")["A"](4).qkv.bias.detach().numpy()
    mx.random.seed(0)
    actual = np.array(exec_source(result.code, "m")["A"](4).qkv.bias)
    assert (expected[4:8] == 0).all() and (actual[4:8] == 0).all()
    assert (actual[:4] != 0).all() and (actual[8:] != 0).all()  # the rest keeps its initial values


def test_attribute_assigned_in_the_file_keeps_the_bias_slice_flagged():
    source = HEADER + textwrap.dedent('''
        class A(nn.Module):
            def __init__(self, dim, shared):
                super().__init__()
                self.qkv = nn.Linear(dim, dim * 3)
                self.qkv.bias = shared
                self.qkv.bias[0:2].data.zero_()
        ''')
    assert _inplace_flags(convert_source(source))


# convnext.py / edgenext.py _init_weights: `module.weight.data.mul_(head_init_scale)` on a layer's parameter
HEAD_INIT = '''
class Net(nn.Module):
    def __init__(self, head_init_scale=0.5):
        super().__init__()
        self.stem = nn.Linear(4, 4)
        self.head = nn.Linear(4, 3)
        for name, m in self.named_modules():
            _init_weights(m, name, head_init_scale)

    def forward(self, x):
        return self.head(self.stem(x))


def _init_weights(module, name=None, head_init_scale=1.0):
    if isinstance(module, nn.Linear):
        if name and "head" in name:
            module.weight.data.mul_(head_init_scale)
            module.bias.data.mul_(head_init_scale)
            module.weight.data.clamp_(max=0.1)
'''


def test_layer_parameter_updated_in_place_by_init_code():
    source = HEADER + textwrap.dedent(HEAD_INIT)
    result = convert_source(source)
    assert not _inplace_flags(result), "\n".join(d.format() for d in result.diagnostics)
    assert "module.weight[:] = mx.multiply(module.weight, head_init_scale)" in result.code
    assert convert_source(result.code).code == result.code
    torch_model = exec_source(source, "t")["Net"]()
    mlx_model = exec_source(result.code, "m")["Net"]()
    # the same initial values in both, then the init function applied again: it scales and clips the head
    load_torch_weights(mlx_model, torch_model.state_dict())
    torch_ns, mlx_ns = exec_source(source, "t2"), exec_source(result.code, "m2")
    torch_ns["_init_weights"](torch_model.head, "head", 0.5)
    mlx_ns["_init_weights"](mlx_model.head, "head", 0.5)
    np.testing.assert_allclose(np.array(mlx_model.head.weight), torch_model.head.weight.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.array(mlx_model.head.bias), torch_model.head.bias.detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("other", ["def tie(a, b):\n    a.weight = b.weight\n",
                                   "def tie(a, b):\n    a.register_parameter('weight', b.weight)\n",
                                   "def tie(a, b, name):\n    setattr(a, name, b.weight)\n"])
def test_layer_parameter_of_a_file_that_assigns_weights_stays_flagged(other):
    assert _inplace_flags(convert_source(HEADER + textwrap.dedent(HEAD_INIT) + "\n\n" + other))
