"""Channels-last layout through torchvision ResNet's construction idioms (a minimal reproduction of
torchvision/models/resnet.py): `norm_layer` defaulting to None then nn.BatchNorm2d, kept as `self._norm_layer` and
read back in `_make_layer`; `self.layer1 = self._make_layer(block, ...)`, a method returning
`nn.Sequential(*layers)` of `block(...)`, `block` the class `_resnet(BasicBlock, ...)` passes on through
`ResNet(block, ...)`; `downsample` None or conv + norm, passed to `block(...)` and kept as `self.downsample`.
Each model runs in torch and, converted, in MLX with the same weights."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402
from tests.model_support import (  # noqa: E402
    assert_close, channels_last, exec_source, randomize_batch_norm, warnings)

HEADER = "import torch\nimport torch.nn as nn\nfrom typing import Optional, Callable\n\n\n"

RESNET = '''def conv3x3(in_planes, out_planes, stride=1, groups=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion: int = 1

    def __init__(self, inplanes, planes, stride=1, downsample: Optional[nn.Module] = None, groups=1,
                 norm_layer: Optional[Callable[..., nn.Module]] = None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    expansion: int = 2

    def __init__(self, inplanes, planes, stride=1, downsample: Optional[nn.Module] = None, groups=1,
                 norm_layer: Optional[Callable[..., nn.Module]] = None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, stride, groups)
        self.bn2 = norm_layer(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=5, groups=1, norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer
        self.inplanes = 4
        self.groups = groups
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 4, layers[0])
        self.layer2 = self._make_layer(block, 8, layers[1], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1):
        norm_layer = self._norm_layer
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       norm_layer(planes * block.expansion))
        layers = []
        layers.append(block(self.inplanes, planes, stride, downsample, self.groups, norm_layer))
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups, norm_layer=norm_layer))
        return nn.Sequential(*layers)

    def _forward_impl(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)

    def forward(self, x):
        return self._forward_impl(x)


def _resnet(block, layers, **kwargs):
    model = ResNet(block, layers, **kwargs)
    return model


def resnet_basic(**kwargs):
    return _resnet(BasicBlock, [2, 2], **kwargs)


def resnet_bottleneck(**kwargs):
    return _resnet(Bottleneck, [1, 2], groups=2, **kwargs)
'''


def _converted(source: str = RESNET):
    return convert_source(HEADER + source, "model.py", layout="channels-last")


def _layout_warnings(result) -> list:
    return [d for d in warnings(result) if d.rule_id == "nn-layout"]


@pytest.mark.parametrize("builder", ["resnet_basic", "resnet_bottleneck"])
def test_resnet_make_layer_converts_without_flags_and_matches_torch(builder):
    result = _converted()
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    code = result.code
    # every block and the stem stay channels-last: no transposes anywhere in the classes
    assert "transpose" not in code.split("class BasicBlock")[1], code
    assert "followed_class(block, BasicBlock, Bottleneck)(" in code
    assert "channels_last_layer(norm_layer, BatchNorm2dNCHW, BatchNorm2dNHWC)(planes * block.expansion)" in code
    torch.manual_seed(0)
    torch_model = exec_source(HEADER + RESNET, "torch_model")[builder]()
    randomize_batch_norm(torch_model)
    torch_model.eval()
    mlx_model = exec_source(code, "mlx_model")[builder]()
    mlx_model.eval()
    assert load_torch_weights(mlx_model, torch_model.state_dict()).ok
    x = np.random.RandomState(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert np.abs(expected.numpy()).max() > 0.1
    assert_close(mlx_model(mx.array(channels_last(x))), expected)


def test_a_block_class_other_code_passes_raises_at_construction():
    # the blocks were followed for the classes this file passes; another class (other code's) is not known to take
    # and give channels-last maps, and a norm layer class value other than the default's helper is not either
    ns = exec_source(_converted().code, "mlx_model")

    class Other(ns["nn"].Module):
        expansion = 1

        def __init__(self, *args, **kwargs):
            super().__init__()

    with pytest.raises(NotImplementedError, match="followed for BasicBlock, Bottleneck"):
        ns["ResNet"](Other, [1, 1])
    with pytest.raises(NotImplementedError, match="not known to take channels-last data"):
        ns["ResNet"](ns["BasicBlock"], [1, 1], norm_layer=ns["nn"].LayerNorm)
    assert ns["ResNet"](ns["Bottleneck"], [1, 1]).layer1.layers[0].bn3.__class__ is ns["BatchNorm2dNHWC"]


def test_a_make_layer_overridden_by_a_subclass_is_not_followed():
    # `self._make_layer` may run a subclass's method: what it builds is not known, so layer1's use is flagged
    source = RESNET + '''

class Wider(ResNet):
    def _make_layer(self, block, planes, blocks, stride=1):
        return nn.Sequential(nn.Conv2d(self.inplanes, planes, 1), nn.Flatten())
'''
    assert _layout_warnings(_converted(source))


def test_a_builder_function_used_as_a_value_gives_no_call_site_facts():
    # `_resnet` handed on as a value may be called by other code with any block: `block`'s values are not known
    source = RESNET + "\n\nBUILDERS = {'resnet': _resnet}\n"
    assert _layout_warnings(_converted(source))


def test_a_block_passed_a_module_whose_layout_is_not_followed_is_flagged():
    # one construction passes a downsample the analysis cannot follow (a module of unknown layout)
    source = RESNET + '''

def odd_block(make_down):
    return BasicBlock(4, 4, 1, make_down())
'''
    assert _layout_warnings(_converted(source))


SHUFFLE_BLOCK = '''class Branches(nn.Module):
    def __init__(self, inp, stride):
        super().__init__()
        self.stride = stride
        self.branch1 = nn.Sequential(
            self.depthwise_conv(inp, inp, kernel_size=3, stride=stride, padding=1),
            nn.BatchNorm2d(inp),
            nn.ReLU(inplace=True),
        )
        self.branch2 = nn.Sequential(nn.Conv2d(inp, inp, 1, bias=False), nn.BatchNorm2d(inp))

    @staticmethod
    def depthwise_conv(i, o, kernel_size, stride=1, padding=0, bias=False):
        return nn.Conv2d(i, o, kernel_size, stride, padding, bias=bias, groups=i)

    def forward(self, x):
        return torch.cat((self.branch1(x), self.branch2(x)), dim=1)
'''


def test_a_layer_factory_method_of_the_class_is_followed():
    # torchvision shufflenetv2's InvertedResidual builds its depthwise convolutions with a static method
    result = convert_source(HEADER + SHUFFLE_BLOCK, "model.py", layout="channels-last")
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    torch_model = exec_source(HEADER + SHUFFLE_BLOCK, "torch_model")["Branches"](4, 1)
    randomize_batch_norm(torch_model)
    torch_model.eval()
    mlx_model = exec_source(result.code, "mlx_model")["Branches"](4, 1)
    mlx_model.eval()
    assert load_torch_weights(mlx_model, torch_model.state_dict()).ok
    x = np.random.RandomState(0).standard_normal((2, 4, 6, 6)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert_close(mlx_model(mx.array(channels_last(x))), expected)


VIT_PATCHES = '''class Patches(nn.Module):
    def __init__(self, patch_size=4, hidden_dim=6, split=None):
        super().__init__()
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.split = split
        self.conv_proj = nn.Conv2d(3, hidden_dim, kernel_size=patch_size, stride=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden_dim))
        self.head = nn.Linear(hidden_dim, 5)

    def _process_input(self, x):
        n, c, h, w = x.shape
        p = self.patch_size
        n_h = h // p
        n_w = w // p
        x = self.conv_proj(x)
        if self.split is not None:
            x = x.reshape(n, self.split, -1)
        else:
            x = x.reshape(n, self.hidden_dim, n_h * n_w)
        x = x.permute(0, 2, 1)
        return x

    def forward(self, x):
        x = self._process_input(x)
        n = x.shape[0]
        batch_class_token = self.class_token.expand(n, -1, -1)
        x = torch.cat([batch_class_token, x], dim=1)
        return self.head(x)
'''


def test_vit_patch_reshape_of_a_channels_last_map():
    # torchvision ViT's _process_input: `x.reshape(n, hidden_dim, n_h * n_w)` of the patch convolution's map, then
    # permute(0, 2, 1): torch's (N, C, H*W) is MLX's (N, H*W, C), checked at run time to be that reshape
    source = HEADER + VIT_PATCHES
    result = convert_source(source, "model.py", layout="channels-last")
    assert not warnings(result), "\n".join(d.format() for d in warnings(result)) + "\n" + result.code
    assert "x = reshape_channels_last(x, n, self.hidden_dim, n_h * n_w)" in result.code
    torch.manual_seed(0)
    torch_model = exec_source(source, "torch_model")["Patches"]()
    with torch.no_grad():
        torch_model.class_token.normal_()
    mlx_model = exec_source(result.code, "mlx_model")["Patches"]()
    assert load_torch_weights(mlx_model, torch_model.state_dict()).ok
    x = np.random.RandomState(0).standard_normal((2, 3, 8, 12)).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert_close(mlx_model(mx.array(channels_last(x))), expected, channels_last_output=False)
    # another reshape (channels mixed with positions in torch's layout) raises instead of computing something else
    other = exec_source(result.code, "mlx_model")["Patches"](split=3)
    with pytest.raises(NotImplementedError, match=r"only \(N, C, H\*W\) is translated"):
        other(mx.array(channels_last(x)))


def test_a_loop_over_a_value_of_unknown_layout_is_one_cause_one_warning():
    # torchvision detection/ssd.py: `x = self.features(x)` (not followed: flagged), then `for block in self.extra:
    # x = block(x)`: the loop takes x from unknown to channels-last; that is a note, not a second warning (it sat
    # on the def line, so every torchvision model counted it at import), and x stays unknown after the loop
    source = HEADER + '''class Net(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.features = features
        self.extra = nn.ModuleList([nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)])

    def forward(self, x):
        x = self.features(x)
        for block in self.extra:
            x = block(x)
        return x.mean(1)
'''
    result = convert_source(source, "model.py", layout="channels-last")
    flagged = _layout_warnings(result)
    assert [d.line for d in flagged] == [13], "\n".join(d.format() for d in flagged)
    assert any(d.severity.value == "info" and "`x` may be channels-last or not after this loop" in d.message
               for d in result.diagnostics)
    # read after the loop: kept as written (torch's axis 1), not remapped for a layout
    assert "# MLX layout: kept as written: `x` has an unknown layout here (the line where that began is flagged)\n" \
           "        return x.mean(1)\n" in result.code, result.code
