"""nn-module weight tying: an Embedding / bias-free Linear tie becomes one MLX parameter; anything else is flagged."""
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

from torch2mlx import convert_source, load_torch_weights  # noqa: E402

HEADER = "import torch\nimport torch.nn as nn\n\n\n"

TIED = """
class LM(nn.Module):
    def __init__(self, vocab, dim):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        {tie}

    def forward(self, idx):
        return self.head(torch.tanh(self.emb(idx)))
"""


def _convert(body: str):
    source = HEADER + textwrap.dedent(body).strip() + "\n"
    return source, convert_source(source)


def _run(code: str) -> dict:
    namespace: dict = {"__name__": "tying"}
    exec(compile(code, "<tying>", "exec"), namespace)  # noqa: S102 - our own test code
    return namespace


def _warnings(result) -> set:
    return {d.rule_id for d in result.diagnostics if d.severity.value != "info"}


@pytest.mark.parametrize("tie", ["self.emb.weight = self.head.weight", "self.head.weight = self.emb.weight"])
def test_tie_either_way_is_one_parameter_and_matches_torch(tie):
    source, result = _convert(TIED.format(tie=tie))
    assert not _warnings(result), result.code
    assert "self.emb.as_linear(" in result.code and "head" not in result.code
    torch_model, mlx_model = _run(source)["LM"](11, 6), _run(result.code)["LM"](11, 6)
    report = load_torch_weights(mlx_model, torch_model.state_dict())
    assert report.ok and len(report.tied) == 1
    idx = np.random.RandomState(0).randint(0, 11, size=(2, 5))
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(idx)).numpy()
    np.testing.assert_allclose(np.array(mlx_model(mx.array(idx))), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("body", [
    TIED.format(tie="self.emb.weight = self.head.weight").replace(", bias=False", ""),        # head has a bias
    TIED.format(tie="self.emb.weight = self.head.weight").replace("bias=False", "bias=True"),
    TIED.format(tie="self.emb.weight = self.head.weight").replace("nn.Linear(dim, vocab", "nn.Linear(vocab, dim"),
    TIED.format(tie="self.emb.weight = self.head.weight").replace(
        "return self.head(", "print(self.head.weight)\n        return self.head("),          # head used otherwise
    TIED.format(tie="self.emb.weight = self.head.weight").replace(
        "nn.Embedding(vocab, dim)", "nn.Embedding(vocab, dim, padding_idx=0)"),
    TIED.format(tie="if True:\n            self.emb.weight = self.head.weight"),                 # not straight-line
    TIED.format(tie="self.emb.weight = self.head.weight") + "\n\ndef peek(m):\n    return m.head\n",  # named elsewhere
    TIED.format(tie="self.emb.weight = self.head.weight").replace(
        "self.emb = nn.Embedding(vocab, dim)", "self.emb = nn.Linear(dim, vocab, bias=False)"),  # two Linears
])
def test_ties_not_matched_exactly_are_flagged(body):
    _, result = _convert(body)
    assert "nn-module-weight-tying" in _warnings(result), result.code
    assert ".emb.as_linear(" not in result.code and "self.head(" in result.code
