"""Flags a person acts on (issue 14): the console lists each warning, but an info note (an assumption made,
no action asked) once per file and wording, with the other lines where it was made: the note that a
class's `forward` arguments are taken to be tensors printed once for every class of a file."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from torch2mlx.cli import main

CLASSES = """import torch
import torch.nn as nn


class A(nn.Module):
    def forward(self, x):
        return torch.relu(x)


class B(nn.Module):
    def forward(self, x, mask):
        return torch.relu(x) * mask


class C(nn.Module):
    def forward(self, y):
        return torch.relu(y)


def g(a):
    return a.sum() + a.mean()
"""


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH2MLX_CACHE_DIR", str(tmp_path / "cache"))


def test_an_info_note_made_for_every_class_is_listed_once_with_its_other_lines(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(CLASSES)
    report = tmp_path / "r.json"
    r = CliRunner().invoke(main, ["convert", str(src), "-o", str(tmp_path / "out.py"), "--report-json", str(report)])
    listed = [line for line in r.stderr.splitlines() if "taken to be tensors" in line]
    assert len(listed) == 1, r.stderr
    assert f"{src}:6:" in listed[0] and "2 more place(s) of this file: line 11, 16)" in listed[0]
    # the machine-readable report keeps every note
    notes = [d for d in json.loads(report.read_text())["files"][0]["diagnostics"] if "taken to be tensors" in d["message"]]
    assert [d["line"] for d in notes] == [6, 11, 16]


def test_warnings_are_each_listed(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(CLASSES)
    r = CliRunner().invoke(main, ["convert", str(src), "-o", str(tmp_path / "out.py")])
    assert r.exit_code == 1
    warnings = [line for line in r.stderr.splitlines() if ": warning: " in line]
    assert len(warnings) == 2 and all(f"{src}:21:" in line for line in warnings), r.stderr
    assert "more place" not in " ".join(warnings)
