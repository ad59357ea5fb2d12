"""A converted CNN training script (NCHW images from a TensorDataset) trains like the original."""
from pathlib import Path

import pytest


from training_support import assert_checkpoint_reloads, assert_first_20_steps_match, converted_namespaces

CNN = Path(__file__).parent.parent / "fixtures" / "training" / "cnn_classifier.py"


@pytest.fixture(scope="module")
def cnn():
    torch_ns, mlx_ns, code = converted_namespaces(CNN)
    assert "model(mx.transpose(data, (0, 2, 3, 1)))" in code, code
    return torch_ns, mlx_ns


@pytest.mark.parametrize("optimizer,lr", [("sgd", "0.05"), ("adam", "0.01")])
def test_first_20_steps_match_torch(cnn, optimizer, lr, capsys):
    assert_first_20_steps_match(*cnn, ["--optimizer", optimizer, "--lr", lr], capsys)


def test_checkpoint_written_by_the_mlx_script_reloads(cnn, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_checkpoint_reloads(cnn[1], tmp_path, "cnn_classifier.safetensors", 0.4)
