"""A converted CNN training script (NCHW images from a TensorDataset) trains like the original."""
from pathlib import Path

import numpy as np
import pytest

from torch2mlx import load_torch_weights

from training_support import converted_namespaces, train_one_epoch

CNN = Path(__file__).parent.parent / "fixtures" / "training" / "cnn_classifier.py"


@pytest.fixture(scope="module")
def cnn():
    torch_ns, mlx_ns, code = converted_namespaces(CNN)
    assert "model(mx.transpose(data, (0, 2, 3, 1)))" in code, code
    return torch_ns, mlx_ns


@pytest.mark.parametrize("optimizer,lr", [("sgd", "0.05"), ("adam", "0.01")])
def test_first_20_steps_match_torch(cnn, optimizer, lr, capsys):
    torch_ns, mlx_ns = cnn
    argv = ["--optimizer", optimizer, "--lr", lr]
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


def test_checkpoint_written_by_the_mlx_script_reloads(cnn, tmp_path, monkeypatch, capsys):
    _, mlx_ns = cnn
    monkeypatch.chdir(tmp_path)
    trained = mlx_ns["main"](["--save-model", "--epochs", "2"])
    assert (tmp_path / "cnn_classifier.safetensors").exists()
    fresh = mlx_ns["main"](["--load-model", "--seed", "7"])
    assert fresh == trained and trained > 0.4
