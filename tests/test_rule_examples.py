"""Every example of every rule: convert it, run torch and MLX, compare (DEVELOPERS.md, "How we test")."""
import pytest

from torch2mlx import convert_source
from torch2mlx.table import load_default_table
from torch2mlx.verify import compare, example_source, function_body, make_inputs, run_function, to_numpy

CASES = [
    pytest.param(rule, i, example, id=f"{rule.id}[{i}]")
    for rule in load_default_table()
    for i, example in enumerate(rule.examples)
]


@pytest.mark.parametrize("rule,index,example", CASES)
def test_rule_example(rule, index, example):
    inputs = make_inputs(example.inputs, seed=index)
    source = example_source(example.torch, inputs, example.annotate)
    result = convert_source(source, f"{rule.id}[{index}]")
    ids = {d.rule_id for d in result.diagnostics}
    if example.flagged:
        assert result.diagnostics, f"expected a flag, got:\n{result.code}"
        assert any(i == rule.id or i.startswith("torch.") for i in ids)
        assert "# torch2mlx:" in result.code
        return
    warnings = [d for d in result.diagnostics if d.severity.value != "info"]
    assert not warnings, "\n".join(d.format() for d in warnings)
    body = function_body(result.code)
    if example.mlx is not None:
        assert body == example.mlx.strip(), f"converted to:\n{body}"
    assert "torch" not in result.code.replace("torch2mlx", "").replace("pytorch_compatible", ""), result.code
    again = convert_source(result.code)
    assert again.code == result.code, "converting the output again changed it"
    expected = to_numpy(run_function(source, inputs, "torch"))
    actual = to_numpy(run_function(result.code, inputs, "mlx"))
    problem = compare(expected, actual, example.compare)
    assert problem is None, f"{problem}\nMLX code:\n{body}"
