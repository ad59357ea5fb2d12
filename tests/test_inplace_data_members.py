"""In-place updates of `m.weight.data` where `m.weight` is known to be a tensor (inside `isinstance(m, nn.Linear)`), so
the table translates `m.weight.data` to `mx.stop_gradient(m.weight)`: the update must reach the member, never that
temporary (timm 1.0.31 convnext.py:658 `_init_weights`: `module.weight.data.mul_(head_init_scale)`; fixtures'
GPT-2 style `module.weight.data.normal_(...)`)."""
import textwrap

import numpy as np

from torch2mlx import convert_source
from torch2mlx.verify import compare, to_numpy

SOURCE = textwrap.dedent('''
    import torch
    from torch import nn


    def _init_weights(module, name=None, head_init_scale=1.0):
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias.data)  # (timm writes module.bias; .data as transformers' older inits)
            if name and 'head.' in name:
                module.weight.data.mul_(head_init_scale)
                module.bias.data.add_(head_init_scale)


    def _init_normal(module):
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=3.0, std=0.01)


''')


def _run(source, framework, w, name):
    namespace: dict = {"__name__": "example"}
    exec(compile(source, f"<{framework}>", "exec"), namespace)  # noqa: S102 - our own examples
    if framework == "torch":
        import torch
        layer, other = torch.nn.Linear(4, 300), torch.nn.Linear(4, 300)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w))
    else:
        import mlx.core as mx
        import mlx.nn
        layer, other = mlx.nn.Linear(4, 300), mlx.nn.Linear(4, 300)
        layer.weight = mx.array(w)
    namespace["_init_weights"](layer, name, 0.5)
    namespace["_init_normal"](other)
    return to_numpy((layer.weight, layer.bias, other.weight))


def test_data_of_a_known_layer_weight_is_updated_in_the_member():
    result = convert_source(SOURCE)
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    assert not warnings, "\n".join(d.format() for d in warnings) + "\n" + result.code
    assert "stop_gradient" not in result.code, result.code
    w = np.random.RandomState(0).standard_normal((300, 4)).astype(np.float32)
    for name in ("head.fc", "stages.0"):
        expected = _run(SOURCE, "torch", w, name)
        actual = _run(result.code, "mlx", w, name)
        assert compare(expected[:2], actual[:2]) is None, (name, compare(expected[:2], actual[:2]))
        assert abs(expected[2].mean() - 3.0) < 1e-3 and abs(actual[2].mean() - 3.0) < 1e-3
        assert abs(expected[2].std() - 0.01) < 1e-3 and abs(actual[2].std() - 0.01) < 1e-3
