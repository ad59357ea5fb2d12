"""Issue 15 patterns, each run in torch and (converted) in MLX: EMA updates of the weights, torch.autograd.grad,
several optimizers in one loop body, frozen parameters, a learning rate set through param_groups; and the cases
that stay flagged say what to write."""
import numpy as np
import pytest
from training_support import assert_same_losses, batches, run_both

from torch2mlx import convert_source, load_torch_weights

@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models: torch's thread pool only costs time (much of it on a loaded machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


HEAD = '''import copy

import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 16, bias=False)
        self.bn = nn.BatchNorm1d(16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(x))))
'''

EMA_LOOP = HEAD + '''

def train(model, batches, decay=0.8):
    ema = copy.deepcopy(model)
    ema.eval()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for x, y in batches:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for ema_p, p in zip(ema.parameters(), model.parameters()):
                {update}
        losses.append(loss.item())
        losses.append(F.cross_entropy(ema(x), y).item())
    return losses
'''

EMA_UPDATES = {
    "mul_add_alpha": "ema_p.mul_(decay).add_(p, alpha=1 - decay)",
    "data_mul_add": "ema_p.data.mul_(decay).add_(p.data, alpha=1 - decay)",
    "copy": "ema_p.copy_(decay * ema_p + (1 - decay) * p.detach())",
    "lerp": "ema_p.lerp_(p, 1 - decay)",
    "data_assign": "ema_p.data = decay * ema_p.data + (1 - decay) * p.data",
    "two_statements": "ema_p.mul_(decay)\n                ema_p.add_((1 - decay) * p)",
    "sub": "ema_p.sub_((1 - decay) * (ema_p - p))",
}


@pytest.mark.parametrize("update", list(EMA_UPDATES.values()), ids=list(EMA_UPDATES))
def test_ema_loop_over_parameters_matches_torch(update):
    """Every form of the in-place EMA loop: the EMA model's losses (eval mode: its BatchNorm statistics stay those
    of the copy, as torch's parameters() leaves buffers out) follow torch's."""
    t, m, result = run_both(EMA_LOOP.replace("{update}", update))
    assert "ema.update(map_parameters(lambda ema_p, p: " in result.code, result.code
    assert "ema.trainable_parameters(), model.trainable_parameters()))" in result.code
    assert_same_losses(t, m)


EMA_STATE_VALUES = HEAD + '''

class EmaV2:
    def __init__(self, model, decay=0.7):
        self.module = copy.deepcopy(model)
        self.module.eval()
        self.decay = decay

    def update(self, model):
        with torch.no_grad():
            for ema_v, model_v in zip(self.module.state_dict().values(), model.state_dict().values()):
                ema_v.copy_(self.decay * ema_v + (1. - self.decay) * model_v)


def train(model, batches):
    ema = EmaV2(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for x, y in batches:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        ema.update(model)
        losses.append(F.cross_entropy(ema.module(x), y).item())
    return losses
'''


def test_ema_over_state_dict_values_averages_buffers_too():
    """timm's ModelEmaV2: zip over state_dict().values() (BatchNorm statistics averaged too; torch's integer
    num_batches_tracked has no MLX counterpart)."""
    t, m, result = run_both(EMA_STATE_VALUES)
    assert "self.module.update(map_parameters(lambda ema_v, model_v: self.decay * ema_v + (1. - self.decay) * model_v, " \
           "self.module.parameters(), model.parameters()))" in result.code, result.code
    assert_same_losses(t, m)


def test_deepcopy_of_an_mlx_module_is_independent():
    import copy

    import mlx.core as mx
    import mlx.nn as nn

    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm(4))
    ema = copy.deepcopy(model)
    model.layers[0].weight = mx.zeros_like(model.layers[0].weight)
    assert mx.abs(ema.layers[0].weight).sum().item() > 0 and ema.eval() is ema


@pytest.mark.parametrize("loop,why", [
    ("for ema_p, p in zip(ema.parameters(), model.parameters()):\n        ema_p.mul_(d)\n        print(ema_p)", "inplace-op"),
    ("for e, p in zip(ema.parameters(), model.parameters()):\n        e.mul_(d).add_(p, alpha=1 - d)\n    model.head.requires_grad_(False)",
     "this file freezes parameters"),
])
def test_ema_loops_left_flagged(loop, why):
    source = f"import torch\n\n\ndef f(ema, model, d):\n    {loop}\n"
    result = convert_source(source)
    assert any(why in d.message or d.rule_id == why for d in result.diagnostics if d.severity.value == "warning"), result.code


AVERAGED = HEAD + '''
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def train(model, batches, kind="ema"):
    if kind == "ema":
        avg_model = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.8))
    elif kind == "swa":
        avg_model = torch.optim.swa_utils.AveragedModel(model)
    else:
        avg_model = AveragedModel(model, avg_fn=lambda a, c, n: 0.6 * a + 0.4 * c, use_buffers=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for x, y in batches:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        avg_model.update_parameters(model)
        avg_model.eval()
        losses.append(F.cross_entropy(avg_model(x), y).item())
        avg_model.train()
    return losses
'''


@pytest.mark.parametrize("kind", ["ema", "swa", "own_avg_fn_with_buffers"])
def test_averaged_model_matches_torch(kind):
    """swa_utils.AveragedModel: an EMA (get_ema_multi_avg_fn), SWA's running mean, the file's avg_fn averaging
    the BatchNorm statistics too (use_buffers=True); without it the statistics follow the model's."""
    t, m, result = run_both(AVERAGED, kind=kind)
    assert "avg_model = AveragedModule(model, lambda averaged, current, n, decay=0.8: decay * averaged" in result.code, result.code
    assert_same_losses(t, m)


# ----- torch.autograd.grad -------------------------------------------------------------------------------
GRADS = '''import torch


def input_gradient(w, x, y):
    x = x.clone().requires_grad_(True)
    out = torch.tanh(x @ w)
    loss = ((out - y) ** 2).mean()
    g, = torch.autograd.grad(loss, x)
    return g, loss.item()


def weight_gradients(w, b, x):
    w.requires_grad_()
    b.requires_grad_()
    h = torch.sigmoid(x @ w + b)
    score = h.sum(dim=1)
    gw, gb = torch.autograd.grad(score, [w, b], grad_outputs=torch.ones_like(score))
    return gw, gb


def penalty(w, x):
    x.requires_grad_(True)
    y = torch.tanh(x @ w)
    grads = torch.autograd.grad(outputs=y, inputs=x, grad_outputs=torch.ones_like(y), create_graph=True)[0]
    return ((grads.norm(2, dim=1) - 1) ** 2).mean()
'''


def test_autograd_grad_forms_match_torch():
    import mlx.core as mx
    import torch

    result = convert_source(GRADS)
    assert not [d for d in result.diagnostics if d.severity.value != "info"], result.code
    assert "torch" not in result.code and convert_source(result.code).code == result.code
    assert "g, = (mx.stop_gradient(input_grads),)" in result.code, result.code
    assert "gw, gb = tuple(map(mx.stop_gradient, mx.grad(grad_fn, argnums=(0, 1))(w, b)))" in result.code
    assert "grads = mx.grad(grad_fn)(x)" in result.code
    t_ns: dict = {}
    m_ns: dict = {}
    exec(compile(GRADS, "torch", "exec"), t_ns)  # noqa: S102 - our own source
    exec(compile(result.code, "mlx", "exec"), m_ns)  # noqa: S102
    rng = np.random.default_rng(0)
    w, b, x, y = (rng.standard_normal(s).astype(np.float32) for s in ((4, 3), (3,), (5, 4), (5, 3)))
    t_g, t_loss = t_ns["input_gradient"](torch.from_numpy(w), torch.from_numpy(x), torch.from_numpy(y))
    m_g, m_loss = m_ns["input_gradient"](mx.array(w), mx.array(x), mx.array(y))
    np.testing.assert_allclose(np.array(m_g), t_g.numpy(), rtol=1e-4, atol=1e-6)
    assert m_loss == pytest.approx(t_loss, rel=1e-5)
    for t, m in zip(t_ns["weight_gradients"](torch.from_numpy(w), torch.from_numpy(b), torch.from_numpy(x)),
                    m_ns["weight_gradients"](mx.array(w), mx.array(b), mx.array(x))):
        np.testing.assert_allclose(np.array(m), t.numpy(), rtol=1e-4, atol=1e-6)
    # create_graph=True: the penalty is differentiated again (w.r.t. w), as torch's double backward
    tw = torch.from_numpy(w).requires_grad_(True)
    t_pen = t_ns["penalty"](tw, torch.from_numpy(x))
    t_pen.backward()
    m_pen, m_dw = mx.value_and_grad(lambda w_: m_ns["penalty"](w_, mx.array(x)))(mx.array(w))
    np.testing.assert_allclose(m_pen.item(), t_pen.item(), rtol=1e-5)
    np.testing.assert_allclose(np.array(m_dw), tw.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_autograd_grad_without_create_graph_is_detached_like_torch():
    """create_graph=False inside a differentiated function: the gradient is a constant, as torch's detached result."""
    import mlx.core as mx
    import torch

    source = ("import torch\n\n\ndef f(w, x):\n    x = x.clone().requires_grad_(True)\n    y = (torch.tanh(x @ w)).sum()\n"
              "    g = torch.autograd.grad(y, x, retain_graph=True)[0]\n    return (g * x).sum() + y\n")
    result = convert_source(source)
    assert "g = mx.stop_gradient(" in result.code, result.code
    t_ns: dict = {}
    m_ns: dict = {}
    exec(compile(source, "torch", "exec"), t_ns)  # noqa: S102
    exec(compile(result.code, "mlx", "exec"), m_ns)  # noqa: S102
    rng = np.random.default_rng(1)
    w, x = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32)
    tw = torch.from_numpy(w).requires_grad_(True)
    t_ns["f"](tw, torch.from_numpy(x)).backward()
    m_dw = mx.grad(lambda w_: m_ns["f"](w_, mx.array(x)))(mx.array(w))
    np.testing.assert_allclose(np.array(m_dw), tw.grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("body,why", [
    ("    y = (x * 2).sum()\n    print(y)\n    g = torch.autograd.grad(y, x)[0]", "not computed by the plain assignments"),
    ("    y = (z * 2).sum()\n    g = torch.autograd.grad(y, x)[0]", "x is not used"),
    ("    y = (x * 2).sum()\n    g = torch.autograd.grad(y, x, allow_unused=True)[0]", "allow_unused"),
    ("    y = (x * 2).sum()\n    g = torch.autograd.grad(y, x.view(-1))[0]", "not names"),
])
def test_autograd_grad_left_flagged_says_what_to_write(body, why):
    result = convert_source(f"import torch\n\n\ndef f(x, z):\n{body}\n    return g\n")
    assert "torch.autograd.grad(" in result.code, result.code
    assert any(d.rule_id == "torch.autograd.grad" and d.severity.value == "warning" for d in result.diagnostics)
    notes = [d.message for d in result.diagnostics if d.rule_id == "autograd-grad"]
    assert notes and why in notes[0] and "mx.grad(f, argnums=...)" in notes[0], notes


INLINE_PENALTY = '''import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.fc2 = nn.Linear(16, 1)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def train(model, batches, lambda_gp=10.0):
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for x, y in batches:
        optimizer.zero_grad()
        fake = x.flip(0)
        alpha = torch.full((x.shape[0], 1), 0.3)
        interp = (alpha * x + (1 - alpha) * fake).requires_grad_(True)
        d_interp = model(interp)
        grads = torch.autograd.grad(outputs=d_interp, inputs=interp, grad_outputs=torch.ones_like(d_interp),
                                    create_graph=True)[0]
        penalty = ((grads.norm(2, dim=1) - 1) ** 2).mean()
        loss = torch.mean(model(fake)) - torch.mean(model(x)) + lambda_gp * penalty
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
'''


def test_gradient_penalty_written_inline_in_the_training_step():
    """autograd.grad inside the loss computation itself: its function goes into the generated loss_fn."""
    t, m, result = run_both(INLINE_PENALTY)
    assert "        def loss_fn():" in result.code and "            def grad_fn(interp):" in result.code, result.code
    assert_same_losses(t, m)


# ----- several optimizers in one block ------------------------------------------------------------------
TWO_STEPS = HEAD + '''

def train(model, batches):
    head = nn.Linear(3, 3)
    opt_a = torch.optim.SGD(model.parameters(), lr=0.1)
    opt_b = torch.optim.SGD(head.parameters(), lr=0.1)
    losses = []
    for x, y in batches:
        {body}
    return losses
'''


@pytest.mark.parametrize("body", [
    # opt_b.zero_grad() before loss_a.backward(): torch adds loss_a's gradients to the head's
    "opt_a.zero_grad()\n        opt_b.zero_grad()\n        loss_a = F.cross_entropy(head(model(x)), y)\n        loss_a.backward()\n"
    "        opt_a.step()\n        loss_b = F.cross_entropy(head(model(x)), y)\n        loss_b.backward()\n        opt_b.step()",
    # zero_grad after the step: the next block's backward() would add to them first
    "loss_a = F.cross_entropy(head(model(x)), y)\n        loss_a.backward()\n        opt_a.step()\n        opt_a.zero_grad()\n"
    "        loss_b = F.cross_entropy(head(model(x)), y)\n        loss_b.backward()\n        opt_b.step()\n        opt_b.zero_grad()",
])
def test_two_optimizers_whose_gradients_mix_stay_flagged(body):
    result = convert_source(TWO_STEPS.replace("{body}", body))
    assert "loss_b.backward()" in result.code and any(d.rule_id == "train-step" for d in result.diagnostics), result.code


# ----- frozen parameters, learning rate through param_groups ----------------------------------------------
FROZEN = HEAD + '''

def train(model, batches):
    {freeze}
    optimizer = torch.optim.Adam({params}, lr=0.05)
    losses = []
    for x, y in batches:
        lr = 0.05 * min(1.0, (len(losses) + 1) / 4)
        for g in optimizer.param_groups:
            g["lr"] = lr
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert torch.equal(model.fc1.weight, model.fc1.weight.detach())
    return losses
'''


@pytest.mark.parametrize("freeze,params", [
    ("for p in model.fc1.parameters():\n        p.requires_grad = False", "filter(lambda p: p.requires_grad, model.parameters())"),
    ("model.fc1.requires_grad_(False)", "[p for p in model.parameters() if p.requires_grad]"),
    ("model.fc1.requires_grad_(False)", "model.parameters()"),
])
def test_frozen_layer_and_manual_warmup_match_torch(freeze, params):
    import mlx.core as mx
    import torch

    source = FROZEN.replace("{freeze}", freeze).replace("{params}", params).replace(
        "    assert torch.equal(model.fc1.weight, model.fc1.weight.detach())\n", "")
    result = convert_source(source)
    assert "model.fc1.freeze()" in result.code and "optimizer.learning_rate = lr" in result.code, result.code
    t_ns: dict = {"__name__": "t"}
    m_ns: dict = {"__name__": "m"}
    exec(compile(source, "torch", "exec"), t_ns)  # noqa: S102
    exec(compile(result.code, "mlx", "exec"), m_ns)  # noqa: S102
    torch.manual_seed(0)
    t_model, m_model = t_ns["Net"](), m_ns["Net"]()
    load_torch_weights(m_model, t_model.state_dict())
    before = np.array(m_model.fc1.weight)
    xs, ys = batches()
    t = t_ns["train"](t_model, [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in zip(xs, ys)])
    m = m_ns["train"](m_model, [(mx.array(a), mx.array(b)) for a, b in zip(xs, ys)])
    assert_same_losses(t, m)
    np.testing.assert_array_equal(np.array(m_model.fc1.weight), before)
    np.testing.assert_allclose(np.array(m_model.fc2.weight), t_model.fc2.weight.detach().numpy(), rtol=1e-4, atol=1e-6)


def test_unfreezing_keeps_the_freeze_flagged():
    source = FROZEN.replace("{freeze}", "model.fc1.requires_grad_(False)\n    model.fc1.requires_grad_(True)").replace(
        "{params}", "model.parameters()")
    result = convert_source(source)
    assert "model.fc1.requires_grad_(False)" in result.code and "freeze()" not in result.code, result.code


def test_param_groups_read_per_group_stay_flagged():
    source = FROZEN.replace("{freeze}", "pass").replace("{params}", "model.parameters()").replace(
        'g["lr"] = lr', 'g["lr"] = lr * g.get("scale", 1.0)')
    result = convert_source(source)
    assert 'g["lr"] = lr * g.get("scale", 1.0)' in result.code, result.code
    assert any(d.rule_id == "param-groups-lr" and d.severity.value == "warning" for d in result.diagnostics)


def test_learning_rate_read_from_param_groups():
    """`optimizer.param_groups[0]["lr"]` for logging: the optimizer's rate (the first group's for parameter groups)."""
    source = FROZEN.replace("{freeze}", "pass").replace("{params}", "model.parameters()").replace(
        "        losses.append(loss.item())\n", '        losses.append(optimizer.param_groups[0]["lr"])\n')
    t, m, result = run_both(source)
    assert "losses.append(optimizer.learning_rate.item())" in result.code, result.code
    np.testing.assert_allclose(m, t, rtol=1e-6)


def test_learning_rate_read_from_param_groups_under_a_per_step_schedule_is_flagged():
    """The scheduler became the optimizer's MLX schedule: its learning_rate is the last update's rate, not the next."""
    source = (FROZEN.replace("{freeze}", "pass").replace("{params}", "model.parameters()")
              .replace("    losses = []\n", "    sched = torch.optim.lr_scheduler.StepLR(optimizer, 2)\n    losses = []\n")
              .replace("        for g in optimizer.param_groups:\n            g[\"lr\"] = lr\n", "")
              .replace("        optimizer.step()\n", "        optimizer.step()\n        sched.step()\n")
              .replace("        losses.append(loss.item())\n", '        losses.append(optimizer.param_groups[0]["lr"])\n'))
    result = convert_source(source)
    assert "learning_rate=optim.step_decay(" in result.code, result.code
    assert any(d.rule_id == "param-groups-lr" and "schedule" in d.message for d in result.diagnostics), result.code


ALIAS = '''import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(x)


def fit(net, opt, batches):
    losses = []
    for x, y in batches:
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def train(model, batches):
    optimizer_ft = torch.optim.SGD(model.parameters(), lr=0.5)
    return fit(model, optimizer_ft, batches)
'''


def test_optimizer_and_model_passed_under_other_names():
    """`fit(model, optimizer_ft, ...)` into `def fit(net, opt, ...)`: opt updates net."""
    t, m, result = run_both(ALIAS)
    assert "loss, grads = nn.value_and_grad(net, loss_fn)()\n        opt.update(net, grads)" in result.code, result.code
    assert_same_losses(t, m)


def test_optimizer_passed_for_another_model_at_some_call_stays_flagged():
    source = ALIAS + "\n\ndef other(model, batches):\n    head = Net()\n    o = torch.optim.SGD(head.parameters(), lr=0.1)\n    return fit(model, o, batches)\n"
    result = convert_source(source)
    assert "opt.step()" in result.code and any(d.rule_id == "train-step" for d in result.diagnostics), result.code
