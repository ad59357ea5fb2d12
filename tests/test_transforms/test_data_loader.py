"""data-loader: the ArrayDataset / ArrayLoader classes are written once, and never over a name the file uses."""
import pytest

from torch2mlx import convert_source

SOURCE = """import torch
from torch.utils.data import DataLoader, TensorDataset
{extra}

def batches(x, y):
    a = DataLoader(TensorDataset(x, y), batch_size=4)
    b = DataLoader(TensorDataset(y, x), batch_size=2)
    return a, b
"""


def test_the_classes_are_written_once_per_file():
    result = convert_source(SOURCE.format(extra=""))
    assert not result.flagged, result.code
    assert result.code.count("class ArrayDataset:") == 1 and result.code.count("class ArrayLoader:") == 1
    assert result.code.count("ArrayLoader(ArrayDataset(") == 2


@pytest.mark.parametrize("name", ["ArrayDataset", "ArrayLoader"])
def test_a_file_using_a_class_name_gets_a_fresh_one(name):
    """The file's own class of that name keeps it; the generated one is `<name>_1`, used by the translation."""
    result = convert_source(SOURCE.format(extra=f"\n\nclass {name}:\n    pass\n"))
    assert f"class {name}:\n    pass" in result.code and result.code.count(f"class {name}:") == 1
    assert f"class {name}_1:" in result.code
    fresh = {n: f"{n}_1" if n == name else n for n in ("ArrayDataset", "ArrayLoader")}
    assert f"{fresh['ArrayLoader']}({fresh['ArrayDataset']}(x, y), batch_size=4)" in result.code
    assert not any(d.rule_id == "data-loader" and d.severity.value != "info" for d in result.diagnostics)
