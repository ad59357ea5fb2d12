"""Output an MLX expert would write (issue 14): a call written over several lines keeps its line breaks and
the comments between its arguments once translated (they were collapsed onto one line of 200+ characters,
and the comments dropped). The translations are checked against torch where they compute something."""
from __future__ import annotations

import ast
import textwrap

import numpy as np

from torch2mlx import convert_source


def _convert(source: str) -> str:
    out = convert_source(textwrap.dedent(source), "layout.py").code
    ast.parse(out)
    assert convert_source(out, "layout.py").code == out  # a second conversion changes nothing
    return out


def test_a_multi_line_sequential_keeps_one_layer_a_line_and_the_comments():
    out = _convert("""
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self, dim):
                super().__init__()
                self.net = nn.Sequential(
                    nn.Linear(dim, dim),  # expand
                    nn.GELU(),
                    nn.Linear(dim, dim),
                )

            def forward(self, x):
                return self.net(x)
    """)
    assert ("        self.net = nn.Sequential(\n"
            "            nn.Linear(dim, dim),  # expand\n"
            "            nn.GELU(),\n"
            "            nn.Linear(dim, dim),\n"
            "        )\n") in out


def test_renamed_keywords_keep_their_line_and_comment_and_a_dropped_argument_its_place():
    out = _convert("""
        import torch

        def f(x):
            return torch.sum(
                x,
                dim=1,  # rows
                keepdim=True
            ), torch.cat(
                [x, x],
                dim=0,  # torch's default is MLX's: the argument goes
            )
    """)
    assert ("    return mx.sum(\n"
            "        x,\n"
            "        axis=1,  # rows\n"
            "        keepdims=True\n"
            "    ), mx.concatenate(\n"
            "        [x, x],\n"
            "    )\n") in out
    assert "# torch's default" not in out  # the comment of the argument that went


def test_arguments_aligned_with_the_parenthesis_stay_aligned_with_it():
    out = _convert("""
        import torch

        def f(x):
            return torch.where(x > 0,
                               x,
                               torch.zeros_like(x))
    """)
    assert ("    return mx.where(x > 0,\n"
            "                    x,\n"
            "                    mx.zeros_like(x))\n") in out


def test_an_argument_the_translation_adds_gets_the_calls_line_break():
    # torch.arange of ints is int64: the translation adds dtype= after the call's own arguments
    out = _convert("""
        import torch

        def f():
            return torch.arange(
                0,
                10,
                2)
    """)
    assert "    return mx.arange(\n        0,\n        10,\n        2,\n        dtype=mx.int64)\n" in out


def test_a_call_on_one_line_and_a_translation_that_is_another_expression_are_left_as_they_are():
    out = _convert("""
        import torch
        import torch.nn.functional as F

        def f(x, w):
            a = torch.cat([x, x], dim=1)
            return F.linear(
                a,
                w,
            )
    """)
    assert "a = mx.concatenate([x, x], axis=1)" in out
    assert "return (a @ w.T)" in out


def test_the_laid_out_translation_computes_what_torch_does():
    import mlx.core as mx
    import torch

    source = textwrap.dedent("""
        import torch

        def f(x):
            y = torch.cat(
                [x, x * 2],  # twice
                dim=-1,
            )
            return torch.sum(
                y,
                dim=1,
                keepdim=True,
            )
    """)
    out = _convert(source)
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    torch_ns: dict = {}
    mlx_ns: dict = {}
    exec(compile(source, "t.py", "exec"), torch_ns)  # noqa: S102 - the test's own program
    exec(compile(out, "m.py", "exec"), mlx_ns)  # noqa: S102
    expected = torch_ns["f"](torch.tensor(data)).numpy()
    actual = np.array(mlx_ns["f"](mx.array(data)))
    assert expected.shape == actual.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)
