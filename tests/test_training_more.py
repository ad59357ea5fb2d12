"""LR schedulers (training_sched.py): the MLX schedule gives torch's learning rate at every optimizer step."""
from pathlib import Path

import numpy as np
import pytest

from training_support import converted_namespaces
from torch2mlx import convert_source, load_torch_weights

STEPS = 25
SCRIPT = '''import torch
from torch.optim import lr_scheduler


def make(model: torch.nn.Module, batches):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = {expr}
    for x, y in batches:
        opt.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()
        sched.step()
    return opt


def main(model, batches):
    return make(model, batches)
'''

SCHEDULERS = [
    "lr_scheduler.StepLR(opt, 4, gamma=0.5)",
    "torch.optim.lr_scheduler.StepLR(opt, step_size=3)",
    "lr_scheduler.MultiStepLR(opt, milestones=[3, 7, 15], gamma=0.3)",
    "lr_scheduler.ExponentialLR(opt, 0.9)",
    "lr_scheduler.CosineAnnealingLR(opt, T_max=10)",
    "lr_scheduler.CosineAnnealingLR(opt, 8, eta_min=0.01)",
    "lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / 6))",
    "lr_scheduler.LambdaLR(opt, lr_lambda=lambda e: 0.95 ** e if e > 3 else (e + 1) / 4)",
    "lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=6)",
    "lr_scheduler.LinearLR(opt)",
    "lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=25, cycle_momentum=False)",
    "lr_scheduler.OneCycleLR(opt, 0.5, epochs=5, steps_per_epoch=5, pct_start=0.25, anneal_strategy='linear', cycle_momentum=False)",
    "lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=30, div_factor=10, final_div_factor=100, cycle_momentum=False)",
]


def _torch_lrs(expr: str) -> list:
    import torch
    from torch.optim import lr_scheduler

    w = torch.zeros(2, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    sched = eval(expr, {"torch": torch, "lr_scheduler": lr_scheduler, "opt": opt})  # noqa: S307 - our own cases
    lrs = []
    for _ in range(STEPS):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize("expr", SCHEDULERS)
def test_schedule_gives_torch_learning_rates(expr):
    import mlx.core as mx
    import mlx.nn as nn

    result = convert_source(SCRIPT.format(expr=expr))
    assert not [d for d in result.diagnostics if d.severity.value != "info"], result.code
    assert "sched =" not in result.code and "sched.step" not in result.code and "torch" not in result.code, result.code
    ns: dict = {}
    exec(compile(result.code, "mlx", "exec"), ns)  # noqa: S102
    model = nn.Linear(2, 1)
    x, y = mx.ones((3, 2)), mx.zeros((3, 1))
    lrs = []
    for k in range(1, STEPS + 1):  # the rate the k-th update used
        lrs.append(ns["make"](model, [(x, y)] * k).learning_rate.item())
    np.testing.assert_allclose(lrs, _torch_lrs(expr), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("expr,why", [
    ("lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=20)", "cycles the momentum"),
    ("lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=20, cycle_momentum=False, three_phase=True)", "three_phase"),
    ("lr_scheduler.StepLR(opt, 4, last_epoch=3)", "last_epoch"),
    ("lr_scheduler.MultiStepLR(opt, milestones=ms)", "milestones"),
    ("lr_scheduler.LambdaLR(opt, [lambda e: 1.0])", "parameter group"),
])
def test_untranslatable_schedulers_are_flagged(expr, why):
    result = convert_source(SCRIPT.format(expr=expr))
    assert f"sched = {expr}" in result.code and "sched.step()" in result.code, result.code
    assert any(why in d.message for d in result.diagnostics), [d.message for d in result.diagnostics]


def test_per_epoch_scheduler_becomes_the_helper_class():
    """Stepped per epoch (the rate changes between updates at a count the source does not give): LRScheduler."""
    source = SCRIPT.format(expr="lr_scheduler.StepLR(opt, 4)").replace(
        "        sched.step()\n", "    sched.step()\n")
    result = convert_source(source)
    assert "sched = LRScheduler(opt, lambda base_lr: optim.step_decay(base_lr, 0.1, 4))" in result.code, result.code
    assert "sched.step()" in result.code and "learning_rate=0.1" in result.code
    assert not [d for d in result.diagnostics if d.severity.value != "info"], result.code


def test_scheduler_used_for_more_than_step_becomes_the_helper_class():
    source = SCRIPT.format(expr="lr_scheduler.StepLR(opt, 4)").replace("    return opt\n", "    print(sched.get_last_lr())\n    return opt\n")
    result = convert_source(source)
    assert "learning_rate=0.1" in result.code and "sched = LRScheduler(opt" in result.code, result.code
    assert not [d for d in result.diagnostics if d.severity.value != "info"], result.code


def test_chained_schedulers_are_flagged():
    source = SCRIPT.format(expr="lr_scheduler.StepLR(opt, 4)\n    warm = lr_scheduler.LinearLR(opt)").replace(
        "        sched.step()\n", "        sched.step()\n        warm.step()\n")
    result = convert_source(source)
    assert any("several schedulers" in d.message for d in result.diagnostics), result.code


# ----- fixtures/training/char_gpt.py: a char-level GPT trained the nanoGPT way ---------------------
GPT = Path(__file__).parent.parent / "fixtures" / "training" / "char_gpt.py"


@pytest.fixture(scope="module")
def char_gpt():
    torch_ns, mlx_ns, _ = converted_namespaces(GPT)
    return torch_ns, mlx_ns


def _train_gpt(ns, argv, model=None):
    args = ns["parse_args"](argv)
    train_data, val_data, vocab = ns["encode_corpus"]()
    model = model if model is not None else ns["CharGPT"](vocab)
    losses: list = []
    ns["train"](args, model, train_data, ns["make_optimizer"](args, model), losses)
    return losses, ns["evaluate"](args, model, val_data)


@pytest.mark.parametrize("optimizer,lr", [("sgd", "0.1"), ("adam", "0.01")])
def test_char_gpt_first_20_steps_match_torch(char_gpt, optimizer, lr, capsys):
    torch_ns, mlx_ns = char_gpt
    argv = ["--optimizer", optimizer, "--lr", lr, "--grad-clip", "0.5"]
    vocab = torch_ns["encode_corpus"]()[2]
    t_model, m_model = torch_ns["CharGPT"](vocab), mlx_ns["CharGPT"](vocab)
    load_torch_weights(m_model, t_model.state_dict())
    t_losses, (t_val, t_acc) = _train_gpt(torch_ns, argv, t_model)
    m_losses, (m_val, m_acc) = _train_gpt(mlx_ns, argv, m_model)
    assert len(t_losses) == len(m_losses) == 20
    assert t_losses[-1] < t_losses[0] - 0.5, "the model should learn"
    np.testing.assert_allclose(m_losses, t_losses, rtol=1e-3)
    np.testing.assert_allclose(m_val, t_val, rtol=1e-3)
    assert abs(m_acc - t_acc) <= 2 / (4 * 8 * 8)
    out = capsys.readouterr().out
    assert out.count("iter ") == 8 and out.count("val loss") == 2


def test_char_gpt_checkpoint_written_by_the_mlx_script_reloads(char_gpt, tmp_path, monkeypatch, capsys):
    _, mlx_ns = char_gpt
    monkeypatch.chdir(tmp_path)
    trained = mlx_ns["main"](["--save-model"])
    assert (tmp_path / "char_gpt.safetensors").exists()
    reloaded = mlx_ns["main"](["--load-model", "--seed", "7"])
    assert reloaded == trained


# ----- torch.compile, autocast, GradScaler, autograd.grad (rules/training_misc.yaml, transforms/training/misc.py) --
MISC = '''import torch


def run(model: torch.nn.Module, x: torch.Tensor):
    model = torch.compile(model, mode="max-autotune")
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        y = model(x)
        z = torch.tanh(y)
    return z
'''


def test_autocast_block_is_unwrapped_with_an_info_note_and_compile_keeps_the_model():
    import mlx.core as mx
    import mlx.nn as nn
    import torch

    result = convert_source(MISC)
    code = "\n".join(line for line in result.code.splitlines() if not line.strip().startswith("#"))
    assert "torch" not in code and "with " not in code, result.code
    assert "torch.compile" not in result.code and "    y = model(x)\n    z = mx.tanh(y)\n" in result.code
    assert [(d.rule_id, d.severity.value) for d in result.diagnostics] == [("autocast", "info")]
    ns: dict = {}
    exec(compile(result.code, "mlx", "exec"), ns)  # noqa: S102
    t_model, m_model = torch.nn.Linear(3, 2), nn.Linear(3, 2)
    load_torch_weights(m_model, t_model.state_dict())
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    expected = torch.tanh(t_model(torch.from_numpy(x))).detach().numpy()  # float32: what the unwrapped block computes
    np.testing.assert_allclose(np.array(ns["run"](m_model, mx.array(x))), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("line,rule", [
    ("    with torch.autocast('cpu') as ctx:\n        y = x * 2\n", "torch.autocast"),
    ("    y = torch.autocast('cpu')\n", "torch.autocast"),
    ("    y = torch.cuda.amp.GradScaler()\n", "torch.amp.GradScaler"),
    ("    y = torch.autograd.grad(x, x)\n", "torch.autograd.grad"),
])
def test_untranslatable_training_misc_is_flagged(line, rule):
    result = convert_source(f"import torch\n\n\ndef f(x: torch.Tensor):\n{line}    return y\n")
    assert any(d.rule_id == rule and d.severity.value == "warning" for d in result.diagnostics), result.code
    assert line.splitlines()[0].strip() in result.code


SCALER = '''import torch
import torch.nn.functional as F


def train(model: torch.nn.Module, batches, lr: float):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu")
    losses = []
    for x, y in batches:
        optimizer.zero_grad()
        out = model(x)
        loss = F.mse_loss(out, y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
    return losses


def main(model, batches):
    return train(model, batches, 0.1)
'''


def test_grad_scaler_is_removed_and_training_matches_torch():
    import mlx.core as mx
    import mlx.nn as nn
    import torch

    result = convert_source(SCALER)
    assert [(d.rule_id, d.severity.value) for d in result.diagnostics] == [("grad-scaler", "info")], result.code
    code_lines = [line for line in result.code.splitlines() if not line.strip().startswith("#")]
    assert not [line for line in code_lines if "scaler" in line], result.code
    assert "optimizer.update(model, grads)" in result.code and "torch" not in result.code.replace("torch2mlx", "")
    t_ns: dict = {}
    m_ns: dict = {}
    exec(compile(SCALER, "torch", "exec"), t_ns)  # noqa: S102
    exec(compile(result.code, "mlx", "exec"), m_ns)  # noqa: S102
    t_model, m_model = torch.nn.Linear(4, 2), nn.Linear(4, 2)
    load_torch_weights(m_model, t_model.state_dict())
    xs = np.sin(np.arange(10 * 6 * 4, dtype=np.float32)).reshape(10, 6, 4)
    ys = np.cos(np.arange(10 * 6 * 2, dtype=np.float32)).reshape(10, 6, 2)
    t_losses = t_ns["train"](t_model, [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in zip(xs, ys)], 0.1)
    m_losses = m_ns["train"](m_model, [(mx.array(x), mx.array(y)) for x, y in zip(xs, ys)], 0.1)
    assert len(set(np.round(t_losses, 3))) > 5
    np.testing.assert_allclose(m_losses, t_losses, rtol=1e-3)


def test_grad_scaler_passed_to_another_function_is_flagged():
    source = SCALER.replace("    scaler = torch.amp.GradScaler(\"cpu\")\n", "    scaler = torch.amp.GradScaler(\"cpu\")\n    log(scaler)\n")
    result = convert_source(source)
    assert "scaler.step(optimizer)" in result.code
    assert any(d.rule_id == "torch.amp.GradScaler" for d in result.diagnostics), result.code


def test_scheduler_of_an_untranslated_optimizer_is_kept_and_flagged():
    source = SCRIPT.format(expr="lr_scheduler.StepLR(opt, 4)").replace("momentum=0.9)", "momentum=0.9, dampening=0.1)")
    result = convert_source(source)
    assert "sched = lr_scheduler.StepLR(opt, 4)" in result.code and "sched.step()" in result.code, result.code
    assert any("not translated" in d.message for d in result.diagnostics), result.code


@pytest.mark.parametrize("imports,expr", [
    ("from torch.optim.lr_scheduler import StepLR\n", "StepLR(opt, 4, gamma=0.5)"),
    ("import torch.optim.lr_scheduler as sch\n", "sch.StepLR(opt, 4, gamma=0.5)"),
])
def test_import_styles(imports, expr):
    result = convert_source(imports + SCRIPT.format(expr=expr))
    assert "optim.step_decay(0.1, 0.5, 4)" in result.code and "sched" not in result.code.replace("scheduler", ""), result.code


def test_a_class_of_the_same_name_is_not_taken_for_torch_s():
    source = SCRIPT.format(expr="StepLR(opt, 4)") + "\n\nclass StepLR:\n    def __init__(self, opt, n):\n        pass\n\n    def step(self):\n        pass\n"
    result = convert_source(source)
    assert "sched = StepLR(opt, 4)" in result.code and "sched.step()" in result.code and "learning_rate=0.1," in result.code
