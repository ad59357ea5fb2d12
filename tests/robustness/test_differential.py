"""Differential fuzzing: converted without a flag => agrees with torch. "Silently wrong" must be 0,
and so must "crash" (MLX aborted or hung on unflagged code; it runs in a worker process).

Integer inputs are left out of the CI set: integer reductions are a known dtype difference,
reported as an assumption (tests/robustness/test_regressions.py); TORCH2MLX_FUZZ_INTS=1 puts them back.
"""
from __future__ import annotations

import collections
import os
import random

import numpy as np

from differential import MLXWorker, Node, describe, minimize, random_inputs, random_tree, run_case
from fuzz_support import budget


def _inputs(rng: random.Random) -> dict:
    inputs = random_inputs(rng)
    if not os.environ.get("TORCH2MLX_FUZZ_INTS") and inputs["x"].dtype != np.float32:
        inputs = {k: v.astype(np.float32) for k, v in inputs.items()}
    return inputs


def test_no_silently_wrong_translation():
    rng = random.Random(20260101)
    counts: collections.Counter = collections.Counter()
    found: dict = {"silently-wrong": [], "crash": []}
    for _ in range(budget(150)):
        tree, inputs = random_tree(rng, 3), _inputs(rng)
        outcome = run_case(tree.render() if isinstance(tree, Node) else tree, inputs)
        counts[outcome.status] += 1
        if outcome.status in found:
            small = minimize(tree, inputs, outcome.status)
            found[outcome.status].append(
                describe(small, inputs, run_case(small.render() if isinstance(small, Node) else small, inputs)))
    print(dict(counts))
    assert counts["agrees"] > counts["skipped"] / 4, f"the generator produces too few runnable cases: {dict(counts)}"
    problems = [f"{status}: {line}" for status, lines in found.items() for line in lines]
    assert not problems, f"{len(problems)} silently wrong or crashing of {sum(counts.values())}:\n" + "\n".join(problems)


def test_the_check_can_fail():
    """A case that is wrong on purpose (torch.var vs a biased MLX var) is caught as silently wrong."""
    x = np.random.RandomState(0).standard_normal((3, 4)).astype(np.float32)
    from torch2mlx.verify import compare, example_source, run_function, to_numpy

    expected = to_numpy(run_function(example_source("torch.var(x)", {"x": x}), {"x": x}, "torch"))
    wrong = "import mlx.core as mx\n\ndef example(x):\n    return mx.var(x)\n"
    assert compare(expected, to_numpy(run_function(wrong, {"x": x}, "mlx"))) is not None


def test_a_crash_is_caught():
    """An abort or a hang in the MLX code ends only the worker: reported, and the next case runs."""
    import pytest
    from differential import MLXCrash

    x = {"x": np.ones((2, 3), np.float32)}
    worker = MLXWorker(timeout=5)
    try:
        with pytest.raises(MLXCrash, match="SIGABRT"):
            worker.run("import os\n\ndef example(x):\n    os.abort()\n", x)
        worker.timeout = 0.3
        with pytest.raises(MLXCrash, match="timed out"):
            worker.run("import time\n\ndef example(x):\n    time.sleep(30)\n", x)
        worker.timeout = 5
        kind, value = worker.run("import mlx.core as mx\n\ndef example(x):\n    return mx.sum(x, 0)\n", x)
        assert kind == "ok" and value.tolist() == [2.0, 2.0, 2.0]
        assert worker.run("def example(x):\n    raise ValueError('no')\n", x) == ("raises", "ValueError: no")
    finally:
        worker.close()
