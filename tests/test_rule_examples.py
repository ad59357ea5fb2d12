"""Every example of every rule: convert it, run torch and MLX, compare (DEVELOPERS.md, "How we test").

An example with `module: true` runs at module level (docs/writing-rules.md): statements torch allows only
there, such as `torch.fx.wrap("f")`; its `mlx` is then compared with the converted module's statements."""
import ast

import pytest

from torch2mlx import convert_source
from torch2mlx.table import load_default_table
from torch2mlx.verify import compare, example_source, function_body, make_inputs, module_body, run_function, to_numpy

def torch_left(code: str) -> bool:
    """The code names torch: an import of it or any name `torch` (a string such as torch's cache directory
    name "torch" or a docstring saying "PyTorch's" is no use of torch)."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            return True
        if isinstance(node, ast.Name) and node.id == "torch":
            return True
    return False


CASES = [
    pytest.param(rule, i, example, id=f"{rule.id}[{i}]")
    for rule in load_default_table()
    for i, example in enumerate(rule.examples)
]


@pytest.mark.parametrize("rule,index,example", CASES)
def test_rule_example(rule, index, example):
    inputs = make_inputs(example.inputs, seed=index)
    source = example_source(example.torch, inputs, example.annotate, module=example.module)
    result = convert_source(source, f"{rule.id}[{index}]")
    ids = {d.rule_id for d in result.diagnostics}
    if example.flagged:
        assert result.diagnostics, f"expected a flag, got:\n{result.code}"
        assert any(i == rule.id or i.startswith("torch.") for i in ids)
        assert "# torch2mlx:" in result.code
        return
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    assert not warnings, "\n".join(d.format() for d in warnings)
    body = module_body(result.code) if example.module else function_body(result.code)
    if example.mlx is not None:
        assert body == example.mlx.strip(), f"converted to:\n{body}"
    assert not torch_left(result.code), result.code
    again = convert_source(result.code)
    assert again.code == result.code, "converting the output again changed it"
    expected = to_numpy(run_function(source, inputs, "torch", module=example.module))
    actual = to_numpy(run_function(result.code, inputs, "mlx", module=example.module))
    problem = compare(expected, actual, example.compare)
    assert problem is None, f"{problem}\nMLX code:\n{body}"
