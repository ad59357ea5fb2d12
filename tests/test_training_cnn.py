"""A converted CNN training script (NCHW images from a TensorDataset) trains like the original."""
from pathlib import Path

import numpy as np
import pytest

from torch2mlx import convert_source, load_torch_weights

CNN = Path(__file__).parent.parent / "fixtures" / "training" / "cnn_classifier.py"


@pytest.fixture(scope="module")
def cnn():
    source = CNN.read_text()
    result = convert_source(source, str(CNN))
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    assert not warnings, "\n".join(d.format() for d in warnings)
    assert "torch" not in result.code.replace("torch2mlx", "")
    assert "model(mx.transpose(data, (0, 2, 3, 1)))" in result.code, result.code
    assert convert_source(result.code).code == result.code
    torch_ns: dict = {"__name__": "torch_script"}
    mlx_ns: dict = {"__name__": "mlx_script"}
    exec(compile(source, str(CNN), "exec"), torch_ns)  # noqa: S102 - our own fixture
    exec(compile(result.code, f"{CNN} (mlx)", "exec"), mlx_ns)  # noqa: S102
    return torch_ns, mlx_ns


def _run(ns, args, model):
    train_loader, test_loader = ns["build_loaders"](args)
    optimizer = ns["make_optimizer"](args, model)
    losses: list = []
    ns["train"](args, model, train_loader, optimizer, 1, losses)
    return losses, ns["test"](model, test_loader)


@pytest.mark.parametrize("optimizer,lr", [("sgd", "0.05"), ("adam", "0.01")])
def test_first_20_steps_match_torch(cnn, optimizer, lr, capsys):
    torch_ns, mlx_ns = cnn
    argv = ["--optimizer", optimizer, "--lr", lr]
    t_args, m_args = torch_ns["parse_args"](argv), mlx_ns["parse_args"](argv)
    t_model, m_model = torch_ns["Net"](), mlx_ns["Net"]()
    load_torch_weights(m_model, t_model.state_dict())
    t_losses, t_acc = _run(torch_ns, t_args, t_model)
    m_losses, m_acc = _run(mlx_ns, m_args, m_model)
    assert len(t_losses) == len(m_losses) == 20
    assert len(set(np.round(t_losses, 3))) > 5, "the losses should move"
    np.testing.assert_allclose(m_losses, t_losses, rtol=1e-3)
    assert 0.0 <= m_acc <= 1.0 and abs(m_acc - t_acc) <= 1 / 128
    out = capsys.readouterr().out
    assert out.count("Train epoch 1 [") == 8 and out.count("Test set: average loss") == 2


def test_checkpoint_written_by_the_mlx_script_reloads(cnn, tmp_path, monkeypatch, capsys):
    _, mlx_ns = cnn
    monkeypatch.chdir(tmp_path)
    trained = mlx_ns["main"](["--save-model", "--epochs", "2"])
    assert (tmp_path / "cnn_classifier.safetensors").exists()
    fresh = mlx_ns["main"](["--load-model", "--seed", "7"])
    assert fresh == trained and trained > 0.4
