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
