"""Shared by the training-script parity tests: convert a fixture script and run both versions."""
from pathlib import Path

from torch2mlx import convert_source


def converted_namespaces(path: Path) -> tuple[dict, dict, str]:
    """Execute the torch script and its conversion (which must carry no warning and convert
    to itself again); returns both module namespaces and the converted code."""
    source = path.read_text()
    result = convert_source(source, str(path))
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    assert not warnings, "\n".join(d.format() for d in warnings)
    assert "torch" not in result.code.replace("torch2mlx", "")
    assert convert_source(result.code).code == result.code
    torch_ns: dict = {"__name__": "torch_script"}
    mlx_ns: dict = {"__name__": "mlx_script"}
    exec(compile(source, str(path), "exec"), torch_ns)  # noqa: S102 - our own fixtures
    exec(compile(result.code, f"{path} (mlx)", "exec"), mlx_ns)  # noqa: S102
    return torch_ns, mlx_ns, result.code


def train_one_epoch(ns: dict, args, model) -> tuple[list, float]:
    """Per-step losses of one epoch and the test accuracy, for scripts with build_loaders/train/test."""
    train_loader, test_loader = ns["build_loaders"](args)
    optimizer = ns["make_optimizer"](args, model)
    losses: list = []
    ns["train"](args, model, train_loader, optimizer, 1, losses)
    return losses, ns["test"](model, test_loader)


def assert_first_20_steps_match(torch_ns: dict, mlx_ns: dict, argv: list, capsys) -> None:
    """Same weights, same batches: the converted script's first 20 losses follow torch's (rtol 1e-3)."""
    import numpy as np

    from torch2mlx import load_torch_weights

    t_args, m_args = torch_ns["parse_args"](argv), mlx_ns["parse_args"](argv)
    t_model, m_model = torch_ns["Net"](), mlx_ns["Net"]()
    load_torch_weights(m_model, t_model.state_dict())
    t_losses, t_acc = train_one_epoch(torch_ns, t_args, t_model)
    m_losses, m_acc = train_one_epoch(mlx_ns, m_args, m_model)
    assert len(t_losses) == len(m_losses) == 20
    assert len(set(np.round(t_losses, 3))) > 5, "the losses should move"
    np.testing.assert_allclose(m_losses, t_losses, rtol=1e-3)
    assert 0.0 <= m_acc <= 1.0 and abs(m_acc - t_acc) <= 1 / 128
    out = capsys.readouterr().out
    assert out.count("Train epoch 1 [") == 8 and out.count("Test set: average loss") == 2


def assert_checkpoint_reloads(mlx_ns: dict, directory, checkpoint: str, min_accuracy: float) -> None:
    """The converted script saves an MLX checkpoint that a fresh run loads back to the same accuracy."""
    trained = mlx_ns["main"](["--save-model", "--epochs", "2"])
    assert (directory / checkpoint).exists()
    fresh = mlx_ns["main"](["--load-model", "--seed", "7"])
    assert fresh == trained and trained > min_accuracy


def batches(n=10, seed=0):
    """n batches of 8 rows of 6 features and their class (3 classes)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((n, 8, 6)).astype(np.float32)
    ys = rng.integers(0, 3, (n, 8))
    return xs, ys


def run_both(source: str, **kwargs):
    """(torch losses, MLX losses, converted code) from the same weights and batches."""
    import mlx.core as mx
    import torch

    from torch2mlx import load_torch_weights

    result = convert_source(source)
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    assert not warnings, "\n".join(d.format() for d in warnings) + "\n" + result.code
    assert "torch" not in result.code.replace("torch2mlx", ""), result.code
    assert convert_source(result.code).code == result.code
    t_ns: dict = {"__name__": "torch_script"}
    m_ns: dict = {"__name__": "mlx_script"}
    exec(compile(source, "torch_script", "exec"), t_ns)  # noqa: S102 - our own scripts
    exec(compile(result.code, "mlx_script", "exec"), m_ns)  # noqa: S102
    torch.manual_seed(0)
    t_model, m_model = t_ns["Net"](), m_ns["Net"]()
    load_torch_weights(m_model, t_model.state_dict())
    xs, ys = batches()
    t_losses = t_ns["train"](t_model, [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in zip(xs, ys)], **kwargs)
    m_losses = m_ns["train"](m_model, [(mx.array(x), mx.array(y)) for x, y in zip(xs, ys)], **kwargs)
    return t_losses, m_losses, result


def assert_same_losses(t_losses, m_losses):
    import numpy as np

    assert len(t_losses) == len(m_losses) >= 10
    assert len(set(np.round(t_losses, 4))) > 5, "the losses should move"
    np.testing.assert_allclose(m_losses, t_losses, rtol=1e-3, atol=1e-6)
