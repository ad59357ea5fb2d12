"""One way to add a generated helper (`PluginContext.helper`): a name the user's file uses already gets a
fresh one (`LayerNorm_1`), written everywhere the helper is referenced, instead of the construct being refused.

Reproduces timm's models/coat.py, which imports its own `LayerNorm` and passes `norm_layer=nn.LayerNorm`
(the nn-layer-values helper took the name: the converted package failed to import at coat.py's default value).
Each case runs the converted file under MLX against torch with the same weights, and converts its output again
unchanged."""
from __future__ import annotations

import numpy as np

from torch2mlx import convert_source, load_torch_weights
from tests.model_support import assert_close, exec_source, warnings

# the user's own LayerNorm beside torch's, passed as a class value (timm coat.py)
OWN_LAYER_NORM = '''
import torch
import torch.nn as nn


class LayerNorm(nn.Module):
    """The file's own class named like torch's layer: scales its input."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


class Block(nn.Module):
    def __init__(self, dim, norm_layer=nn.LayerNorm, act_layer=nn.GELU):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.norm = norm_layer(dim)
        self.mine = LayerNorm(2.0)
        self.act = act_layer()

    def forward(self, x):
        return self.mine(self.act(self.norm(self.fc(x))))
'''

# a helper the named helper calls is renamed too: `conv_padding` is the file's, so Conv2dNHWC calls conv_padding_1
OWN_CONV_PADDING = '''
import torch
import torch.nn as nn


def conv_padding(k):
    return k // 2


class Net(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=conv_padding(3), **kwargs)

    def forward(self, x):
        return self.conv(x)
'''


def _converted(source: str) -> str:
    result = convert_source(source, "m.py")
    assert not warnings(result), "\n".join(d.format() for d in warnings(result))
    assert convert_source(result.code, "m.py").code == result.code  # converting the output again changes nothing
    return result.code


def _matches_torch(source: str, build, x: np.ndarray, mlx_input: np.ndarray) -> None:
    import mlx.core as mx
    import torch

    torch.manual_seed(0)
    torch_model = build(exec_source(source, "torch_m")).eval()
    mlx_model = build(exec_source(_converted(source), "mlx_m"))
    mlx_model.eval()
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and report.loaded
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert_close(mlx_model(mx.array(mlx_input)), expected, channels_last_output=False)


def test_a_helper_named_like_the_users_class_gets_a_fresh_name():
    code = _converted(OWN_LAYER_NORM)
    assert "class LayerNorm_1(nn.LayerNorm):" in code
    assert "norm_layer=LayerNorm_1," in code
    assert "self.mine = LayerNorm(2.0)" in code  # the user's class keeps its name and its uses
    assert code.count("class LayerNorm(") == 1
    x = np.random.RandomState(0).standard_normal((2, 5, 8)).astype(np.float32)
    _matches_torch(OWN_LAYER_NORM, lambda ns: ns["Block"](8), x, x)


def test_an_imported_name_is_left_to_the_import():
    source = "import torch.nn as nn\nfrom mylayers import LayerNorm\n\nnorm_layer = nn.LayerNorm\nother = LayerNorm\n"
    code = _converted(source)
    assert "norm_layer = LayerNorm_1\nother = LayerNorm\n" in code
    assert "from mylayers import LayerNorm\n" in code


def test_a_renamed_dependency_is_called_by_its_new_name():
    code = _converted(OWN_CONV_PADDING)
    assert "def conv_padding_1(padding, kernel_size, dilation, dims):" in code
    assert "padding = conv_padding_1(padding, kernel_size, dilation, 2)" in code
    assert "def conv_padding(k):\n    return k // 2" in code
    _matches_torch_nhwc(np.random.RandomState(1).standard_normal((2, 3, 6, 6)).astype(np.float32))


def _matches_torch_nhwc(x: np.ndarray) -> None:
    """The converted Net is MLX's channels-last Conv2dNHWC: NHWC data in and out."""
    import mlx.core as mx
    import torch

    torch.manual_seed(0)
    torch_model = exec_source(OWN_CONV_PADDING, "torch_m")["Net"]().eval()
    mlx_model = exec_source(_converted(OWN_CONV_PADDING), "mlx_m")["Net"]()
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and report.loaded
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert_close(mlx_model(mx.array(np.moveaxis(x, 1, -1))), expected)


# the user's own TransformerEncoderLayer beside torch's (issue 14): the local attention classes call each other by
# the names they get
OWN_ENCODER_LAYER = '''
import torch
import torch.nn as nn


class TransformerEncoderLayer(nn.Module):
    """The file's own layer: torch's encoder layer, then a scale."""

    def __init__(self, dim):
        super().__init__()
        self.inner = nn.TransformerEncoderLayer(dim, 2, dim_feedforward=16, dropout=0.0, batch_first=True)

    def forward(self, x):
        return self.inner(x) * 2.0


class Net(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.layer = TransformerEncoderLayer(dim)
        self.stack = nn.TransformerEncoder(nn.TransformerEncoderLayer(dim, 2, 16, 0.0, batch_first=True), 2)

    def forward(self, x):
        return self.stack(self.layer(x))
'''


def test_local_attention_classes_named_like_the_users_class():
    code = _converted(OWN_ENCODER_LAYER)
    assert "class TransformerEncoderLayer_1(nn.Module):" in code
    assert "self.inner = TransformerEncoderLayer_1(dim, 2, dim_feedforward=16" in code
    assert "TransformerEncoder(TransformerEncoderLayer_1(dim, 2, 16, 0.0, batch_first=True), 2)" in code
    assert "self.layer = TransformerEncoderLayer(dim)" in code and code.count("class TransformerEncoderLayer(") == 1
    x = np.random.RandomState(2).standard_normal((2, 5, 8)).astype(np.float32)
    _matches_torch(OWN_ENCODER_LAYER, lambda ns: ns["Net"](8), x, x)


# a rule template's helper call (rules/nn_vision_extra.yaml: `pixel_shuffle(...)`) calls the fresh name
OWN_PIXEL_SHUFFLE = '''
import torch
import torch.nn.functional as F


def pixel_shuffle(x):
    return x + 1.0


def upscale(x):
    return F.pixel_shuffle(pixel_shuffle(x), 2)
'''


def test_a_template_calls_the_helper_by_its_fresh_name():
    import mlx.core as mx
    import torch

    code = _converted(OWN_PIXEL_SHUFFLE)
    assert "def pixel_shuffle_1(x, upscale_factor):" in code
    assert "pixel_shuffle_1(mx.transpose(pixel_shuffle(x), (0, 2, 3, 1)), 2)" in code  # the user's call kept
    x = np.random.RandomState(3).standard_normal((2, 8, 3, 4)).astype(np.float32)
    expected = exec_source(OWN_PIXEL_SHUFFLE, "torch_m")["upscale"](torch.from_numpy(x))
    actual = exec_source(code, "mlx_m")["upscale"](mx.array(x))
    assert_close(actual, expected, channels_last_output=False)


def test_training_helpers_named_like_the_files_own_names():
    """Parameter groups, a plateau schedule and named_parameters() with the file binding ParamGroupOptimizer,
    ReduceLROnPlateau and named_parameters itself: the generated helpers take fresh names and train like torch."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_training_groups import DECAY_SPLIT_LOOP
    from training_support import assert_same_losses, run_both

    own = "\n\nParamGroupOptimizer = ReduceLROnPlateau = 'the file\\'s own'\n\n\ndef named_parameters():\n    return []\n"
    source = DECAY_SPLIT_LOOP.replace("\n\ndef train(", own + "\n\ndef train(", 1).replace(
        "    optimizer = torch.optim.AdamW(groups, lr=0.02, betas=(0.9, 0.95))\n",
        "    optimizer = torch.optim.AdamW(groups, lr=0.02, betas=(0.9, 0.95))\n"
        "    sched = lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0, threshold=0.5)\n").replace(
        "            losses.append(loss.item())\n", "            losses.append(loss.item())\n        sched.step(loss.item())\n")
    assert "ReduceLROnPlateau(optimizer" in source and "def named_parameters():" in source
    t, m, result = run_both(source)
    for name in ("ParamGroupOptimizer", "ReduceLROnPlateau", "named_parameters"):
        assert f"{name}_1" in result.code, (name, result.code)
    assert "optimizer = ParamGroupOptimizer_1(model, " in result.code and "named_parameters_1(model)" in result.code
    assert "sched = ReduceLROnPlateau_1(optimizer" in result.code
    assert_same_losses(t, m)
