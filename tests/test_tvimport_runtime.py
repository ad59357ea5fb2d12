"""Module-level idioms of timm that kept the converted package from importing without torch (runtime-values):
a torch module or an untranslated torch class written as a parameter's annotation (layers/adaptive_avgmax_pool.py
`input_fmt: F = 'NCHW'`, utils/model_ema.py `generator: Optional[torch.Generator] = None`), and a
try/except choosing torch's function or the file's own (layers/trace_utils.py `_assert`). Run under torch and MLX."""
from __future__ import annotations

import sys

from torch2mlx import convert_source
from tests.model_support import exec_source, warnings

# timm layers/adaptive_avgmax_pool.py:59 (F for str), with the other annotation forms around it
ANNOTATED = '''
from typing import Optional

import torch
import torch.nn.functional as F


def get_spatial_dim(fmt: str):
    return (2, 3) if fmt == 'NCHW' else (1, 2)


class FastAdaptiveAvgPool(torch.nn.Module):
    def __init__(self, flatten: bool = False, input_fmt: F = 'NCHW'):
        super().__init__()
        self.flatten = flatten
        self.fmt = input_fmt
        self.dim = get_spatial_dim(input_fmt)


def described(x, how: torch.nn.functional = None, generator: Optional[torch.Generator] = None) -> torch.nn:
    return x
'''


def test_torch_module_as_whole_annotation_becomes_its_text(monkeypatch):
    result = convert_source(ANNOTATED, "adaptive_avgmax_pool.py")
    assert not warnings(result), [d.format() for d in result.diagnostics]
    code = result.code
    assert "input_fmt: 'F' = 'NCHW'" in code and "how: 'torch.nn.functional' = None" in code
    assert "generator: Optional['torch.Generator'] = None) -> 'torch.nn':" in code
    torch_ns = exec_source(ANNOTATED, "torch_annotated")
    monkeypatch.setitem(sys.modules, "torch", None)
    mlx_ns = exec_source(code, "mlx_annotated")
    for ns in (torch_ns, mlx_ns):
        pool = ns["FastAdaptiveAvgPool"](input_fmt="NHWC")
        assert (pool.fmt, pool.dim, pool.flatten) == ("NHWC", (1, 2), False)
        assert ns["described"](3) == 3
    # what `from __future__ import annotations` would give: the annotation's text
    assert mlx_ns["FastAdaptiveAvgPool"].__init__.__annotations__["input_fmt"] == "F"


def test_torch_module_inside_an_annotation_stays_flagged():
    """`F | None`: an operand of `|` does not become a string (`'F' | None` would raise)."""
    source = '''
import torch.nn.functional as F


def f(x, a: F | None = None):
    return x
'''
    result = convert_source(source, "union.py")
    assert [d.rule_id for d in warnings(result)] == ["torch.nn.functional"], [d.format() for d in result.diagnostics]


# timm layers/trace_utils.py, and a module importing the name from it (pos_embed_sincos.py)
TRACE_UTILS = '''
try:
    from torch import _assert
except ImportError:
    def _assert(condition: bool, message: str):
        assert condition, message


def _float_to_int(x: float) -> int:
    return int(x)
'''


def test_try_torch_import_with_own_fallback_keeps_the_fallback(monkeypatch):
    result = convert_source(TRACE_UTILS, "trace_utils.py")
    assert not warnings(result), [d.format() for d in result.diagnostics]
    notes = [d for d in result.diagnostics if d.rule_id == "runtime-values"]
    assert len(notes) == 1 and notes[0].severity.value == "info" and "torch._assert" in notes[0].message
    assert "try:" not in result.code and "def _assert(condition: bool, message: str):" in result.code
    torch_ns = exec_source(TRACE_UTILS, "torch_trace_utils")
    monkeypatch.setitem(sys.modules, "torch", None)
    mlx_ns = exec_source(result.code, "mlx_trace_utils")
    for ns in (torch_ns, mlx_ns):
        ns["_assert"](True, "fine")
        try:
            ns["_assert"](False, "shape mismatch")
            raise RuntimeError("no AssertionError")
        except AssertionError as exc:
            assert str(exc) == "shape mismatch"


def test_try_torch_import_whose_fallback_is_not_a_definition_is_not_taken():
    """`except ImportError: _assert = None` is not the file's own version of the function: not taken as one."""
    source = '''
try:
    from torch import _assert
except ImportError:
    _assert = None

def check(c):
    _assert(c, "no")
'''
    result = convert_source(source, "fallback_none.py")
    assert "try:" in result.code and "_assert = None" in result.code


def test_generator_annotation_alone_becomes_its_text(monkeypatch):
    """timm data/scheduled_sampler.py: `generator: torch.Generator` in a file with no other runtime idiom."""
    source = '''
from typing import Optional

import torch


class ScheduledBatchSampler:
    def _sample_choice(self, generator: torch.Generator, weights: Optional[torch.Generator] = None) -> int:
        return 3
'''
    result = convert_source(source, "scheduled_sampler.py")
    assert not warnings(result), [d.format() for d in result.diagnostics]
    assert "generator: 'torch.Generator', weights: Optional['torch.Generator'] = None" in result.code
    monkeypatch.setitem(sys.modules, "torch", None)
    assert exec_source(result.code, "mlx_sampler")["ScheduledBatchSampler"]()._sample_choice(None) == 3
