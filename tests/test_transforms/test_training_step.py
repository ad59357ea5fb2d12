"""train-step / no-grad: the shapes of training code that convert, and those that are flagged."""
import textwrap

import pytest

from torch2mlx import convert_source

HEADER = """\
import torch
import torch.nn as nn
import torch.nn.functional as F


def main():
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train(model, loader, optimizer)


def train(model, loader, optimizer):
    for data, target in loader:
"""


def _convert(loop_body: str):
    source = HEADER + textwrap.indent(textwrap.dedent(loop_body).strip(), " " * 8) + "\n"
    return convert_source(source)


def _warnings(result):
    return [d for d in result.diagnostics if d.severity.value != "info"]


STEP = """
def loss_fn():
    output = model(data)
    loss = nn.losses.cross_entropy(output, target, axis=1, reduction='mean')
    return loss, output
(loss, output), grads = nn.value_and_grad(model, loss_fn)()
"""
UPDATE = "optimizer.update(model, grads)\nmx.eval(model.parameters(), optimizer.state)"


@pytest.mark.parametrize("body", [
    "optimizer.zero_grad()\noutput = model(data)\nloss = F.cross_entropy(output, target)\nloss.backward()\noptimizer.step()\nprint(output.shape, loss.item())",
    "output = model(data)\noptimizer.zero_grad()\nloss = F.cross_entropy(output, target)\nloss.backward()\noptimizer.step()\nprint(output.shape, loss.item())",
    "output = model(data)\nloss = F.cross_entropy(output, target)\nloss.backward()\noptimizer.step()\noptimizer.zero_grad()\nprint(output.shape, loss.item())",
], ids=["zero-first", "zero-between", "zero-last"])
def test_usual_orders_convert(body):
    result = _convert(body)
    assert not _warnings(result), result.code
    code = textwrap.dedent(result.code.split("for data, target in loader:\n", 1)[1])
    assert STEP.strip() in code, result.code
    assert UPDATE in code
    assert "zero_grad" not in code and "backward" not in code and "torch" not in result.code


def test_forward_values_not_used_later_stay_inside():
    result = _convert("optimizer.zero_grad()\nh = model(data)\nloss = F.mse_loss(h, target)\nloss.backward()\noptimizer.step()")
    assert "return loss\n" in result.code and "loss, grads = nn.value_and_grad(model, loss_fn)()" in result.code, result.code


def test_clip_grad_norm_with_its_value_used():
    result = _convert(
        "optimizer.zero_grad()\nloss = F.mse_loss(model(data), target)\nloss.backward()\n"
        "norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)\noptimizer.step()\nprint(norm)")
    assert not _warnings(result), result.code
    assert "grads, norm = optim.clip_grad_norm(grads, 0.5)" in result.code


def test_names_read_before_assigned_in_the_loss_become_parameters():
    result = _convert("optimizer.zero_grad()\ndata = data * 2\nloss = F.mse_loss(model(data), target)\nloss.backward()\noptimizer.step()")
    assert not _warnings(result), result.code
    assert "def loss_fn(data):" in result.code and "nn.value_and_grad(model, loss_fn)(data)" in result.code


@pytest.mark.parametrize("body,why", [
    ("loss = F.mse_loss(model(data), target) / 4\nloss.backward()\nif step % 4 == 0:\n    optimizer.step()", "followed by one"),
    ("optimizer.zero_grad()\nloss = F.mse_loss(model(data), target) / 4\nloss.backward()\nif step % 4 == 0:\n    optimizer.step()", "every micro-batch"),
    ("loss = F.mse_loss(model(data), target)\nloss.backward()\nif step % 4 == 0:\n    optimizer.step()\n    optimizer.zero_grad()\nif step % 3 == 0:\n    optimizer.step()", "not together"),
    ("loss = F.mse_loss(model(data), target)\nloss.backward()\noptimizer.step()", "zero_grad"),
    ("optimizer.zero_grad()\nloss = F.mse_loss(model(data), target)\nloss.backward()\nprint(model.weight.grad)\noptimizer.step()", "gradients are read"),
    ("optimizer.zero_grad()\nloss = F.mse_loss(model(data), target)\nloss.backward()\ntorch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, norm_type=1)\noptimizer.step()", "norm other than 2"),
    ("optimizer.zero_grad()\nout = model(data)\nprint(out)\nloss = F.mse_loss(out, target)\nloss.backward()\noptimizer.step()", "the call of `model`"),
    ("optimizer.zero_grad()\nloss = F.mse_loss(model(data), target)\nloss.backward()\noptimizer.zero_grad()\noptimizer.step()", "zero_grad"),
    # a second backward() inside the accumulation's `if`, its own forward pass not translatable: both stay flagged
    ("optimizer.zero_grad()\nloss = F.mse_loss(model(data), target)\nloss.backward()\nif step % 2 == 1:\n"
     "    loss2 = F.mse_loss(model(data), target)\n    print(loss2)\n    loss2.backward()\n    optimizer.step()\n"
     "    optimizer.zero_grad()", "not together"),
], ids=["accumulation-no-zero", "accumulation-zero-every-step", "two-steps", "no-zero-grad", "grad-read", "clip-norm-type",
        "forward-outside", "zero-between-backward-step", "backward-in-the-accumulation-if"])
def test_unmatched_steps_are_flagged(body, why):
    result = _convert(body)
    flags = [d for d in result.diagnostics if d.rule_id == "train-step"]
    assert flags and why in flags[0].message, result.code
    assert "loss.backward()" in result.code and "# torch2mlx: train-step:" in result.code
    # every backward() left in the code carries its flag
    left = [i for i, line in enumerate(result.code.splitlines()) if line.strip().endswith(".backward()")]
    flagged_above = [i for i in left if "# torch2mlx: train-step:" in result.code.splitlines()[i - 1]]
    assert left == flagged_above, result.code


def test_optimizer_on_parameter_groups_is_translated_or_flagged():
    """Parameter groups become a ParamGroupOptimizer (optim-groups); an optimizer it cannot build keeps a flag
    on its constructor line (tests/test_training_groups.py runs both)."""
    body = "        optimizer.zero_grad()\n        loss = F.mse_loss(model(data), target)\n        loss.backward()\n        optimizer.step()\n"
    source = HEADER.replace("torch.optim.SGD(model.parameters(), lr=0.1)", "torch.optim.SGD([{'params': model.parameters()}], lr=0.1)") + body
    result = convert_source(source)
    assert "ParamGroupOptimizer(model, [{'params': model.parameters()}]" in result.code, result.code
    assert not [d for d in result.diagnostics if d.severity.value == "warning"], result.code
    source = HEADER.replace("torch.optim.SGD(model.parameters(), lr=0.1)", "torch.optim.Adamax([{'params': model.parameters()}], lr=0.1)") + body
    result = convert_source(source)
    assert any(d.rule_id == "optim-groups" and "parameter groups" in d.message for d in result.diagnostics), result.code


def test_call_site_passing_another_optimizer_is_flagged():
    source = HEADER.replace("train(model, loader, optimizer)", "train(model, loader, other)", 1) + (
        "        optimizer.zero_grad()\n        loss = F.mse_loss(model(data), target)\n        loss.backward()\n        optimizer.step()\n")
    result = convert_source(source)
    assert any(d.rule_id == "train-step" for d in result.diagnostics), result.code


def test_method_of_a_trainer_class():
    source = textwrap.dedent("""\
        import torch
        import torch.nn.functional as F


        class Trainer:
            def __init__(self, model):
                self.model = model
                self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)

            def fit(self, batches):
                for x, y in batches:
                    self.opt.zero_grad()
                    loss = F.mse_loss(self.model(x), y)
                    loss.backward()
                    self.opt.step()
        """)
    result = convert_source(source)
    assert not _warnings(result), result.code
    assert "loss, grads = nn.value_and_grad(self.model, loss_fn)()" in result.code
    assert "self.opt.update(self.model, grads)" in result.code


def test_no_grad_blocks_and_decorators_are_unwrapped():
    source = textwrap.dedent("""\
        import torch


        @torch.no_grad()
        def evaluate(model, x):
            return model(x)


        def test(model, x):
            # evaluation
            with torch.no_grad():
                y = model(x)
            with torch.inference_mode():
                z = model(x)
            return y, z
        """)
    result = convert_source(source)
    assert not result.diagnostics, result.code
    assert "no_grad" not in result.code and "inference_mode" not in result.code and "with" not in result.code
    assert "    # evaluation\n    y = model(x)\n    z = model(x)\n" in result.code, result.code


def test_no_grad_with_a_name_is_left():
    result = convert_source("import torch\n\n\ndef f(m, x):\n    with torch.no_grad() as g:\n        return m(x)\n")
    assert result.diagnostics and "with torch.no_grad() as g:" in result.code
