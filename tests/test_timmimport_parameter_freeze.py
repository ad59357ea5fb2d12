"""`self.w = nn.Parameter(t, requires_grad=R)` in a module class: the array, frozen where R is false
(transforms/module/parameter_freeze.py; timm metaformer.py's Scale takes `requires_grad=trainable`)."""
import textwrap

from torch2mlx import convert_source

SOURCE = textwrap.dedent("""
    import torch
    import torch.nn as nn


    class Scale(nn.Module):
        def __init__(self, dim, init_value=1.0, trainable=True):
            super().__init__()
            self.scale = nn.Parameter(init_value * torch.ones(dim), requires_grad=trainable)
            self.pos = nn.Parameter(torch.zeros(1, dim), requires_grad=False)
            self.w = nn.Parameter(torch.zeros(dim))

        def forward(self, x):
            return x * self.scale + self.pos + self.w


    class Plain:
        def __init__(self):
            self.p = nn.Parameter(torch.zeros(2), requires_grad=False)
""").lstrip()


def _namespace(code: str) -> dict:
    namespace: dict = {}
    exec(compile(code, "m.py", "exec"), namespace)
    return namespace


def test_frozen_as_torch_leaves_it_out_of_training():
    from mlx.utils import tree_flatten

    result = convert_source(SOURCE, "m.py")
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    assert [d.rule_id for d in warnings] == ["torch.nn.Parameter"], result.code  # the class Plain only
    torch_ns, mlx_ns = _namespace(SOURCE), _namespace(result.code)
    for trainable in (True, False):
        ref = torch_ns["Scale"](3, 0.5, trainable)
        got = mlx_ns["Scale"](3, 0.5, trainable)
        expected = sorted(n for n, p in ref.named_parameters() if p.requires_grad)
        assert sorted(k for k, _ in tree_flatten(got.trainable_parameters())) == expected
        assert sorted(k for k, _ in tree_flatten(got.parameters())) == sorted(ref.state_dict())
    assert convert_source(result.code, "m.py").code == result.code


def test_left_flagged_outside_a_module_class_or_for_a_call():
    result = convert_source(SOURCE.replace("requires_grad=trainable", "requires_grad=bool(trainable)"), "m.py")
    flagged = [d.line for d in result.diagnostics if d.rule_id == "torch.nn.Parameter"]
    assert flagged == [8, 18], result.code
