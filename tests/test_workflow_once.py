"""Flags a person acts on (issue 14): a translation that reads its receiver twice (topk and max return values
and indices: `mx.sort(r)` and `mx.argsort(r)`) evaluates a receiver that is a call's result once, into a fresh
local name on a line before the statement (`qkv = self.qkv(x)`), as it does an argument (`torch.max(torch.matmul(x, w), 0)`
in a function), where that is exact: the statement is a
plain assignment, return or expression in a function or at module level, and nothing with an effect is evaluated before the
receiver (an item `x[..., 0]` too). Elsewhere (after another call, inside a comprehension, a lambda, a conditional branch, the right
side of and/or, a while loop's condition, in a class body, in a training step whose statements move) the flag stands. Checked against
torch."""
from __future__ import annotations

import ast
import textwrap

import numpy as np
import pytest

from torch2mlx import convert_source

TWICE = "would be evaluated twice"


def _convert(source: str):
    result = convert_source(textwrap.dedent(source), "once.py")
    ast.parse(result.code)
    assert convert_source(result.code, "once.py").code == result.code  # a second conversion changes nothing
    return result


def _run(code: str, framework: str, *args):
    ns: dict = {}
    exec(compile(code, f"{framework}.py", "exec"), ns)  # noqa: S102 - the test's own program
    if framework == "torch":
        import torch

        out = ns["f"](*(torch.tensor(a) for a in args))
        return [np.asarray(o) for o in out]
    import mlx.core as mx

    out = ns["f"](*(mx.array(a) for a in args))
    return [np.array(o) for o in out]


def test_a_call_result_read_twice_is_evaluated_once_into_a_fresh_name_and_matches_torch():
    source = textwrap.dedent("""
        import torch

        def f(x: torch.Tensor, w: torch.Tensor):
            # the two largest
            vals, idx = torch.matmul(x, w).topk(2, dim=-1)
            m = torch.matmul(x, w).max(dim=0)
            return vals, idx, m[0], m[1], torch.matmul(x, w).min(dim=1)[1]
    """)
    result = _convert(source)
    assert TWICE not in result.code and not [d for d in result.diagnostics if d.severity.value != "info"]
    lines = result.code.splitlines()
    at = lines.index("    # the two largest")
    assert lines[at + 1] == "    matmul = mx.matmul(x, w)"  # the comment stays above what it described
    assert lines[at + 2].startswith("    vals, idx = (mx.take(mx.sort(matmul, axis=-1)")
    assert lines[at + 3] == "    matmul_2 = mx.matmul(x, w)"
    assert "matmul_3 = mx.matmul(x, w)\n    return vals, idx, m[0], m[1]" in result.code
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((4, 5), dtype=np.float32), rng.standard_normal((5, 6), dtype=np.float32)
    expected, actual = _run(source, "torch", x, w), _run(result.code, "mlx", x, w)
    for e, a in zip(expected, actual):
        assert e.shape == a.shape and e.dtype == a.dtype
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)


def test_a_submodule_output_is_named_after_the_submodule_and_a_name_in_use_is_not_taken():
    result = _convert("""
        import torch.nn as nn

        class Router(nn.Module):
            def __init__(self, dim):
                super().__init__()
                self.gate = nn.Linear(dim, 4)

            def forward(self, x):
                gate = 1
                weights, experts = self.gate(x).topk(2, dim=-1)
                return weights * gate, experts
    """)
    assert "        gate_2 = self.gate(x)\n        weights, experts = (mx.take(mx.sort(gate_2, axis=-1)" in result.code
    assert TWICE not in result.code


CASES = {
    "after another call": "y = torch.relu(x) + torch.matmul(x, w).max(dim=0)[0]",
    "in a comprehension": "y = [torch.matmul(v, w).max(dim=0)[0] for v in x]",
    "in a lambda": "y = (lambda v: torch.matmul(v, w).max(dim=0)[0])(x)",
    "in a conditional branch": "y = x if x.shape[0] > 9 else torch.matmul(x, w).max(dim=0)[0]",
    "right of and/or": "y = x.shape[0] > 9 or torch.matmul(x, w).max(dim=0)[0]",
    "later in a chained comparison": "y = 0 < x.shape[0] < torch.matmul(x, w).max(dim=0)[0]",
    "next to another statement": "z = 1; y = torch.matmul(x, w).max(dim=0)[0]",
    "an argument after a call": "y = torch.relu(x) + torch.max(torch.matmul(x, w), 0)[0]",
    "a while loop's condition": "while torch.matmul(x, w).max(dim=0)[0].sum() > 9:\n                x = x / 2\n            y = x",
}


@pytest.mark.parametrize("line", CASES.values(), ids=list(CASES))
def test_where_evaluating_first_would_change_what_runs_the_flag_stands(line):
    result = _convert(f"""
        import torch

        def f(x: torch.Tensor, w: torch.Tensor):
            {line}
            return y
    """)
    assert result.code.count(TWICE) == 1, result.code
    assert "matmul = " not in result.code


def test_at_module_level_it_is_evaluated_once_and_in_a_training_step_the_flag_stands():
    module = _convert("""
        import torch

        x = torch.ones(3, 4)
        m = torch.matmul(x, x.T).max(dim=0)
    """)
    assert TWICE not in module.code and "\nmatmul = mx.matmul(x, x.T)\nm = " in module.code
    step = _convert("""
        import torch
        import torch.nn.functional as F

        def train(model, loader, optimizer):
            for x, y in loader:
                optimizer.zero_grad()
                loss = F.mse_loss(model(x).max(dim=1)[0], y)
                loss.backward()
                optimizer.step()
    """)
    assert step.code.count(TWICE) == 1 and "model_out = " not in step.code


def test_an_indexed_receiver_is_evaluated_once_too():
    # gemma4: `clamped_positions[..., 0].max(dim=-1, keepdim=True)[0]`
    source = textwrap.dedent("""
        import torch

        def f(x: torch.Tensor):
            top = x[:, 1:3].topk(1, dim=0)[1]
            return x[..., 0].max(dim=-1, keepdim=True)[0] + 1, top
    """)
    result = _convert(source)
    assert TWICE not in result.code
    assert "    x_part = x[:, 1:3]\n    top = (mx.take(mx.sort(x_part, axis=0)" in result.code
    assert "    x_part_2 = x[..., 0]\n    return (mx.max(x_part_2, axis=-1, keepdims=True)" in result.code
    data = np.random.default_rng(1).standard_normal((3, 4, 2), dtype=np.float32)
    for e, a in zip(_run(source.replace("x: torch.Tensor", "x"), "torch", data), _run(result.code, "mlx", data)):
        assert e.shape == a.shape and e.dtype == a.dtype
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)


def test_a_file_with_autocast_evaluates_a_receiver_once_on_the_first_conversion():
    # the first conversion runs the autocast transform (a `with torch.autocast(...)` in the file), which removes the
    # `with` and keeps every statement where it stands: the receiver is moved to a line of its own on the first
    # conversion (it was left flagged, for the second conversion, on text without autocast, to keep as it was)
    result = _convert("""
        import torch

        def g(x):
            with torch.autocast("cpu"):
                return x

        def f(x: torch.Tensor, w: torch.Tensor):
            y = torch.matmul(x, w).max(dim=0)[0]
            return y
    """)
    assert TWICE not in result.code and "    matmul = mx.matmul(x, w)\n" in result.code


def test_in_a_file_with_no_grad_a_receiver_outside_a_with_block_is_evaluated_once():
    # transformers' model files decorate `_init_weights` with @torch.no_grad(): the router's
    # `scores.view(...).topk(2, dim=-1)` in another method is still translated; inside a `with` block it is not
    result = _convert("""
        import torch

        @torch.no_grad()
        def init(w):
            return w

        def route(scores: torch.Tensor, n: int):
            group = scores.view(-1, 2, n).topk(2, dim=-1)[0]
            with torch.no_grad():
                kept = scores.view(-1, 2, n).topk(1, dim=-1)[0]
            return group, kept
    """)
    assert "    scores_view = mx.reshape(scores, (-1, 2, n))\n    group = (mx.take(mx.sort(scores_view, axis=-1)" in result.code
    assert result.code.count(TWICE) == 1 and "scores_view_2" not in result.code


def test_an_argument_read_twice_in_a_function_is_evaluated_once_and_matches_torch():
    # torch.max(t, 0) reads t for the values and for the indices; F.linear reads its bias twice (`bias is None`).
    # Arithmetic of names alone (`b + 1`) stays flagged, for the person to name (test_rewriter_evaluated_once.py)
    source = textwrap.dedent("""
        import torch
        import torch.nn.functional as F

        def f(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor):
            # the largest per column
            m = torch.max(torch.matmul(x, w), 0)
            y = F.linear(x, w.T, b.exp() + 1)
            return m[0], m[1], y
    """)
    result = _convert(source)
    assert TWICE not in result.code and not [d for d in result.diagnostics if d.severity.value != "info"]
    lines = result.code.splitlines()
    at = lines.index("    # the largest per column")
    assert lines[at + 1] == "    matmul = mx.matmul(x, w)"  # the comment stays above the lines the statement became
    assert lines[at + 2].startswith("    m = (mx.max(matmul, axis=0), mx.argmax(matmul, axis=0)")
    assert lines[at + 3] == "    bias = mx.exp(b) + 1"  # named after the parameter it is passed as
    rng = np.random.default_rng(1)
    x, w, b = (rng.standard_normal(s, dtype=np.float32) for s in ((4, 5), (5, 6), (6,)))
    expected, actual = _run(source, "torch", x, w, b), _run(result.code, "mlx", x, w, b)
    for e, a in zip(expected, actual):
        assert e.shape == a.shape and e.dtype == a.dtype
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)
