"""A train step the first conversion flagged keeps that one flag on a second conversion.

torch's reinforcement_learning_rpc_test.py: `policy_loss = torch.cat(policy_loss).sum()` is not the plain loss
assignment the train-step transform needs, so backward() and step() are flagged. The converted text constructs
an MLX optimizer (`optim.Adam(learning_rate=...)`, no parameters), which the second pass read as an optimizer
over something other than `model.parameters()` and flagged again for that.
"""
from __future__ import annotations

import difflib
import textwrap

from torch2mlx import convert_source

SOURCE = '''
import torch
import torch.nn as nn
import torch.optim as optim


class Agent:
    def __init__(self):
        self.policy = nn.Linear(4, 2)
        self.optimizer = optim.Adam(self.policy.parameters(), lr=1e-2)

    def finish_episode(self, losses):
        self.optimizer.zero_grad()
        policy_loss = torch.cat(losses).sum()
        policy_loss.backward()
        self.optimizer.step()
'''


def test_a_flagged_train_step_is_not_flagged_again_on_a_second_conversion():
    first = convert_source(textwrap.dedent(SOURCE), "agent.py").code
    assert first.count("# torch2mlx: train-step:") == 2, first  # backward() and step(), one flag each
    second = convert_source(first, "agent.py").code
    assert second == first, "\n".join(difflib.unified_diff(first.splitlines(), second.splitlines(), lineterm=""))
