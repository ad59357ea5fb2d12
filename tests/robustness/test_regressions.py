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
def test_integer_reduction_dtype_matches_torch(expression):
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    source = example_source(expression, {"x": x})
    result = convert_source(source)
    if result.flagged or any(d.kind.value == "needs-review" for d in result.diagnostics):
        return  # flagged, or reported as converted under a stated assumption: not silent
    expected = to_numpy(run_function(source, {"x": x}, "torch"))
    assert compare(expected, to_numpy(run_function(result.code, {"x": x}, "mlx"))) is None


def test_comment_after_removed_import_is_kept_or_refused():
    """libcst itself drops this comment; the converter refuses the file rather than lose it."""
    from torch2mlx import InputError

    try:
        code = convert_source("import torch\n\n #\n ").code
    except InputError as exc:
        assert "cannot be reproduced exactly" in str(exc)
    else:
        assert "#" in code
