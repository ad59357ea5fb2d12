"""What the model benchmarks share: the fixture table, building torch and converted MLX models with
the same weights, comparing outputs, and interleaved timing.

Not a test module: the benchmarks import it (bench/ is outside pytest's testpaths).
"""
from __future__ import annotations

import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / "fixtures" / "models"
ATOL = 1e-4  # the tolerance for whole models (float32)
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore", message=".*nested tensors.*")  # torch's own encoder fast path, not ours


@dataclass(frozen=True)
class Spec:
    file: str
    cls: str
    args: tuple
    inputs: Callable[[np.random.RandomState], tuple]  # numpy arrays in torch's layout (NCHW)
    large: Callable[[np.random.RandomState], tuple]  # the same, with larger batches / sequences
    channels_last: bool = False  # the converted model takes and returns feature maps NHWC


def _images(shape):
    return lambda rng: (rng.standard_normal(shape).astype(np.float32),)


def _tokens(vocab, shape):
    return lambda rng: (rng.randint(0, vocab, size=shape).astype(np.int64),)


def _bert_inputs(batch, length):
    def inputs(rng):
        lengths = [length] + list(rng.randint(1, length + 1, size=batch - 1))
        mask = np.array([[1] * n + [0] * (length - n) for n in lengths], dtype=np.int64)
        types = rng.randint(0, 2, size=(batch, length)).astype(np.int64)
        return rng.randint(0, 60, size=(batch, length)).astype(np.int64), types, mask
    return inputs


def _lstm_inputs(length, batch):
    def inputs(rng):
        state = tuple(rng.standard_normal((2, batch, 24)).astype(np.float32) for _ in range(2))
        return rng.randint(0, 40, size=(length, batch)).astype(np.int64), state
    return inputs


# small: the sizes of the parity tests (tests/test_models.py, tests/test_conv_models*.py); large:
# bigger batches and sequences for the same (tiny) models
SPECS = {
    "mlp": Spec("mlp.py", "MLP", (12, 32, 5, 0.2), _images((4, 3, 4)), _images((256, 3, 4))),
    "lenet": Spec("lenet.py", "LeNet", (10,), _images((3, 1, 28, 28)), _images((64, 1, 28, 28)), True),
    "vgg_small": Spec("vgg_small.py", "VGGSmall", (10,), _images((2, 3, 28, 28)), _images((32, 3, 28, 28)), True),
    "resnet_block": Spec("resnet_block.py", "TinyResNet", (8, 5), _images((2, 3, 10, 10)), _images((32, 3, 32, 32)),
                         True),
    "mobilenet_small": Spec("mobilenet_small.py", "MobileNetSmall", (10,), _images((2, 3, 16, 16)),
                            _images((32, 3, 32, 32)), True),
    "unet_small": Spec("unet_small.py", "UNetSmall", (3, 2, 4), _images((2, 3, 12, 16)), _images((16, 3, 32, 32)), True),
    "dcgan_generator": Spec("dcgan.py", "Generator", (8, 4, 3), _images((2, 8, 1, 1)), _images((64, 8, 1, 1)), True),
    "dcgan_discriminator": Spec("dcgan.py", "Discriminator", (3, 4), _images((3, 3, 16, 16)), _images((64, 3, 16, 16)),
                                True),
    "vae": Spec("vae.py", "VAE", (784, 64, 8), _images((5, 1, 28, 28)), _images((128, 1, 28, 28))),
    "gpt2": Spec("gpt2.py", "GPT", (), _tokens(50, (2, 12)), _tokens(50, (32, 16))),
    "lstm_lm": Spec("lstm_lm.py", "RNNModel", (40, 16, 24, 2, 0.3), _lstm_inputs(7, 3), _lstm_inputs(35, 32)),
    "bert": Spec("bert.py", "BertClassifier", (60,), _bert_inputs(3, 9), _bert_inputs(32, 64)),
}


@dataclass
class Pair:
    """A fixture built in torch and, converted, in MLX, with the torch weights loaded into the MLX model."""

    torch_model: object
    mlx_model: object
    torch_inputs: tuple
    mlx_inputs: tuple
    state_dict: dict


def build_pair(name: str, large: bool = False) -> Pair:
    import mlx.core as mx
    import torch

    from torch2mlx import convert_source, load_torch_weights

    spec = SPECS[name]
    path = MODELS_DIR / spec.file
    source = path.read_text(encoding="utf-8")
    torch_ns, mlx_ns = _exec(source, f"torch_{name}"), _exec(convert_source(source, str(path)).code, f"mlx_{name}")
    torch.manual_seed(0)
    torch_model = make(torch_ns, spec)
    _randomize_batch_norm(torch_model)
    torch_model.eval()
    mlx_model = make(mlx_ns, spec)
    mlx_model.eval()
    state_dict = torch_model.state_dict()
    load_torch_weights(mlx_model, state_dict)
    inputs = (spec.large if large else spec.inputs)(np.random.RandomState(0))
    mlx_inputs = to(lambda a: mx.array(channels_last(a) if spec.channels_last else a), inputs)
    return Pair(torch_model, mlx_model, to(torch.from_numpy, inputs), mlx_inputs, state_dict)


def make(namespace: dict, spec: Spec):
    """Instantiate the spec's class from a namespace (a fixture's, its conversion's or a port module's)."""
    args = spec.args if spec.cls != "GPT" else (namespace["GPTConfig"](),)
    return namespace[spec.cls](*args)


def _exec(source: str, name: str) -> dict:
    namespace: dict = {"__name__": name}
    exec(compile(source, name, "exec", dont_inherit=True), namespace)  # noqa: S102 - our own fixtures
    return namespace


def _randomize_batch_norm(model) -> None:
    """Non-trivial running statistics and affine parameters, so eval mode really uses them."""
    import torch

    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) * 0.5 + 0.5)
                module.weight.copy_(torch.randn(module.num_features, generator=generator))
                module.bias.copy_(torch.randn(module.num_features, generator=generator))


def channels_last(array: np.ndarray) -> np.ndarray:
    return np.moveaxis(array, 1, -1) if array.ndim >= 3 else array


def to(convert, value):
    """Arrays, possibly inside tuples -> convert(array), keeping the nesting."""
    if isinstance(value, (tuple, list)):
        return type(value)(to(convert, v) for v in value)
    return convert(value)


def flatten(value) -> list:
    """Nested tuples of outputs -> a flat list (what mx.eval and the comparisons take)."""
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in flatten(v)]
    return [value]


def assert_close(actual, expected, what: str, *, to_channels_last: bool = False) -> None:
    """Every output of `actual` (MLX) equals the one of `expected` (MLX or torch) within the models' tolerance."""
    actual, expected = flatten(actual), flatten(expected)
    assert len(actual) == len(expected), what
    for i, (a, e) in enumerate(zip(actual, expected)):
        e = e.detach().numpy() if hasattr(e, "detach") else np.array(e)
        e = channels_last(e) if to_channels_last else e
        a = np.array(a)
        assert a.shape == e.shape, (what, i, a.shape, e.shape)
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=ATOL, err_msg=f"{what}, output {i}")


def interleaved_times(fns: dict[str, Callable[[], None]], repeat: int, inner: int = 1,
                      warmup: int = 3) -> dict[str, list[float]]:
    """Seconds per call of each function: `repeat` samples of `inner` calls, the functions taking
    turns (order reversed every other sample), so that machine noise hits them alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeat):
        for name in names if i % 2 == 0 else reversed(names):
            start = time.perf_counter()
            for _ in range(inner):
                fns[name]()
            times[name].append((time.perf_counter() - start) / inner)
    return times


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def spread_ms(samples: list[float]) -> tuple[float, float]:
    """The interquartile range, in milliseconds."""
    q1, _, q3 = statistics.quantiles(samples, n=4)
    return q1 * 1e3, q3 * 1e3
