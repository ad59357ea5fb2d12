"""`torch2mlx verify` on real files: no __main__ code, sibling imports on both sides, --args as
expressions in each side's namespace, a per-output table, a hint when randomness may explain a FAIL."""
import textwrap

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx.cli import main  # noqa: E402

BLOCKS = """\
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, dim, scale=1.0):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.scale = scale

    def forward(self, x):
        return F.relu(self.fc(x)) * self.scale
"""

MODEL = """\
import torch
import torch.nn as nn

from blocks import Block


class Net(nn.Module):
    def __init__(self, block, widths, num_classes=3):
        super().__init__()
        self.blocks = nn.ModuleList([block(w) for w in widths])
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(x)


class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 2)
        self.b = nn.Linear(4, 3)

    def forward(self, x):
        return self.a(x), {"logits": self.b(x), "mean": x.mean(dim=-1)}


def train():
    open({marker!r}, "w").write("trained")
    raise SystemExit("training started")


if __name__ == "__main__":
    train()
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "blocks.py").write_text(BLOCKS)
    marker = tmp_path / "trained.txt"
    (tmp_path / "model.py").write_text(MODEL.replace("{marker!r}", repr(str(marker))))
    return tmp_path


def verify(*argv):
    return CliRunner().invoke(main, ["verify", *map(str, argv)])


def test_main_block_does_not_run_and_sibling_imports_work(project):
    r = verify(project / "model.py", "--model", "Net", "--args", "Block, [4, 4]", "--input", "2,4")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("PASS"), r.stdout
    assert not (project / "trained.txt").exists()


def test_the_mlx_side_builds_from_the_converted_sibling(project):
    # the converted Block is an MLX module: a torch Block inside the MLX model would not load weights or run
    r = verify(project / "model.py", "--model", "Net", "--args", "Block, [4, 4]", "--kwargs", "num_classes=5",
               "--input", "3,4")
    assert r.exit_code == 0, r.output
    import sys
    assert "blocks" not in sys.modules and "model" not in sys.modules  # nothing left behind


def test_args_are_expressions_in_the_module_namespace(project):
    r = verify(project / "model.py", "--model", "Net", "--args", "lambda d: Block(d, scale=2.0), [4] * 3",
               "--input", "2,4")
    assert r.exit_code == 0, r.output
    r = verify(project / "model.py", "--model", "Net", "--args", "Blok, [4]", "--input", "2,4")
    assert r.exit_code == 2 and "NameError" in r.output and "Blok" in r.output, r.output


def test_per_output_table_for_a_tuple_and_dict_output(project):
    r = verify(project / "model.py", "--model", "Pair", "--input", "2,4")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith("PASS"), r.stdout
    table = "\n".join(lines[1:])
    for name, shape in (("[0]", "(2, 2)"), ("[1]['logits']", "(2, 3)"), ("[1]['mean']", "(2,)")):
        row = next((line for line in lines if line.split() and line.split()[0] == name), None)
        assert row is not None, table
        assert shape in row and "float32" in row and "PASS" in row, row


def test_randomness_hint(tmp_path):
    (tmp_path / "drop.py").write_text(textwrap.dedent("""\
        import torch
        import torch.nn as nn


        class Drop(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 8)
                self.drop = nn.Dropout(0.5)

            def forward(self, x):
                return self.drop(self.fc(x))


        class Noisy(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 8)

            def forward(self, x):
                return self.fc(x) + torch.randn(8)
        """))
    r = verify(tmp_path / "drop.py", "--model", "Drop", "--input", "4,8")
    assert r.exit_code == 0, r.output  # eval mode is the default: dropout is off
    r = verify(tmp_path / "drop.py", "--model", "Drop", "--input", "4,8", "--train")
    assert r.exit_code == 1, r.output
    assert "train mode" in r.stdout and "dropout" in r.stdout.lower() and "--eval" in r.stdout, r.stdout
    r = verify(tmp_path / "drop.py", "--model", "Noisy", "--input", "4,8")
    assert r.exit_code == 1, r.output
    assert "differ between two torch runs" in r.stdout, r.stdout
