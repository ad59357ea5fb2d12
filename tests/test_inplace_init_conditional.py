"""nn-init: a conditional expression of two initialisers of the same member as a statement (timm 1.0.31
vision_transformer.py:1391 / layers/weight_init.py:177, `init_weights_vit_jax`) becomes one assignment of a
conditional value; branches initialising different members stay flagged."""
import textwrap

import numpy as np
import pytest

from torch2mlx import convert_source
from torch2mlx.verify import to_numpy

SOURCE = textwrap.dedent('''
    import torch
    from torch import nn


    def init_weights_vit_jax(module: nn.Module, name: str = '') -> None:
        if isinstance(module, nn.Linear):
            if module.bias is not None:
                nn.init.normal_(module.bias, std=1e-6) if 'mlp' in name else nn.init.zeros_(module.bias)


    def example(name):
        layer = nn.Linear(4, 3000)
        with torch.no_grad():
            layer.bias.fill_(5.0)
        init_weights_vit_jax(layer, name)
        return layer.bias
''')


def _run(source, framework, name):
    namespace: dict = {"__name__": "example"}
    exec(compile(source, f"<{framework}>", "exec"), namespace)  # noqa: S102 - our own examples
    return to_numpy(namespace["example"](name))


@pytest.mark.parametrize("name", ["blocks.0.mlp.fc1", "blocks.0.attn.qkv"])
def test_conditional_initialiser_statement(name):
    result = convert_source(SOURCE)
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    assert not warnings, "\n".join(d.format() for d in warnings) + "\n" + result.code
    assert " if 'mlp' in name else " in result.code and "import torch" not in result.code, result.code
    for framework, code in (("torch", SOURCE), ("mlx", result.code)):
        bias = _run(code, framework, name)
        assert bias.shape == (3000,) and bias.dtype == np.float32, framework
        if "mlp" in name:  # N(0, 1e-6): the sample std of 3000 draws is within 10% of it
            assert abs(bias.std() - 1e-6) < 1e-7 and abs(bias.mean()) < 1e-7, (framework, bias.std())
        else:
            assert (bias == 0).all(), framework


def test_branches_of_different_members_stay_flagged():
    source = SOURCE.replace("else nn.init.zeros_(module.bias)", "else nn.init.zeros_(module.weight)")
    result = convert_source(source)
    assert any(d.rule_id.startswith("torch.nn.init.") for d in result.diagnostics), result.code
    assert "nn.init.normal_(module.bias, std=1e-6) if 'mlp' in name else nn.init.zeros_(module.weight)" in result.code
