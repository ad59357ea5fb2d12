"""ViT and ConvNeXt fixtures: permutes, flatten(2).transpose(1, 2), shape unpacking, chunk, a LayerNorm2d
written with permutes, loops over blocks: convert with no flag, load torch weights, compare with torch."""
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402
from tests.test_conv_models import _assert_close, _channels_last, _exec  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "models"

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
    _, result = _converted(CASES[name][0])
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    assert not warnings, "\n".join(d.format() for d in warnings)
    assert "torch" not in result.code.replace("torch2mlx", "")
    assert convert_source(result.code).code == result.code


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
    source, result = _converted(file)
    torch_ns, mlx_ns = _exec(source, f"torch_{name}"), _exec(result.code, f"mlx_{name}")
    torch.manual_seed(0)
    torch_model = torch_ns[cls](*args).eval()
    with torch.no_grad():  # non-trivial layer scales and norms, so that every branch counts
        for p in torch_model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    mlx_model = mlx_ns[cls](*args)
    mlx_model.eval()
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and report.loaded
    x = np.random.RandomState(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    _assert_close(mlx_model(mx.array(_channels_last(x) if nhwc else x)), expected)
