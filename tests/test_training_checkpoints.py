"""Checkpoints holding model, optimizer and scheduler state (issue 15): a run stopped after two epochs and
resumed from its checkpoint in a fresh model, optimizer and scheduler continues exactly as the uninterrupted
torch run (AdamW moments, step count and the scheduler's epoch all restored)."""
import numpy as np
import pytest
from test_training_styles import HEAD
from training_support import batches

from torch2mlx import convert_source, load_torch_weights

SCRIPT = HEAD + '''

def save(model, optimizer, scheduler, epoch, path):
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "epoch": epoch, "best": 0.25}, path)


def resume(model, optimizer, scheduler, path):
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    return ckpt["epoch"] + 1


def train(model, batches, path, epochs=4, stop=None, resume_from=False):
    optimizer = torch.optim.{optimizer}
    scheduler = lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    start = 0
    if resume_from:
        start = resume(model, optimizer, scheduler, path)
    losses = []
    for epoch in range(start, epochs):
        model.train()
        for x, y in batches[:4]:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
        save(model, optimizer, scheduler, epoch, path)
        if epoch == stop:
            break
    return losses
'''


@pytest.mark.parametrize("optimizer", ["AdamW(model.parameters(), lr=0.02, weight_decay=0.1)",
                                       "SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True)"])
def test_resumed_run_continues_like_the_uninterrupted_torch_run(optimizer, tmp_path):
    import mlx.core as mx
    import torch

    source = SCRIPT.replace("{optimizer}", optimizer)
    result = convert_source(source)
    assert not [d for d in result.diagnostics if d.severity.value != "info"], result.code
    assert "torch" not in result.code.replace("torch2mlx", "") and convert_source(result.code).code == result.code
    assert 'save_checkpoint({"model": model.parameters(), "optimizer": optimizer.state,' in result.code, result.code
    assert "optimizer.state = ckpt[\"optimizer\"]" in result.code and "model.update(ckpt[\"model\"])" in result.code
    t_ns: dict = {"__name__": "torch_script"}
    m_ns: dict = {"__name__": "mlx_script"}
    exec(compile(source, "torch_script", "exec"), t_ns)  # noqa: S102 - our own script
    exec(compile(result.code, "mlx_script", "exec"), m_ns)  # noqa: S102
    xs, ys = batches()
    t_batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in zip(xs, ys)]
    m_batches = [(mx.array(x), mx.array(y)) for x, y in zip(xs, ys)]
    torch.manual_seed(0)
    t_model = t_ns["Net"]()
    m_model = m_ns["Net"]()
    load_torch_weights(m_model, t_model.state_dict())
    t_losses = t_ns["train"](t_model, t_batches, str(tmp_path / "torch.pt"))
    path = str(tmp_path / "mlx.pt")
    first = m_ns["train"](m_model, m_batches, path, stop=1)
    fresh = m_ns["Net"]()  # other weights: everything must come from the checkpoint
    rest = m_ns["train"](fresh, m_batches, path, resume_from=True)
    assert len(first) == len(rest) == 8
    np.testing.assert_allclose(first + rest, t_losses, rtol=1e-4, atol=1e-6)
    saved = m_ns["load_checkpoint"](path)
    assert saved["epoch"] == 3 and saved["best"] == 0.25 and saved["scheduler"]["last_epoch"] == 4
