"""Bugs the robustness suite found outside its own files, with minimal reproductions (now fixed).

A newly found bug goes here as a strict xfail; when fixed, the mark is removed.
"""
from __future__ import annotations

import numpy as np
import pytest

from torch2mlx import convert_source
from torch2mlx.verify import compare, example_source, run_function, to_numpy


def test_second_pass_adds_no_flag_to_flagged_method_call():
    first = convert_source("import torch\ndef f(x: torch.Tensor):\n    return x.sum(1, dtype=torch.float16)\n").code
    assert convert_source(first).code == first


def test_second_pass_adds_no_flag_to_flagged_to_call():
    first = convert_source("import torch\ndef f(n):\n    return n.to(torch.int32)\n").code
    assert convert_source(first).code == first


@pytest.mark.parametrize("expression", ["torch.sum(x, 0)", "torch.cumsum(x, 0)"])
def test_integer_reduction_matches_torch_or_is_reported(expression):
    """int32 input: torch gives int64, MLX int32. Either the translation matches torch exactly, or
    the conversion reports that dtype assumption and only the dtype differs (values equal)."""
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    source = example_source(expression, {"x": x})
    result = convert_source(source)
    expected = to_numpy(run_function(source, {"x": x}, "torch"))
    actual = to_numpy(run_function(result.code, {"x": x}, "mlx"))
    problem = compare(expected, actual)
    if problem is None:
        return
    reported = [d.message for d in result.diagnostics if d.kind.value == "needs-review" or d.severity.value != "info"]
    assert any("int64" in message for message in reported), f"{problem}, and no int64 assumption reported: {reported}"
    assert problem == f"result: dtype {actual.dtype} != torch's {expected.dtype}", problem
    assert np.array_equal(actual, expected), f"values differ beyond the reported dtype: {actual} vs {expected}"


def test_comment_after_removed_import_is_kept_or_refused():
    """libcst itself drops this comment; the converter refuses the file rather than lose it."""
    from torch2mlx import InputError

    try:
        code = convert_source("import torch\n\n #\n ").code
    except InputError as exc:
        assert "cannot be reproduced exactly" in str(exc)
    else:
        assert "#" in code
