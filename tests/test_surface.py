"""The torch surface page (docs/coverage.md): up to date, and no name that had a rule loses it."""
import textwrap
from pathlib import Path

import pytest

from torch2mlx import convert_source
from torch2mlx.api import build_index
from torch2mlx.surface import TRANSFORMS, classify, count_uses, covered_names, enumerate_surface, generate

ROOT = Path(__file__).resolve().parents[1]
COVERED = ROOT / "tests" / "data" / "covered_names.txt"
REGENERATE = ("python -m torch2mlx.surface -o docs/coverage.md; "
              "python -m torch2mlx.surface --covered -o tests/data/covered_names.txt")


@pytest.fixture(scope="module")
def entries():
    return enumerate_surface()


def test_coverage_md_is_not_stale(entries):
    committed = (ROOT / "docs" / "coverage.md").read_text(encoding="utf-8")
    assert committed == generate(entries), f"docs/coverage.md is stale: run `{REGENERATE}`"


def test_no_name_loses_its_rule():
    index = build_index()
    names = [n for n in COVERED.read_text(encoding="utf-8").split() if n]
    lost = [n for n in names if classify(n, index)[0] == "missing"]
    assert not lost, f"these names had a rule and lost it: {lost}"


def test_covered_list_is_complete(entries):
    """A name newly decided is added by regenerating the list (so that losing it later fails)."""
    listed = set(COVERED.read_text(encoding="utf-8").split())
    new = sorted(set(covered_names(entries)) - listed)
    assert not new, f"newly covered names not in tests/data/covered_names.txt: run `{REGENERATE}`"


def test_every_status_is_known_and_namespaces_are_not_empty(entries):
    assert {e.status for e in entries} <= {"exact", "conditional", "manual", "missing"}
    for namespace in ("torch", "torch.Tensor", "torch.nn.functional", "torch.linalg", "torch.fft", "torch.special",
                      "torch.nn (layers)", "torch.nn.init", "torch.nn.utils", "torch.optim", "torch.optim.lr_scheduler",
                      "torch.distributions", "torch.utils.data"):
        assert any(e.namespace == namespace for e in entries), namespace
    manual = [e for e in entries if e.status == "manual" and not e.note]
    assert not manual, "a manual name must name the MLX gap"


def test_inplace_variant_follows_its_rule():
    index = build_index()
    assert classify("torch.Tensor.add", index)[0] == "exact"
    status, via, _ = classify("torch.Tensor.add_", index)
    assert (status, via) == ("conditional", "in-place of torch.add")
    assert classify("torch.Tensor.__add__", index)[:2] == ("exact", "native")
    assert classify("torch.Tensor.definitely_not_a_member_", index)[0] == "missing"


# one use per structural transform the page credits: the torch name must be gone from the output
TRANSFORM_SNIPPETS = {
    "torch.nn.Buffer": """
        import torch
        from torch import nn

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Buffer(torch.zeros(3))
                self.b = torch.nn.Buffer(torch.ones(3), persistent=False)

            def forward(self, x):
                return x + self.a + self.b
    """,
    "torch.nn.init.normal_": """
        import torch
        from torch import nn

        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(3, 4)
                nn.init.normal_(self.fc.weight, std=0.02)
                nn.init.kaiming_uniform_(self.fc.weight, a=1)
                self.fc.bias.data.uniform_(-0.1, 0.1)
                self.fc.weight.data.normal_(mean=0.0, std=0.02)
    """,
    "torch.no_grad": """
        import torch

        def f(x: torch.Tensor):
            with torch.no_grad():
                y = x + 1
            return y
    """,
    "torch.utils.data.DataLoader": """
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        def f(x: torch.Tensor, y: torch.Tensor):
            ds = TensorDataset(x, y)
            return [b for b in DataLoader(ds, batch_size=2, shuffle=False)]
    """,
    "torch.utils.data.ConcatDataset": """
        import torch
        from torch.utils.data import ChainDataset, ConcatDataset, Dataset, IterableDataset, Sampler

        class D(Dataset):
            def __len__(self):
                return 2

            def __getitem__(self, i):
                return i

        class I(IterableDataset):
            def __iter__(self):
                return iter([1])

        class S(Sampler):
            def __iter__(self):
                return iter([0])

        def f():
            return ConcatDataset([D(), D()]), ChainDataset([I(), I()])
    """,
    "torch.nn.utils.clip_grad_value_": """
        import torch
        from torch import nn

        def train(model: nn.Module, xs: list):
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            for x in xs:
                opt.zero_grad()
                loss = torch.sum(model(x))
                loss.backward()
                torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)
                opt.step()
    """,
    "torch.save": """
        import torch

        def f(model):
            torch.save(model.state_dict(), "model.pt")
    """,
    "torch.jit.ignore": """
        import torch

        @torch.jit.ignore
        def f(x):
            return x
    """,
    "torch.jit.Final": """
        import torch

        class A:
            size: torch.jit.Final[int]
    """,
    "torch._assert": """
        import torch

        def f(x: torch.Tensor):
            torch._assert(x.shape[0] == 2, "two rows")
            return x
    """,
    "torch.autocast": """
        import torch

        def f(x: torch.Tensor):
            with torch.autocast("cuda"):
                y = x + 1
            return y
    """,
}


@pytest.mark.parametrize("name", sorted(TRANSFORM_SNIPPETS))
def test_transform_names_are_translated(name):
    assert name in TRANSFORMS
    result = convert_source(textwrap.dedent(TRANSFORM_SNIPPETS[name]), "snippet.py")
    if name != "torch.autocast":  # translated, with a review warning (rounding differs from torch's float16 run)
        assert "# torch2mlx:" not in result.code, result.code
    code = "\n".join(line for line in result.code.splitlines() if not line.strip().startswith("#"))
    assert "torch" not in code, result.code


def test_count_uses(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(textwrap.dedent("""
        import torch
        import torch.nn.functional as F
        from torch import nn

        class M(nn.Module):
            def forward(self, x):
                d = {}
                d.update(a=1)
                return F.relu(x.permute(0, 2, 1)) + torch.zeros(3)
    """), encoding="utf-8")
    counts, files = count_uses([source], build_index())
    assert files == 1
    assert counts["torch.nn.functional.relu"] == 1 and counts["torch.zeros"] == 1 and counts["torch.nn.Module"] == 1
    assert counts["torch.Tensor.permute"] == 1
    assert "torch.Tensor.update" not in counts
