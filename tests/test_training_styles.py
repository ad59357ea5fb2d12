"""Training loops as people write them (issue 15): each style converts with no warning and trains like torch.

Every script below runs in torch and, converted, in MLX from the same weights and batches; the
per-step losses (and learning rates, where a scheduler is involved) must agree (rtol 1e-3).
"""
import pytest
from training_support import assert_same_losses as _assert_same
from training_support import run_both as _run_both

from torch2mlx import convert_source

HEAD = '''import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim import lr_scheduler


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.drop = nn.Dropout(0.0)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(self.drop(F.relu(self.fc1(x))))


@torch.no_grad()
def evaluate(model, x, y):
    model.eval()
    out = model(x)
    return F.cross_entropy(out, y).item()
'''

CLIP_IN_IF = HEAD + '''

def train(model, batches, epochs=2, max_norm=0.3):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True, weight_decay=1e-3)
    losses = []
    for epoch in range(epochs):
        model.train()
        for x, y in batches:
            optimizer.zero_grad(set_to_none=True)
            out = model(x)
            loss = F.cross_entropy(out, y, label_smoothing=0.1)
            loss.backward()
            if max_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            optimizer.step()
            losses.append(loss.item())
        losses.append(evaluate(model, batches[0][0], batches[0][1]))
    return losses
'''

CLIP_VALUE_ZERO_AFTER = HEAD + '''

def train(model, batches, epochs=2):
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.01)
    optimizer.zero_grad()
    losses = []
    for epoch in range(epochs):
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            if epoch > 0:
                nn.utils.clip_grad_value_(model.parameters(), 0.05)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
    return losses
'''

ACCUMULATION = HEAD + '''

def train(model, batches, epochs=2, accum_steps=4, clip=0.5):
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.05)
    losses = []
    for epoch in range(epochs):
        model.train()
        optimizer.zero_grad()
        for i, (x, y) in enumerate(batches):
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss = loss / accum_steps
            loss.backward()
            if (i + 1) % accum_steps == 0:
                if clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item() * accum_steps)
        model.eval()
    return losses
'''

ACCUMULATION_NO_ZERO_BEFORE = HEAD + '''

def train(model, batches, accum=2):
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.1)
    losses = []
    step = 0
    for x, y in batches:
        loss = F.cross_entropy(model(x), y) / accum
        loss.backward()
        step += 1
        if step % accum == 0:
            optimizer.step()
            optimizer.zero_grad()
        losses.append(loss.item())
    return losses
'''


def test_clip_in_an_if_set_to_none_train_eval_and_no_grad_decorator():
    t, m, result = _run_both(CLIP_IN_IF)
    assert "if max_norm > 0:\n                grads, _ = optim.clip_grad_norm(grads, max_norm)" in result.code, result.code
    assert "model.train()" in result.code and "model.eval()" in result.code
    _assert_same(t, m)


def test_clip_grad_value_in_an_if_and_zero_grad_after_step():
    t, m, result = _run_both(CLIP_VALUE_ZERO_AFTER)
    assert "grads = clip_grad_values(grads, 0.05)" in result.code, result.code
    _assert_same(t, m)


def test_gradient_accumulation_with_zero_grad_at_the_top_of_the_epoch():
    t, m, result = _run_both(ACCUMULATION)
    assert "accum_grads = accumulate_grads(accum_grads, grads)" in result.code, result.code
    assert "optimizer.update(model, accum_grads)" in result.code and "accum_grads, _ = optim.clip_grad_norm(accum_grads, clip)" in result.code
    assert not [d for d in result.diagnostics if d.rule_id == "train-step"], result.code  # zero_grad() -> `accum_grads = None`
    _assert_same(t, m)


def test_gradient_accumulation_without_zero_grad_before_the_loop_says_what_it_assumes():
    t, m, result = _run_both(ACCUMULATION_NO_ZERO_BEFORE)
    assert [d.severity.value for d in result.diagnostics if d.rule_id == "train-step"] == ["info"], result.code
    assert "    accum_grads = None\n    for x, y in batches:" in result.code, result.code
    _assert_same(t, m)


# ----- schedulers stepped per epoch, built away from the optimizer, ReduceLROnPlateau --------------
PER_EPOCH = HEAD + '''

def make_scheduler(optimizer):
    return {expr}


def train(model, batches, epochs=6):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    scheduler = make_scheduler(optimizer)
    losses = []
    for epoch in range(epochs):
        for x, y in batches[:3]:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
        losses.append(scheduler.get_last_lr()[0])
    return losses
'''

EPOCH_SCHEDULERS = [
    "lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)",
    "lr_scheduler.MultiStepLR(optimizer, milestones=[1, 4], gamma=0.3)",
    "lr_scheduler.ExponentialLR(optimizer, gamma=0.8)",
    "lr_scheduler.CosineAnnealingLR(optimizer, T_max=4, eta_min=0.01)",
    "lr_scheduler.LambdaLR(optimizer, lambda epoch: min(1.0, (epoch + 1) / 3))",
    "lr_scheduler.LinearLR(optimizer, start_factor=0.25, total_iters=3)",
    "lr_scheduler.OneCycleLR(optimizer, max_lr=0.3, total_steps=8, cycle_momentum=False)",
]


@pytest.mark.parametrize("expr", EPOCH_SCHEDULERS)
def test_scheduler_stepped_per_epoch_and_built_in_another_function(expr):
    """The learning rate of every update follows torch's: the losses after it and get_last_lr() agree."""
    t, m, result = _run_both(PER_EPOCH.replace("{expr}", expr))
    assert "return LRScheduler(optimizer, lambda base_lr:" in result.code, result.code
    _assert_same(t, m)


PLATEAU = HEAD + '''

def train(model, batches, epochs=8):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=0, threshold=0.05)
    losses = []
    for epoch in range(epochs):
        total = 0.0
        for x, y in batches[:2]:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item()
            losses.append(loss.item())
        scheduler.step(total)
        losses.append(scheduler.get_last_lr()[0])
    return losses
'''


def test_reduce_lr_on_plateau():
    t, m, result = _run_both(PLATEAU)
    assert "scheduler = ReduceLROnPlateau(optimizer, mode=" in result.code, result.code
    assert len({round(v, 6) for v in t[2::3]}) > 1, "the rate should be reduced at least once"
    _assert_same(t, m)


ACCUMULATION_WITH_SCHEDULE = ACCUMULATION.replace(
    "    losses = []\n", "    sched = lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 2))\n    losses = []\n").replace(
    "                optimizer.step()\n", "                optimizer.step()\n                sched.step()\n")


def test_gradient_accumulation_with_a_per_update_warm_up():
    t, m, result = _run_both(ACCUMULATION_WITH_SCHEDULE)
    assert "sched" not in result.code and "optim.AdamW(learning_rate=lambda step" in result.code, result.code
    _assert_same(t, m)


# ----- losses as training scripts build them ---------------------------------------------------------
CROSS_ENTROPY = HEAD + '''

def train(model, batches, epochs=2):
    class_weights = torch.tensor([1.0, 2.0, 0.5])
    criterion = LOSS
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for epoch in range(epochs):
        model.train()
        for x, y in batches:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses
'''


@pytest.mark.parametrize("loss", [
    "nn.CrossEntropyLoss(weight=class_weights, ignore_index=1, label_smoothing=0.1)",
    "nn.CrossEntropyLoss(ignore_index=2)",
    "nn.CrossEntropyLoss(label_smoothing=0.2)",
    "lambda out, y: F.cross_entropy(out, y, weight=class_weights, ignore_index=0)",
])
def test_cross_entropy_with_weight_ignore_index_and_label_smoothing(loss):
    """The batches hold every class, so ignore_index leaves rows out and weight changes the mean's divisor."""
    t, m, result = _run_both(CROSS_ENTROPY.replace("LOSS", loss))
    assert "nn.value_and_grad(model, loss_fn)" in result.code, result.code
    _assert_same(t, m)


# ----- nanoGPT's accumulation: a loop of micro-steps with backward(), the step after it -------------------
MICRO_STEPS = HEAD + '''

def train(model, batches, iters=4, gradient_accumulation_steps=2, grad_clip=0.5):
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.1)
    scaler = torch.cuda.amp.GradScaler(enabled=True)
    losses = []
    for iter_num in range(iters):
        for micro_step in range(gradient_accumulation_steps):
            X, Y = batches[iter_num * gradient_accumulation_steps + micro_step]
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                logits = model(X)
                loss = F.cross_entropy(logits, Y)
                loss = loss / gradient_accumulation_steps
            scaler.scale(loss).backward()
            losses.append(loss.item())
        if grad_clip != 0.0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        losses.append(evaluate(model, *batches[0]))
        model.train()
    return losses
'''
MICRO_STEPS_ZERO_FIRST = MICRO_STEPS.replace("        optimizer.zero_grad(set_to_none=True)\n", "").replace(
    "    for iter_num in range(iters):\n", "    for iter_num in range(iters):\n        optimizer.zero_grad()\n")


@pytest.mark.parametrize("source", [MICRO_STEPS, MICRO_STEPS_ZERO_FIRST], ids=["zero_grad-after-step", "zero_grad-first"])
def test_micro_step_loop_then_one_step(source):
    """Gradients summed over the micro-steps (one update per iteration, clipped), with autocast and a GradScaler:
    the micro-batch losses and the evaluation after every update follow torch's float32 run."""
    import warnings

    assert source.count("zero_grad") == 1
    with warnings.catch_warnings():  # CUDA autocast / GradScaler disable themselves on a CPU-only torch
        warnings.simplefilter("ignore")
        t, m, result = _run_both(source)
    assert "            accum_grads = accumulate_grads(accum_grads, grads)\n" in result.code, result.code
    assert "        optimizer.update(model, accum_grads)\n" in result.code, result.code
    notes = [d.message for d in result.diagnostics if d.rule_id == "train-step"]
    assert len(notes) == (1 if "zero_grad(set_to_none" in source else 0), notes
    _assert_same(t, m)


@pytest.mark.parametrize("change,why", [
    ("        optimizer.zero_grad(set_to_none=True)\n", "no single optimizer.zero_grad()"),  # torch adds across steps
    ("            losses.append(loss.item())\n", "gradients are read"),
])
def test_micro_step_loops_that_differ_are_flagged(change, why):
    source = MICRO_STEPS.replace(change, "" if "zero_grad" in change else change + "            print(model.fc1.weight.grad)\n")
    assert source != MICRO_STEPS
    result = convert_source(source)
    messages = [d.message for d in result.diagnostics if d.rule_id == "train-step" and d.severity.value == "warning"]
    assert any(why in msg for msg in messages), result.code
    lines = result.code.splitlines()
    for i, line in enumerate(lines):  # backward() and step() left in the code each carry a flag
        if line.strip() in ("loss.backward()", "optimizer.step()"):
            assert lines[i - 1].strip().startswith("# torch2mlx: train-step:"), result.code
    assert "loss.backward()" in result.code and "optimizer.step()" in result.code


# ----- the vision library's fine-tuning tutorial: train and val phases, set_grad_enabled, the step in an `if` --
PHASES = HEAD + '''

def train(model, batches, num_epochs=3):
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    dataloaders = {"train": batches[:6], "val": batches[6:]}
    history = []
    for epoch in range(num_epochs):
        for phase in ["train", "val"]:
            if phase == "train":
                model.train()
            else:
                model.eval()
            running_loss = 0.0
            running_corrects = 0
            for inputs, labels in dataloaders[phase]:
                optimizer.zero_grad()
                with torch.set_grad_enabled(phase == "train"):
                    outputs = model(inputs)
                    _, preds = torch.max(outputs, 1)
                    loss = criterion(outputs, labels)
                    if phase == "train":
                        loss.backward()
                        optimizer.step()
                running_loss += loss.item() * inputs.shape[0]
                running_corrects += torch.sum(preds == labels).item()
            if phase == "train":
                scheduler.step()
            history.extend([running_loss / 8, running_corrects])
    return history
'''


@pytest.mark.parametrize("source", [PHASES, PHASES.replace("                optimizer.zero_grad()\n", "").replace(
    "                    if phase == \"train\":\n", "                    if phase == \"train\":\n                        optimizer.zero_grad()\n")],
    ids=["zero_grad-before", "zero_grad-in-the-if"])
def test_train_and_val_phases_with_set_grad_enabled_and_the_step_in_an_if(source):
    """The loss function holds the forward pass; under `phase == "train"` it goes through value_and_grad and the
    update, else it is only called: the val losses and accuracies of every epoch follow torch's."""
    t, m, result = _run_both(source)
    assert "set_grad_enabled" not in result.code and "        else:\n                    (loss, preds) = loss_fn()" in result.code, result.code
    assert len(set(t[0::2])) == len(t[0::2]), "train and val losses differ every epoch"
    _assert_same(t, m)



@pytest.mark.parametrize("test,why", [("torch.isfinite(loss)", "reads loss, computed by the forward pass"),
                                      ("should_step(epoch)", "calls a function in its test")])
def test_a_step_under_a_test_that_must_run_after_the_forward_pass_is_flagged(test, why):
    """The translated test would run before the forward pass (inside the branches): kept, flagged with what to write."""
    source = PHASES.replace('                    if phase == "train":\n                        loss.backward()',
                            f"                    if {test}:\n                        loss.backward()")
    assert source != PHASES
    result = convert_source(source)
    messages = {d.message for d in result.diagnostics if d.rule_id == "train-step"}
    assert messages and all(why in m for m in messages), result.code
    assert "loss.backward()" in result.code and "optimizer.step()" in result.code


# ----- seen in real scripts, left flagged with what to write --------------------------------------
DCGAN_STEP = '''import torch
import torch.nn as nn


def train(netG: nn.Module, netD: nn.Module, batches, noises):
    criterion = nn.BCELoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
    for real, noise in zip(batches, noises):
        netD.zero_grad()
        label = torch.ones(real.shape[0])
        errD_real = criterion(netD(real), label)
        errD_real.backward()
        fake = netG(noise)
        errD_fake = criterion(netD(fake.detach()), torch.zeros(real.shape[0]))
        errD_fake.backward()
        optimizerD.step()
        netG.zero_grad()
        errG = criterion(netD(fake), label)
        errG.backward()
        optimizerG.step()
'''


def test_dcgan_two_backwards_before_one_step_say_what_to_write():
    """The PyTorch DCGAN tutorial: errD_real.backward(); errD_fake.backward(); optimizerD.step(), and the generator's
    loss reusing `fake` from the discriminator's step."""
    result = convert_source(DCGAN_STEP)
    messages = [d.message for d in result.diagnostics if d.rule_id == "train-step" and d.severity.value == "warning"]
    assert messages and all("several backward() calls before one step() add up their gradients" in m for m in messages), result.code
    assert "errD_real.backward()" in result.code and "optimizerD.step()" in result.code


def test_update_bn_and_swalr_say_what_to_write():
    source = ("import torch\nfrom torch.optim.swa_utils import SWALR, update_bn\n\n\n"
              "def finish(loader, swa_model, optimizer):\n    sched = SWALR(optimizer, swa_lr=0.05)\n"
              "    update_bn(loader, swa_model)\n    return sched\n")
    result = convert_source(source)
    found = {d.rule_id: d.message for d in result.diagnostics if d.severity.value == "warning"}
    assert "momentum to 1 / (k + 1)" in found["torch.optim.swa_utils.update_bn"], result.code
    assert "anneal_epochs" in found["torch.optim.swa_utils.SWALR"], result.code
