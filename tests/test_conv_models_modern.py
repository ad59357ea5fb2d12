"""ViT and ConvNeXt fixtures: permutes, flatten(2).transpose(1, 2), shape unpacking, chunk, a LayerNorm2d
written with permutes, loops over blocks: convert with no flag, load torch weights, compare with torch."""

import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source  # noqa: E402
from tests.model_support import (  # noqa: E402
    MODELS_DIR, assert_model_matches_torch, converts_clean, perturb_parameters)


CASES = {  # name: (file, class, constructor args, torch input shape NCHW, whether MLX takes it NHWC)
    "vit_tiny": ("vit_tiny.py", "VisionTransformer", (), (2, 3, 16, 16), False),
    "convnext_tiny": ("convnext_tiny.py", "ConvNeXtTiny", (), (2, 3, 16, 16), True),
}


def _converted(file: str):
    path = MODELS_DIR / file
    source = path.read_text(encoding="utf-8")
    return source, convert_source(source, str(path))


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_converts_without_flags(name):
    converts_clean(CASES[name][0], channels_last_class=CASES[name][4])


def test_the_channels_last_idioms_need_no_transposes():
    _, vit = _converted("vit_tiny.py")
    assert "x = mx.flatten(self.proj(x), 1, 2)" in vit.code  # no transpose: NHWC flattens to tokens directly
    assert "B, H, W, C = x.shape" in vit.code
    _, convnext = _converted("convnext_tiny.py")
    body = convnext.code.split("class ConvNeXtBlock", 1)[1].split("class GatedStem", 1)[0]
    assert "transpose" not in body, body  # x.permute(0, 2, 3, 1) ... x.permute(0, 3, 1, 2) are both identities


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_matches_torch_with_loaded_weights(name):
    file, cls, args, shape, nhwc = CASES[name]
    assert_model_matches_torch(file, lambda ns: ns[cls](*args), shape, randomize=perturb_parameters, nhwc_input=nhwc)