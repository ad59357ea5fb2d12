"""A flagged module-level class deriving from a torch class with no MLX translation, as timm's data/loader.py writes
one (`class MultiEpochsDataLoader(torch.utils.data.DataLoader)`): its flag kept `import torch` at module level,
so `import timm` failed without torch. Importable output (importable.py) now derives it from a stand-in,
`torch_base("torch.utils.data.DataLoader")`: the module imports without torch, the flag stays (exit code 1), and
with torch installed the class runs as before conversion."""
from __future__ import annotations

import sys

import pytest

from torch2mlx import convert_source
from tests.model_support import exec_source, warnings

LOADER = '''
import random

import torch
import torch.utils.data


class MultiEpochsDataLoader(torch.utils.data.DataLoader):

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._DataLoader__initialized = False
        self.epochs = 0
        self._DataLoader__initialized = True
        self.iterator = None

    def __iter__(self):
        if self.iterator is None:
            self.iterator = super().__iter__()
        for i in range(len(self)):
            yield next(self.iterator)


def create_loader(dataset, batch_size):
    return MultiEpochsDataLoader(dataset, batch_size=batch_size, shuffle=False)


def seed(n):
    random.seed(n)
    return n
'''


def test_flagged_torch_base_imports_without_torch_and_runs_with_it(monkeypatch):
    import torch

    result = convert_source(LOADER, "loader.py")
    assert [d.rule_id for d in warnings(result)] == ["torch.utils.data.DataLoader"], [d.format() for d in result.diagnostics]
    code = result.code
    assert 'class MultiEpochsDataLoader(torch_base("torch.utils.data.DataLoader")):' in code
    assert "# torch2mlx: torch.utils.data.DataLoader:" in code  # still flagged where it is written
    assert "\nimport torch" not in code and "\nfrom torch" not in code
    assert convert_source(code).code == code, "converting the output again changed it"
    data = [float(i) for i in range(7)]
    expected = [b.tolist() for b in exec_source(LOADER, "torch_loader")["create_loader"](data, 3)]
    with_torch = exec_source(code, "mlx_loader_with_torch")
    loader = with_torch["create_loader"](data, 3)
    assert isinstance(loader, torch.utils.data.DataLoader) and isinstance(loader, with_torch["MultiEpochsDataLoader"])
    assert type(loader).__name__ == "MultiEpochsDataLoader" and loader.epochs == 0
    assert [b.tolist() for b in loader] == expected == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0]]
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "torch.utils", None)
    monkeypatch.setitem(sys.modules, "torch.utils.data", None)
    without = exec_source(code, "mlx_loader_without_torch")  # imports
    assert without["seed"](3) == 3
    with pytest.raises(ImportError):  # using the class needs torch, and says so
        without["create_loader"](data, 3)


def test_class_whose_torch_name_is_also_used_at_module_level_keeps_its_base():
    """The torch import stays at module level for another reason: nothing is gained, the base stays as written."""
    source = LOADER + "\nDEFAULT_COLLATE = torch.utils.data.default_collate\n"
    result = convert_source(source, "loader.py")
    assert "class MultiEpochsDataLoader(torch.utils.data.DataLoader):" in result.code
    assert "torch_base" not in result.code


def test_helper_name_taken_keeps_the_base():
    source = LOADER.replace("def seed(n):", "def torch_base(n):")
    result = convert_source(source, "loader.py")
    assert "class MultiEpochsDataLoader(torch.utils.data.DataLoader):" in result.code


def test_base_named_in_an_import_with_other_names_converts_to_itself():
    """torch/optim/swa_utils.py: `from torch.optim.lr_scheduler import _format_param, LRScheduler` with `class
    SWALR(LRScheduler)`: the base's name leaves the import, the rest moves into the function using it (a moved
    import still naming the base would lose it on the next conversion)."""
    source = '''
from torch.utils.data import DataLoader, default_collate


class Loader(DataLoader):
    pass


def collate(batch):
    return default_collate(batch)
'''
    result = convert_source(source, "loader.py")
    code = result.code
    assert 'class Loader(torch_base("torch.utils.data.DataLoader")):' in code
    assert "    from torch.utils.data import default_collate\n" in code and "import DataLoader" not in code
    assert convert_source(code).code == code, "converting the output again changed it"
