"""ONNX export symbolics defined at import, as torchvision's ops/_register_onnx_ops.py writes them (`@parse_args`
decorators of torch.onnx.symbolic_helper on module-level functions, torch.onnx.register_custom_op_symbolic in a
function that ops/__init__.py calls at import). Before the rules `torch.onnx.symbolic_helper.parse_args` and
`torch.onnx.register_custom_op_symbolic` (rules/runtime_registrations.yaml) both stayed flagged at module level,
so the converted `import torchvision` needed torch."""
from __future__ import annotations

import sys

from torch2mlx import convert_source
from tests.model_support import exec_source, warnings

ONNX_OPS = '''
import sys
import warnings

import torch
from torch.onnx import symbolic_opset11 as opset11
from torch.onnx.symbolic_helper import parse_args

_ONNX_OPSET_VERSION_11 = 11
_ONNX_OPSET_VERSION_16 = 16


@parse_args("v", "v", "f")
def symbolic_multi_label_nms(g, boxes, scores, iou_threshold):
    boxes = opset11.unsqueeze(g, boxes, 0)
    max_output_per_class = g.op("Constant", value_t=torch.tensor([sys.maxsize], dtype=torch.long))
    return boxes, max_output_per_class


def _process_sampling_ratio_for_roi_align(g, sampling_ratio: int):
    if sampling_ratio < 0:
        warnings.warn("ONNX export for RoIAlign with a non-zero sampling_ratio is not supported.")
        sampling_ratio = 0
    return sampling_ratio


@parse_args("v", "v", "f", "i", "i")
def roi_pool(g, input, rois, spatial_scale, pooled_height, pooled_width):
    return (g, input, rois, spatial_scale, pooled_height, pooled_width), None


@parse_args("v", "i")
def takes_any(g, *rest):
    return rest


def _register_custom_op():
    torch.onnx.register_custom_op_symbolic("t2m_tvimport::nms", symbolic_multi_label_nms, _ONNX_OPSET_VERSION_11)
    torch.onnx.register_custom_op_symbolic("t2m_tvimport::roi_pool", roi_pool, _ONNX_OPSET_VERSION_11)


_register_custom_op()
'''


def _calls(ns: dict) -> list:
    """What the decorated functions give (or raise) for plain Python arguments, under either framework."""
    out = []
    for fn, args, kwargs in ((ns["roi_pool"], ("g", [1.0], "rois", 0.5, 7, 7), {}),
                             (ns["roi_pool"], ("g", 1, 2, 0.5), {}),                   # fewer than the descriptors
                             (ns["roi_pool"], ("g", 1, 2, 3, 4, 5, 6), {}),            # more: AssertionError
                             (ns["roi_pool"], ("g", 1, 2, 3, 4, 5), {"_outputs": 2}),  # _outputs is not a parameter
                             (ns["roi_pool"], ("g", 1, 2, 3, 4, 5), {"other": 1}),     # only _outputs allowed
                             (ns["takes_any"], ("g", 1, 2), {})):                      # zipped with the parameters
        try:
            out.append(("ok", fn(*args, **kwargs)))
        except Exception as exc:  # noqa: BLE001 - the comparison is of the exception's type
            out.append(("raised", type(exc).__name__))
    out.append(("attrs", ns["roi_pool"].__name__, ns["roi_pool"]._arg_descriptors, ns["roi_pool"].__wrapped__.__name__))
    return out


def test_onnx_symbolics_import_without_torch_and_behave_as_torch(monkeypatch):
    result = convert_source(ONNX_OPS, "_register_onnx_ops.py")
    code = result.code
    assert "register_custom_op_symbolic(" not in code and "@parse_args" not in code and "import parse_args" not in code
    assert code.count('@onnx_parse_args("v", "v", "f", "i", "i")') == 1
    infos = [d for d in result.diagnostics if d.rule_id == "torch.onnx.register_custom_op_symbolic"]
    assert len(infos) == 2 and all(d.severity.value == "info" for d in infos), [d.format() for d in result.diagnostics]
    # what stays flagged (the symbolic bodies, torch.onnx graph building) sits inside functions: the module
    # imports with torch blocked, its import-time calls run
    assert warnings(result) and all(d.line > 10 for d in warnings(result))
    torch_ns = exec_source(ONNX_OPS, "torch_register_onnx_ops")
    monkeypatch.setitem(sys.modules, "torch", None)
    mlx_ns = exec_source(code, "mlx_register_onnx_ops")
    assert _calls(mlx_ns) == _calls(torch_ns)
    assert mlx_ns["_process_sampling_ratio_for_roi_align"](None, 2) == 2
    # a symbolic's body needs torch.onnx: imported where it is used (importable output), not at module level
    assert "\n    from torch.onnx import symbolic_opset11 as opset11\n" in code
    assert "\nfrom torch" not in code and "\nimport torch" not in code


def test_registration_whose_value_is_used_with_a_call_argument_stays_flagged():
    source = '''
import torch


def make():
    return lambda g, x: x


done = torch.onnx.register_custom_op_symbolic("a::b", make(), 11)
'''
    result = convert_source(source, "reg.py")
    assert [d.rule_id for d in warnings(result)] == ["torch.onnx.register_custom_op_symbolic"], [
        d.format() for d in result.diagnostics]
