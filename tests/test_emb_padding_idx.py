"""nn.Embedding(n, d, padding_idx=p) and F.embedding(i, w, padding_idx=p) (issue 12: the token embeddings of
transformers' BERT, RoBERTa, DistilBERT, LLaMA, Mistral, Qwen2). torch zeroes row p when the layer is built,
looks rows up plainly, and gives row p no gradient; negative p counts from the end. A module written as
transformers writes it is converted, run under torch and MLX with the same weights, and its outputs, its
weight gradients and its freshly built row p compared."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")
nn_mlx = pytest.importorskip("mlx.nn")

from torch2mlx import convert_source  # noqa: E402

N, D = 7, 5

SOURCE = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Embeddings(nn.Module):
    def __init__(self, vocab_size, hidden_size, pad_token_id):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size, padding_idx=pad_token_id)
        self.position_embeddings = nn.Embedding(vocab_size, hidden_size)
        self.extra = nn.Parameter(torch.randn(vocab_size, hidden_size))

    def forward(self, input_ids):
        words = self.word_embeddings(input_ids)
        extra = F.embedding(input_ids, self.extra, padding_idx=PAD)
        return words * words + self.position_embeddings(input_ids) + extra * extra
'''


def _convert(pad: int) -> str:
    result = convert_source(SOURCE.replace("PAD", str(pad)))
    code = result.code
    assert result.flagged == 0, code
    assert "import torch" not in code and "PaddedEmbedding(" in code and "padded_embedding(" in code, code
    return code


def _classes(pad: int):
    torch_ns: dict = {}
    exec(compile(SOURCE.replace("PAD", str(pad)), "<torch>", "exec"), torch_ns)
    mlx_ns: dict = {}
    exec(compile(_convert(pad), "<mlx>", "exec"), mlx_ns)
    return torch_ns["Embeddings"], mlx_ns["Embeddings"]


def _pair(pad: int):
    """The torch module (weights random, row pad not zero: the gradient check needs it trained-looking) and
    the MLX module with the same weights loaded by name."""
    torch_cls, mlx_cls = _classes(pad)
    torch.manual_seed(0)
    tm = torch_cls(N, D, pad)
    with torch.no_grad():
        tm.word_embeddings.weight.copy_(torch.randn(N, D))
    mm = mlx_cls(N, D, pad)
    mm.load_weights([(k, mx.array(v.detach().numpy())) for k, v in tm.state_dict().items()])
    return tm, mm


IDS = [[0, 3, 6, 3], [1, 6, 0, 5]]


@pytest.mark.parametrize("pad", [3, -1, 0])
def test_forward_matches_torch(pad):
    tm, mm = _pair(pad)
    ids = torch.tensor(IDS)
    expected = tm(ids).detach().numpy()
    got = np.array(mm(mx.array(IDS)))
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pad", [3, -1, 0])
def test_weight_gradients_match_torch_and_row_pad_gets_none(pad):
    tm, mm = _pair(pad)
    ids = torch.tensor(IDS)
    tm(ids).sum().backward()

    def loss(model, x):
        return model(x).sum()

    _, grads = nn_mlx.value_and_grad(mm, loss)(mm, mx.array(IDS))
    row = pad % N
    for name, torch_grad in (("word_embeddings", tm.word_embeddings.weight.grad), ("extra", tm.extra.grad)):
        mlx_grad = grads[name]["weight"] if name == "word_embeddings" else grads[name]
        np.testing.assert_allclose(np.array(mlx_grad), torch_grad.numpy(), rtol=1e-4, atol=1e-5)
        assert not np.array(mlx_grad)[row].any(), name
        assert np.abs(np.array(mlx_grad)).sum() > 0, name  # the other rows looked up do get a gradient
    np.testing.assert_allclose(np.array(grads["position_embeddings"]["weight"]),
                               tm.position_embeddings.weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    assert np.array(grads["position_embeddings"]["weight"])[row].any()  # no padding_idx: row pad is trained


@pytest.mark.parametrize("pad", [3, -2])
def test_row_pad_is_zero_when_built_and_padding_idx_as_torch_stores_it(pad):
    torch_cls, mlx_cls = _classes(pad)
    tm, mm = torch_cls(N, D, pad), mlx_cls(N, D, pad)
    weight = np.array(mm.word_embeddings.weight)
    assert weight.shape == (N, D)
    assert not weight[pad % N].any() and not tm.word_embeddings.weight[pad % N].any()
    assert np.abs(np.delete(weight, pad % N, axis=0)).min() > 0  # the other rows keep their random init
    assert mm.word_embeddings.padding_idx == tm.word_embeddings.padding_idx == pad % N
    assert isinstance(mm.word_embeddings, nn_mlx.Embedding)
    assert sorted(k for k, _ in mm.word_embeddings.parameters().items()) == ["weight"]


@pytest.mark.parametrize("pad", [N, -N - 1])
def test_padding_idx_out_of_range_raises_as_in_torch(pad):
    torch_cls, mlx_cls = _classes(0)
    with pytest.raises(AssertionError):
        torch_cls(N, D, pad)
    with pytest.raises(ValueError):
        mlx_cls(N, D, pad)


def test_padding_idx_none_is_plain_embedding():
    code = convert_source("import torch.nn as nn\nimport torch.nn.functional as F\n"
                          "e = nn.Embedding(4, 2, padding_idx=None)\ny = F.embedding(i, w, padding_idx=None)\n").code
    assert "PaddedEmbedding" not in code and "padded_embedding" not in code and "nn.Embedding(4, 2)" in code, code


def test_names_taken_in_the_file_give_fresh_helper_names():
    source = SOURCE.replace("PAD", "1") + "\n\nPaddedEmbedding = 1\npadded_embedding = 2\n"
    result = convert_source(source)
    assert result.flagged == 0, result.code
    assert "PaddedEmbedding_1(" in result.code and "padded_embedding_1(" in result.code, result.code
    ns: dict = {}
    exec(compile(result.code, "<mlx>", "exec"), ns)
    model = ns["Embeddings"](N, D, 1)
    assert ns["PaddedEmbedding"] == 1 and not np.array(model.word_embeddings.weight)[1].any()


def test_converting_the_output_again_changes_nothing():
    code = _convert(2)
    again = convert_source(code)
    assert again.flagged == 0 and again.code == code, again.code
