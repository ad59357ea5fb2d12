"""What the model parity tests share: running a source, laying data out for MLX, comparing with torch."""
from __future__ import annotations

from pathlib import Path

import numpy as np

MODELS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "models"
ATOL = 1e-4  # the tolerance for whole models (float32)


def exec_source(source: str, name: str) -> dict:
    namespace: dict = {"__name__": name}
    # dont_inherit: the source runs with its own __future__ imports, not this module's
    exec(compile(source, name, "exec", dont_inherit=True), namespace)  # noqa: S102 - our own fixtures and tests
    return namespace


def channels_last(array: np.ndarray) -> np.ndarray:
    """torch's (N, C, ...) data as MLX's channels-last layers take it."""
    return np.moveaxis(array, 1, -1) if array.ndim >= 3 else array


def assert_close(actual, expected, *, atol: float = ATOL, channels_last_output: bool = True, where: str = "output"):
    """Compare an MLX output (possibly nested) with torch's; with `channels_last_output`, outputs with
    spatial axes are channels-last in MLX, so torch's channels move to the end first."""
    if isinstance(expected, (tuple, list)):
        assert isinstance(actual, (tuple, list)) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_close(a, e, atol=atol, channels_last_output=channels_last_output, where=f"{where}[{i}]")
        return
    expected = expected.detach().numpy()
    if channels_last_output:
        expected = channels_last(expected)
    actual = np.array(actual)
    assert actual.shape == expected.shape, (where, actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=atol, err_msg=where)


def randomize_batch_norm(model) -> None:
    """Non-trivial running statistics and affine parameters, so eval mode really uses them."""
    import torch

    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                if module.affine:
                    module.weight.copy_(torch.randn(module.num_features, generator=generator))
                    module.bias.copy_(torch.randn(module.num_features, generator=generator))


def randomize_parameters(model) -> None:
    """Every parameter and buffer non-trivial (torch starts norms at weight 1, bias 0); variances positive."""
    import torch

    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.5)


def torch_names(code: str) -> set:
    """torch imports and names that remain in `code` (docstrings and comments may say torch)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "torch")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            found.add(node.module)
        elif isinstance(node, ast.Name) and node.id == "torch":
            found.add("torch")
    return found


def warnings(result) -> list:
    """The diagnostics that leave something in place (not the info notes)."""
    return [d for d in result.diagnostics if d.severity.value != "info"]


def converts_clean(file: str, *, channels_last_class: bool = True):
    """Convert fixtures/models/<file>: no warning, no torch left, stable under a second conversion."""
    from torch2mlx import convert_source

    path = MODELS_DIR / file
    result = convert_source(path.read_text(encoding="utf-8"), str(path))
    assert not warnings(result), "\n".join(d.format() for d in warnings(result))
    assert not torch_names(result.code), torch_names(result.code)
    if channels_last_class:
        assert "# MLX layout: inputs" in result.code
    assert convert_source(result.code).code == result.code
    return result


def assert_model_matches_torch(file: str, build, input_shape: tuple, *, randomize=None, nhwc_input: bool = True,
                               atol: float = ATOL) -> None:
    """The parity a user gets: build the torch and the converted model alike (`build(namespace)`), copy
    the torch weights in with load_torch_weights, run both in eval mode on the same data, compare."""
    import mlx.core as mx
    import torch

    from torch2mlx import convert_source, load_torch_weights

    path = MODELS_DIR / file
    source = path.read_text(encoding="utf-8")
    name = path.stem
    torch_ns = exec_source(source, f"torch_{name}")
    mlx_ns = exec_source(convert_source(source, str(path)).code, f"mlx_{name}")
    torch.manual_seed(0)
    torch_model = build(torch_ns)
    if randomize is not None:
        randomize(torch_model)
    torch_model.eval()
    mlx_model = build(mlx_ns)
    mlx_model.eval()
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and report.loaded
    x = np.random.RandomState(0).standard_normal(input_shape).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x))
    assert_close(mlx_model(mx.array(channels_last(x) if nhwc_input else x)), expected, atol=atol)


def perturb_parameters(model) -> None:
    """Move every parameter a little off its initial value (layer scales of 1e-6, norms at 1 and 0)."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
