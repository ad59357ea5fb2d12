"""Converted training scripts train like the originals: same weights and batches -> same per-step losses."""
from pathlib import Path

import numpy as np
import pytest

from torch2mlx import convert_source

from training_support import assert_checkpoint_reloads, assert_first_20_steps_match, converted_namespaces

FIXTURES = Path(__file__).parent.parent / "fixtures" / "training"
MLP = FIXTURES / "mlp_classifier.py"


@pytest.fixture(scope="module")
def mlp():
    torch_ns, mlx_ns, _ = converted_namespaces(MLP)
    return torch_ns, mlx_ns


@pytest.mark.parametrize("optimizer,lr", [("sgd", "0.05"), ("adam", "0.01")])
def test_first_20_steps_match_torch(mlp, optimizer, lr, capsys):
    assert_first_20_steps_match(*mlp, ["--optimizer", optimizer, "--lr", lr, "--max-norm", "0.5"], capsys)


def test_checkpoint_written_by_the_mlx_script_reloads(mlp, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_checkpoint_reloads(mlp[1], tmp_path, "mlp_classifier.safetensors", 0.5)


def _optimizer_examples():
    from torch2mlx.table import load_default_table

    for rule in load_default_table():
        if rule.id.startswith("torch.optim.") and rule.status == "exact":
            for i, ex in enumerate(rule.examples):
                if not ex.flagged:
                    yield pytest.param(ex.torch, ex.mlx, id=f"{rule.id}[{i}]")


@pytest.mark.parametrize("torch_expr,mlx_expr", list(_optimizer_examples()))
def test_optimizer_rule_steps_like_torch(torch_expr, mlx_expr):
    """Six steps of each optimizer example on one quadratic, with weight decay visible."""
    import mlx.core as mx
    import mlx.nn as mnn
    import mlx.optimizers as optim
    import torch

    start = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    goal = np.array([0.3, 0.1, -0.4], dtype=np.float32)
    w = torch.tensor(start, requires_grad=True)
    opt = eval(torch_expr, {"torch": torch, "w": w})  # noqa: S307 - our own rule examples
    for _ in range(6):
        opt.zero_grad()
        loss = (((w - torch.from_numpy(goal)) ** 2) * torch.tensor([1.0, 3.0, 0.5])).sum()
        loss.backward()
        opt.step()

    class P(mnn.Module):
        def __init__(self):
            super().__init__()
            self.w = mx.array(start)

    model = P()
    mopt = eval(mlx_expr, {"optim": optim})  # noqa: S307
    fn = mnn.value_and_grad(model, lambda: (((model.w - mx.array(goal)) ** 2) * mx.array([1.0, 3.0, 0.5])).sum())
    for _ in range(6):
        _, grads = fn()
        mopt.update(model, grads)
    np.testing.assert_allclose(np.array(model.w), w.detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("line,expected", [
    ('torch.save(model.state_dict(), "net.pt")', 'model.save_weights("net.safetensors")'),
    ("torch.save(model.state_dict(), 'w.safetensors')", "model.save_weights('w.safetensors')"),
    ('model.load_state_dict(torch.load("net.pth", map_location="cpu", weights_only=True))', 'model.load_weights("net.safetensors")'),
])
def test_checkpoint_calls_convert(line, expected):
    result = convert_source(f"import torch\n\n\ndef f(model):\n    {line}\n")
    assert not result.diagnostics and f"    {expected}\n" in result.code, result.code


@pytest.mark.parametrize("line", [
    "torch.save(optimizer.state_dict(), 'opt.pt')",
    "torch.save({'scaler': scaler.state_dict()}, 'ckpt.pt')",  # dict checkpoints: tests/test_training_checkpoints.py
    "torch.save(model.state_dict(), path)",
    "missing = model.load_state_dict(torch.load('net.pt'))",
    "model.load_state_dict(torch.load(path))",
])
def test_checkpoint_calls_flagged(line):
    result = convert_source(f"import torch\n\n\ndef f(model, optimizer, path, scaler):\n    {line}\n")
    assert result.flagged and line in result.code, result.code


def test_loader_over_a_custom_dataset_is_left_flagged():
    source = ("import torch\nfrom torch.utils.data import DataLoader, TensorDataset\n\n\n"
              "def f(ds, x, y):\n    a = DataLoader(ds, batch_size=4)\n"
              "    b = DataLoader(TensorDataset(x, y), batch_size=4, collate_fn=list)\n    return a, b\n")
    result = convert_source(source)
    assert "a = DataLoader(ds, batch_size=4)" in result.code
    assert any(d.rule_id == "data-loader" and "collate_fn" in d.message for d in result.diagnostics), result.code


def test_array_loader_batches_like_torch():
    import torch

    source = ("import torch\nfrom torch.utils.data import DataLoader, TensorDataset\n\n\n"
              "def batches(x, y):\n    loader = DataLoader(TensorDataset(x, y), batch_size=4, drop_last=True)\n"
              "    return [b for b in loader], len(loader), len(loader.dataset)\n")
    result = convert_source(source)
    assert "ArrayLoader(ArrayDataset(x, y), batch_size=4, drop_last=True)" in result.code, result.code
    import mlx.core as mx

    ns: dict = {}
    exec(compile(result.code, "mlx", "exec"), ns)  # noqa: S102
    t_ns: dict = {}
    exec(compile(source, "torch", "exec"), t_ns)  # noqa: S102
    x, y = np.arange(30, dtype=np.float32).reshape(10, 3), np.arange(10)
    t_batches, t_len, t_n = t_ns["batches"](torch.from_numpy(x), torch.from_numpy(y))
    m_batches, m_len, m_n = ns["batches"](mx.array(x), mx.array(y))
    assert (m_len, m_n) == (t_len, t_n) == (2, 10)
    for tb, mb in zip(t_batches, m_batches):
        for t, m in zip(tb, mb):
            np.testing.assert_array_equal(np.array(m), t.numpy())
