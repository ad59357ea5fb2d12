"""Optimizers built from parameter groups (issue 15): the weight-decay / no-decay split, per-group learning
rates, with and without schedulers. Each script converts with no warning and trains like torch from the same
weights and batches (per-step losses and learning rates within rtol 1e-3)."""
import pytest
from test_training_styles import HEAD
from training_support import assert_same_losses, run_both

from torch2mlx import convert_source

LOOP = '''
    losses = []
    for epoch in range(2):
        for x, y in batches:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses
'''

DECAY_SPLIT_LOOP = HEAD + '''

def train(model, batches):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim == 1 or name.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": 0.5}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=0.02, betas=(0.9, 0.95))
''' + LOOP

HF_STYLE = HEAD + '''

def train(model, batches):
    no_decay = ["bias", "LayerNorm.weight"]
    grouped = [
        {"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)], "weight_decay": 0.05},
        {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.SGD(grouped, lr=0.1, momentum=0.9, nesterov=True)
''' + LOOP

PER_GROUP_LR = HEAD + '''

def train(model, batches):
    optimizer = torch.optim.SGD([
        {"params": model.fc1.parameters(), "lr": 0.01},
        {"params": model.fc2.parameters()},
    ], lr=0.2, momentum=0.9)
''' + LOOP

PER_GROUP_LR_PER_STEP_SCHEDULE = PER_GROUP_LR.replace(
    "], lr=0.2, momentum=0.9)\n", "], lr=0.2, momentum=0.9)\n    sched = lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 4))\n").replace(
    "            optimizer.step()\n", "            optimizer.step()\n            sched.step()\n")

PER_GROUP_LR_PER_EPOCH = PER_GROUP_LR.replace(
    "], lr=0.2, momentum=0.9)\n", "], lr=0.2, momentum=0.9)\n    sched = lr_scheduler.StepLR(optimizer, 1, gamma=0.5)\n").replace(
    "            losses.append(loss.item())\n", "            losses.append(loss.item())\n        sched.step()\n        losses.extend(sched.get_last_lr())\n")

PER_GROUP_PLATEAU = PER_GROUP_LR.replace(
    "], lr=0.2, momentum=0.9)\n", "], lr=0.2, momentum=0.9)\n    sched = lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0, threshold=0.5)\n").replace(
    "            losses.append(loss.item())\n", "            losses.append(loss.item())\n        sched.step(loss.item())\n        losses.extend(sched.get_last_lr())\n")

ONLY_THE_HEAD = HEAD + '''

def train(model, batches):
    optimizer = torch.optim.Adam([{"params": model.fc2.parameters(), "lr": 0.05}], lr=0.01)
''' + LOOP


@pytest.mark.parametrize("source", [DECAY_SPLIT_LOOP, HF_STYLE], ids=["named_parameters-loop-adamw", "hf-no-decay-list-sgd"])
def test_weight_decay_split(source):
    t, m, result = run_both(source)
    assert "optimizer = ParamGroupOptimizer(model, " in result.code and "named_parameters(model)" in result.code, result.code
    assert_same_losses(t, m)


@pytest.mark.parametrize("source", [PER_GROUP_LR, PER_GROUP_LR_PER_STEP_SCHEDULE, PER_GROUP_LR_PER_EPOCH, PER_GROUP_PLATEAU],
                         ids=["constant", "per-step-lambda", "per-epoch-step", "plateau"])
def test_per_group_learning_rates(source):
    t, m, result = run_both(source)
    assert "ParamGroupOptimizer(model, [" in result.code, result.code
    assert_same_losses(t, m)


def test_a_group_holding_part_of_the_model_leaves_the_rest_unchanged():
    t, m, _ = run_both(ONLY_THE_HEAD)
    assert_same_losses(t, m)


def test_the_weight_decay_split_without_a_split_still_differs_from_one_optimizer():
    """The split matters (a check that the test above can fail): one AdamW with weight_decay 0.5 everywhere
    gives other losses than the split."""
    import numpy as np

    t, _, _ = run_both(DECAY_SPLIT_LOOP)
    t_all, _, _ = run_both(DECAY_SPLIT_LOOP.replace('"weight_decay": 0.0}', '"weight_decay": 0.5}'))
    assert not np.allclose(t, t_all, rtol=1e-4)


@pytest.mark.parametrize("source, why", [
    (HEAD + "\n\ndef train(model, batches):\n    optimizer = torch.optim.SGD([{'params': model.fc1.parameters(), 'dampening': 0.1}], lr=0.1, momentum=0.9)\n" + LOOP,
     "dampening"),
    (HEAD + "\n\ndef train(model, batches):\n    optimizer = torch.optim.Adamax([{'params': model.fc1.parameters()}], lr=0.1)\n" + LOOP,
     "Adamax"),
    (HEAD + "\n\ndef train(model, batches, a, b):\n    optimizer = torch.optim.SGD([{'params': [a]}, {'params': [b]}], lr=0.1)\n" + LOOP,
     "no model found"),
])
def test_groups_that_cannot_be_translated_are_flagged(source, why):
    result = convert_source(source)
    flags = [d for d in result.diagnostics if d.rule_id == "optim-groups" and d.severity.value == "warning"]
    assert flags and why in flags[0].message, result.code
    assert "MultiOptimizer" in flags[0].message
